"""The file server's configuration: what ``ocs-transfer local-cloud serve``
reads (tokens and the signing key from files or the environment) and the
frozen :class:`ServerConfig` it builds. Importing this costs nothing: the
WebDAV machinery lives in :mod:`ocs_transfer_local.server`."""

from __future__ import annotations

from pathlib import Path

import attrs

from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.redact import Secret

from .signing import MIN_KEY_LENGTH

__all__ = ["DEFAULT_PORT", "SIGNING_KEY_ENV", "TOKENS_ENV", "ServerConfig", "load_secrets"]

DEFAULT_PORT = 8976
#: Environment variable with comma-separated access tokens.
TOKENS_ENV = "OCS_TRANSFER_SERVER_TOKENS"
#: Environment variable with the link-signing key.
SIGNING_KEY_ENV = "OCS_TRANSFER_SERVER_SIGNING_KEY"

@attrs.frozen(kw_only=True)
class ServerConfig:
    """How to run the file server."""

    root: Path  #: the directory served
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  #: 0 picks a free port
    tokens: tuple[Secret, ...] = attrs.field(repr=False)  #: accepted access tokens (at least one)
    signing_key: Secret | None = attrs.field(default=None, repr=False)  #: enables /_signed links
    threads: int = 16
    socket_timeout: float = 60.0  #: seconds a connection may stall before it is dropped
    header_timeout: float = 10.0  #: seconds a request may take to send its request line and headers
    #: An upload must average at least ``body_min_rate`` bytes/s over every ``body_window`` seconds.
    body_min_rate: int = 1024
    body_window: float = 30.0
    readonly: bool = False
    #: The largest upload accepted, in bytes (None: no limit but the disk's). Larger
    #: ones answer 413 before their body is read, or as soon as a chunked body passes it.
    max_upload_bytes: int | None = None
    #: Temporary files of uploads that died (the server was killed mid-upload) are
    #: removed once they are this many seconds old: at start, then every hour.
    partial_max_age: float = 6 * 3600.0

    def __attrs_post_init__(self) -> None:
        if not self.tokens:
            raise ConfigurationError(
                f"the file server needs at least one access token: put one per line in a file given with"
                f" --token-file, or set {TOKENS_ENV}"
            )
        for token in (*self.tokens, *([self.signing_key] if self.signing_key else [])):
            if len(token.reveal()) < MIN_KEY_LENGTH:
                raise ConfigurationError(
                    f"access tokens and the signing key need at least {MIN_KEY_LENGTH} characters;"
                    " make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
        if self.max_upload_bytes is not None and self.max_upload_bytes < 0:
            raise ConfigurationError(f"max_upload_bytes must be 0 or more, not {self.max_upload_bytes}")
        if not self.root.is_dir():
            raise ConfigurationError(f"the server root {str(self.root)!r} is not an existing directory")


def load_secrets(path: Path | None = None, env_value: str | None = None) -> tuple[Secret, ...]:
    """Secrets from a file (one per line; blank lines and ``#`` comments
    ignored) and/or a comma-separated string (from the environment)."""
    values: list[str] = []
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read the secrets file {str(path)!r}: {exc.strerror}") from None
        values += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if env_value:
        values += [v.strip() for v in env_value.split(",") if v.strip()]
    return tuple(Secret(v) for v in values)
