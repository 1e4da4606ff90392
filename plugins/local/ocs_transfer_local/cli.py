"""The ``ocs-transfer local-cloud`` commands: ``serve`` runs the self-hosted
file server, ``link`` prints a signed download link for a file on it."""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import click

from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.storage.paths import safe_path

from .config import DEFAULT_PORT, SIGNING_KEY_ENV, TOKENS_ENV, ServerConfig, load_secrets
from .signing import signed_url

__all__ = ["local_cloud"]




@click.group("local-cloud")
def local_cloud() -> None:
    """The self-hosted file server (WebDAV with token auth and signed links)."""


@local_cloud.command("serve")
@click.option("--root", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Directory to serve.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (use a reverse proxy for TLS when serving beyond localhost).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help=f"File with access tokens, one per line (or set {TOKENS_ENV}, comma-separated).")
@click.option("--signing-key-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help=f"File with the key that signs download links (or set {SIGNING_KEY_ENV}).")
@click.option("--threads", default=16, show_default=True, type=click.IntRange(1, 512))
@click.option("--readonly", is_flag=True, help="Refuse every write.")
@click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds a request may take to send its line and headers (slow clients are cut).")
@click.option("--body-min-rate", default=1024, show_default=True, type=click.IntRange(0),
              help="Bytes/s an upload must average over every 30 s (slower ones are cut).")
@click.option("--max-upload-size", default=None, metavar="BYTES", type=click.IntRange(0),
              help="Refuse uploads larger than this many bytes with 413 (default: no limit but the disk).")
@click.option("--sweep-partials-after", default=6.0, show_default=True, metavar="HOURS", type=click.FloatRange(0),
              help="Remove temporary files of dead uploads (a killed server's) once this old; checked hourly.")
def serve(root: Path, host: str, port: int, token_file: Path | None, signing_key_file: Path | None,
          threads: int, readonly: bool, header_timeout: float, body_min_rate: int,
          max_upload_size: int | None, sweep_partials_after: float) -> None:
    """Serve the --root directory over WebDAV until interrupted (Ctrl-C or SIGTERM)."""
    tokens = load_secrets(token_file, os.environ.get(TOKENS_ENV))
    keys = load_secrets(signing_key_file, None if signing_key_file else os.environ.get(SIGNING_KEY_ENV))
    if len(keys) > 1:
        raise ConfigurationError("give exactly one signing key")
    config = ServerConfig(
        root=root.resolve(), host=host, port=port, tokens=tokens, signing_key=keys[0] if keys else None,
        threads=threads, readonly=readonly, header_timeout=header_timeout, body_min_rate=body_min_rate,
        max_upload_bytes=max_upload_size, partial_max_age=sweep_partials_after * 3600,
    )
    from .server import FileServer

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def ready(server: Any) -> None:
        links = "signed links on" if config.signing_key else "signed links off (no signing key)"
        click.echo(f"serving {config.root} at {server.url}/ ({len(tokens)} token(s), {links})", err=True)

    FileServer(config).serve_forever(stop, ready)
    click.echo("stopped", err=True)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> timedelta:
    number, unit = text[:-1], text[-1:].lower()
    if unit not in _UNITS or not number.isdigit() or int(number) <= 0:
        raise click.BadParameter(f"{text!r}: use a positive number with s, m, h or d, e.g. 30m or 7d")
    return timedelta(seconds=int(number) * _UNITS[unit])


@local_cloud.command("link")
@click.argument("path")
@click.option("--server-url", required=True, help="The file server's public URL, e.g. https://files.example.org")
@click.option("--signing-key-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help=f"File with the server's signing key (or set {SIGNING_KEY_ENV}).")
@click.option("--expires", default="7d", show_default=True, help="How long the link works: 30m, 12h, 7d...")
def link(path: str, server_url: str, signing_key_file: Path | None, expires: str) -> None:
    """Print a signed download link to PATH (relative to the server's root)."""
    keys = load_secrets(signing_key_file, None if signing_key_file else os.environ.get(SIGNING_KEY_ENV))
    if len(keys) != 1:
        raise ConfigurationError(f"give exactly one signing key (--signing-key-file or {SIGNING_KEY_ENV})")
    click.echo(signed_url(server_url, keys[0], safe_path(path), _duration(expires)))
