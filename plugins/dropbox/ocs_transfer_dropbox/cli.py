"""``ocs-transfer dropbox authorize``: authorize the app for a Dropbox
account and store the result in a destination (or print it)."""

from __future__ import annotations

import json

import click

from ocs_transfer.exceptions import ConfigurationError

from .auth import authorize_url, exchange_code
from .client import DEFAULT_API_URL


@click.group("dropbox")
def dropbox_group() -> None:
    """Dropbox destinations."""


@dropbox_group.command("authorize")
@click.option("--app-key", required=True, help="The Dropbox app's key.")
@click.option("--app-secret", default=None, help="The app's secret (optional with PKCE; prompted when '-').")
@click.option("--dest", "dest_name", default=None, help="Store the credentials into this destination.")
@click.option("--api-url", default=DEFAULT_API_URL, show_default=True, help="Dropbox's API base URL.")
@click.option("--code", default=None, help="The code Dropbox showed (default: prompt).")
def authorize_command(app_key: str, app_secret: str | None, dest_name: str | None, api_url: str,
                      code: str | None) -> None:  # fmt: skip
    """Print the authorize URL, read the code, and store the refresh token."""
    if app_secret == "-":  # noqa: S105 - "prompt for it", not a password
        app_secret = click.prompt("app secret (input hidden)", hide_input=True)
    request = authorize_url(app_key)
    click.echo("Open this page, allow access, and paste the code Dropbox shows:")
    click.echo(request.url)
    code = code or click.prompt("code")
    result = exchange_code(app_key, code, request.code_verifier, app_secret=app_secret, api_url=api_url)
    creds = result.credentials(app_key, app_secret)
    if dest_name is None:
        click.echo(f"authorized as {result.email}; store these credentials (keep them secret):")
        click.echo(json.dumps(creds))
        return
    from ocs_transfer.settings import Settings
    from ocs_transfer.transfer.crypto import KeyRing
    from ocs_transfer.transfer.destinations import Destinations
    from ocs_transfer.transfer.ledger import Ledger

    settings = Settings.from_env()
    ledger = Ledger.from_settings(settings)
    try:
        destinations = Destinations(ledger, KeyRing.from_settings(settings), settings=settings)
        if destinations.get(dest_name).provider != "dropbox":
            raise ConfigurationError(f"destination {dest_name!r} is not a dropbox destination")
        destinations.save_credentials(dest_name, creds)
    finally:
        ledger.close()
    click.echo(f"authorized as {result.email}; credentials stored in destination {dest_name!r}")
