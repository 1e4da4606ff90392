"""The Dropbox SDK client as this provider builds it, its errors, and the
content hash.

- Hosts: the SDK always builds ``https://api.dropboxapi.com/...`` and
  ``https://content.dropboxapi.com/...`` URLs; a ``requests`` adapter sends
  them to the ``api_url`` / ``content_url`` options instead (proxies, test
  servers). Plain ``http://`` is accepted only for loopback hosts.
- Auth: app key + secret + refresh token; the SDK fetches access tokens on
  demand (and once more on ``expired_access_token``); none is stored.
- Retries: the SDK's own rate-limit retries are off (it would sleep forever
  on 429s by default): a 429 becomes our ``RateLimitError`` with the server's
  ``Retry-After``, which the engine's schedule honours; its 5xx retries are
  bounded (``max_retries_on_error``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ocs_transfer.exceptions import (
    CredentialError,
    FinalStorageError,
    ObjectNotFoundError,
    OcsTransferError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    TransientStorageError,
)
from ocs_transfer.redact import Secret, redact
from ocs_transfer.retry import Decision, Kind, register_classifier

__all__ = [
    "BLOCK",
    "ContentHasher",
    "DEFAULT_API_URL",
    "DEFAULT_CONTENT_URL",
    "error_summary",
    "make_client",
    "translate_dropbox_error",
]

DEFAULT_API_URL = "https://api.dropboxapi.com"
DEFAULT_CONTENT_URL = "https://content.dropboxapi.com"
#: Dropbox hashes content in blocks of 4 MiB; session appends are multiples of it.
BLOCK = 4 * 1024 * 1024
REAUTHORIZE = "re-authorize the destination (ocs-transfer dropbox authorize --dest NAME)"


class ContentHasher:
    """Dropbox's ``content_hash``: SHA-256 of the concatenated SHA-256
    digests of each 4 MiB block, computed as the bytes stream past."""

    def __init__(self) -> None:
        self._overall = hashlib.sha256()
        self._block = hashlib.sha256()
        self._in_block = 0

    def update(self, data: bytes | memoryview, /) -> None:
        view = memoryview(data)
        while view.nbytes:
            take = min(BLOCK - self._in_block, view.nbytes)
            self._block.update(view[:take])
            self._in_block += take
            view = view[take:]
            if self._in_block == BLOCK:
                self._overall.update(self._block.digest())
                self._block = hashlib.sha256()
                self._in_block = 0

    def hexdigest(self) -> str:
        overall = self._overall.copy()
        if self._in_block:
            overall.update(self._block.digest())
        return overall.hexdigest()


def _session(api_url: str, content_url: str) -> Any:
    import requests
    from requests.adapters import HTTPAdapter

    rewrites = [(DEFAULT_API_URL, api_url), (DEFAULT_CONTENT_URL, content_url)]

    class Redirecting(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            for default, target in rewrites:
                if target != default and request.url.startswith(default + "/"):
                    request.url = target + request.url[len(default) :]
                    break
            return super().send(request, *args, **kwargs)

    session = requests.Session()
    adapter = Redirecting(pool_connections=4, pool_maxsize=8, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def make_client(
    *,
    app_key: Secret,
    app_secret: Secret | None,
    refresh_token: Secret,
    api_url: str,
    content_url: str,
    timeout: tuple[float, float],
    max_retries_on_error: int,
) -> Any:
    """A ``dropbox.Dropbox`` that refreshes its own access tokens."""
    import dropbox

    return dropbox.Dropbox(
        oauth2_refresh_token=refresh_token.reveal(),
        app_key=app_key.reveal(),
        app_secret=app_secret.reveal() if app_secret is not None else None,
        session=_session(api_url, content_url),
        timeout=timeout,
        max_retries_on_error=max_retries_on_error,
        max_retries_on_rate_limit=0,
        user_agent="ocs-transfer-dropbox",
    )


# -- errors ---------------------------------------------------------------------------------


def _tags(value: Any, depth: int = 0) -> list[str]:
    """The tag path of a stone union error (``path/insufficient_space``)."""
    if value is None or depth > 6:
        return []
    tag = getattr(value, "_tag", None)
    if tag is None:
        for attr in ("reason", "path", "error"):  # structs wrapping a union (UploadWriteFailed.reason)
            inner = getattr(value, attr, None)
            if inner is not None and getattr(inner, "_tag", None) is not None:
                return _tags(inner, depth + 1)
        return []
    return [str(tag), *_tags(getattr(value, "_value", None), depth + 1)]


def error_summary(exc: BaseException) -> str:
    """``a/b/c`` for an SDK ApiError (its union's tags), else ``""``."""
    return "/".join(_tags(getattr(exc, "error", None)))


def _kind(exc: BaseException) -> tuple[str, Decision] | None:
    """What an SDK error means: (our class's name, its decision)."""
    try:
        from dropbox import exceptions as dx
    except ImportError:  # pragma: no cover - the plugin requires the SDK
        return None
    if isinstance(exc, dx.RateLimitError):
        return "rate", Decision(Kind.BACKOFF, retry_after=float(exc.backoff) if exc.backoff is not None else None)
    if isinstance(exc, dx.AuthError):
        if exc.error is not None and exc.error.is_expired_access_token():
            return "transient", Decision(Kind.RETRY)
        return "credential", Decision(Kind.NEVER)
    if isinstance(exc, dx.InternalServerError):
        return "transient", Decision(Kind.RETRY, status=exc.status_code)
    if isinstance(exc, dx.BadInputError):
        return "final", Decision(Kind.NEVER, status=400)
    if isinstance(exc, dx.ApiError):
        summary = error_summary(exc)
        if "insufficient_space" in summary or "insufficient_quota" in summary:
            return "quota", Decision(Kind.NEVER, code=summary)
        if "not_found" in summary:
            return "not_found", Decision(Kind.NEVER, code=summary)
        if "too_many_write_operations" in summary or "too_many_requests" in summary:
            return "rate", Decision(Kind.BACKOFF, retry_after=1.0, code=summary)
        if "no_write_permission" in summary or "team_folder" in summary:
            return "permission", Decision(Kind.NEVER, code=summary)
        if "internal_error" in summary:
            return "transient", Decision(Kind.RETRY, code=summary)
        return "final", Decision(Kind.NEVER, code=summary)
    if isinstance(exc, dx.HttpError):
        status = int(getattr(exc, "status_code", 0) or 0)
        return ("transient", Decision(Kind.RETRY, status=status)) if status >= 500 or status in (408, 425) else (
            "final", Decision(Kind.NEVER, status=status))  # fmt: skip
    return None


def _classify(exc: BaseException) -> Decision | None:
    kind = _kind(exc)
    return kind[1] if kind else None


for _name in ("ApiError", "AuthError", "RateLimitError", "InternalServerError", "BadInputError", "HttpError"):
    register_classifier(f"dropbox.exceptions.{_name}", _classify)


def translate_dropbox_error(
    exc: BaseException, message: str, secrets: tuple[Secret | str | None, ...] = ()
) -> BaseException:
    """An SDK error as one of ours, with a message saying what to do; other
    errors unchanged (the store's ``_raise`` translates them generically)."""
    if isinstance(exc, OcsTransferError):
        return exc
    kind = _kind(exc)
    if kind is None:
        return exc
    name, decision = kind
    detail = redact(error_summary(exc) or type(exc).__name__, secrets)
    text = f"{message}: {detail}"
    if name == "quota":
        return QuotaExceededError(
            f"{text}: the Dropbox account is full; free up space in the Dropbox account (or upgrade it), then retry"
        )
    if name == "credential":
        return CredentialError(
            f"{message}: Dropbox refused the app's authorization (revoked or invalid); {REAUTHORIZE}"
        )
    if name == "rate":
        return RateLimitError(f"{text}: Dropbox asked us to slow down", retry_after=decision.retry_after)
    if name == "transient":
        return TransientStorageError(text)
    if name == "not_found":
        return ObjectNotFoundError(text)
    if name == "permission":
        return PermissionDeniedError(text)
    return FinalStorageError(text)


def account_email(client: Any) -> str:
    """The e-mail address of the account the client acts for."""
    return str(client.users_get_current_account().email)
