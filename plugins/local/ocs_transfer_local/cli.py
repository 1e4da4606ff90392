"""The ``ocs-transfer local-cloud`` commands: run the self-hosted file server,
and make signed download links for it."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from ocs_transfer.exceptions import ConfigurationError

from .server import DEFAULT_PORT, SIGNING_KEY_ENV, TOKENS_ENV, FileServer, ServerConfig, load_secrets

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
def serve(root: Path, host: str, port: int, token_file: Path | None, signing_key_file: Path | None,
          threads: int, readonly: bool) -> None:
    """Serve DIR over WebDAV until interrupted (Ctrl-C or SIGTERM)."""
    tokens = load_secrets(token_file, os.environ.get(TOKENS_ENV))
    keys = load_secrets(signing_key_file, None if signing_key_file else os.environ.get(SIGNING_KEY_ENV))
    if len(keys) > 1:
        raise ConfigurationError("give exactly one signing key")
    config = ServerConfig(
        root=root.resolve(), host=host, port=port, tokens=tokens, signing_key=keys[0] if keys else None,
        threads=threads, readonly=readonly,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def ready(server: FileServer) -> None:
        links = "signed links on" if config.signing_key else "signed links off (no signing key)"
        click.echo(f"serving {config.root} at {server.url}/ ({len(tokens)} token(s), {links})", err=True)

    FileServer(config).serve_forever(stop, ready)
    click.echo("stopped", err=True)
