"""``ocs-transfer gdrive authorize``: get a refresh token for a Drive
destination the way a person does it (open a URL, consent, paste the code)."""

from __future__ import annotations

import os
from typing import Any

import click

from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.redact import Secret

from .auth import AUTHORIZE_URL, DEFAULT_API_URL, DEFAULT_TOKEN_URL, SCOPE, authorize_url, exchange_code, parse_code

__all__ = ["gdrive"]

SECRET_ENV = "OCS_TRANSFER_GDRIVE_CLIENT_SECRET"  # noqa: S105 - a variable name


@click.group("gdrive")
def gdrive() -> None:
    """Google Drive destinations."""


def _destinations() -> Any:
    from ocs_transfer.settings import Settings
    from ocs_transfer.transfer.crypto import KeyRing
    from ocs_transfer.transfer.destinations import Destinations
    from ocs_transfer.transfer.ledger import Ledger

    settings = Settings.from_env()
    return Destinations(Ledger.from_settings(settings), KeyRing.from_settings(settings), settings=settings)


@gdrive.command("authorize")
@click.option("--dest", "dest_name", default=None, help="Store the result into this gdrive destination.")
@click.option("--client-id", default=None, help="OAuth client id (default: the destination's).")
@click.option("--redirect-uri", default="http://127.0.0.1:1/", show_default=True,
              help="A redirect URI registered for the client; after consent, copy the code (or the whole URL"
                   " the browser shows) from it.")
@click.option("--scope", default=SCOPE, show_default=True)
@click.option("--token-url", default=None,
              help=f"Token endpoint (default: the destination's, else {DEFAULT_TOKEN_URL}).")
@click.option("--api-url", default=None, help=f"Drive API base (default: the destination's, else {DEFAULT_API_URL}).")
@click.option("--auth-url", default=AUTHORIZE_URL, show_default=True, help="Google's consent page (for proxies).")
def authorize(dest_name: str | None, client_id: str | None, redirect_uri: str, scope: str, token_url: str | None,
              api_url: str | None, auth_url: str) -> None:  # fmt: skip
    """Print the consent URL, read the code, and store (or print) the refresh token.

    The client secret comes from the destination, from the environment
    variable OCS_TRANSFER_GDRIVE_CLIENT_SECRET, or a hidden prompt; it is never
    a command-line argument.
    """
    stored: dict[str, Secret] = {}
    options: dict[str, Any] = {}
    dests = None
    if dest_name:
        dests = _destinations()
        dest = dests.get(dest_name)
        if dest.provider != "gdrive":
            raise ConfigurationError(f"destination {dest_name!r} is a {dest.provider} destination, not gdrive")
        stored, options = dests.credentials(dest_name), dest.options
    client_id = client_id or (stored["client_id"].reveal() if "client_id" in stored else None)
    if not client_id:
        raise ConfigurationError("give --client-id (the OAuth client of a Google Cloud project)")
    secret: Secret | str | None = stored.get("client_secret") or os.environ.get(SECRET_ENV)
    if not secret:
        secret = click.prompt("OAuth client secret", hide_input=True, err=True)
    token_url = token_url or options.get("token_url") or DEFAULT_TOKEN_URL
    api_url = api_url or options.get("api_url") or DEFAULT_API_URL
    request = authorize_url(client_id, redirect_uri, scope=scope, auth_url=auth_url)
    click.echo("Open this URL, sign in and allow access:\n", err=True)
    click.echo(request.url)
    pasted = click.prompt("\nPaste the code (or the whole URL you were sent to)", err=True)
    result = exchange_code(client_id, secret, parse_code(pasted, request.state), request, token_url=token_url,
                           api_url=api_url)  # fmt: skip
    who = result.email or "an account whose address Drive did not tell"
    if dests is not None and dest_name:
        dests.save_credentials(dest_name, {"client_id": client_id, "client_secret": secret,
                                           "refresh_token": result.refresh_token})  # fmt: skip
        click.echo(f"authorized as {who}; the refresh token is stored in destination {dest_name!r}", err=True)
        return
    click.echo(f"authorized as {who}. Store these credentials (e.g. dest add --credentials-file):", err=True)
    import json

    click.echo(json.dumps({"client_id": client_id, "client_secret": secret.reveal() if isinstance(secret, Secret)
                           else secret, "refresh_token": result.refresh_token.reveal()}))  # fmt: skip
