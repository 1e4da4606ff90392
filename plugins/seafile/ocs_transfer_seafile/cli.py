"""The ``ocs-transfer seafile`` commands: ``get-token`` (an account token
from user name and password) and ``list-repos`` (the libraries a token sees,
with their ids), the two helpers the results service's users run today."""

from __future__ import annotations

import json
import sys

import attrs
import click

from ocs_transfer.redact import Secret

__all__ = ["seafile_group"]

TOKEN_ENV = "SEAFILE_TOKEN"  # noqa: S105 - the name of an environment variable


@click.group("seafile")
def seafile_group() -> None:
    """Seafile helpers: get an API token, list libraries and their ids."""


def _password(password_stdin: bool) -> Secret:
    if password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise click.UsageError("--password-stdin: no password on standard input")
        return Secret(line)
    return Secret(click.prompt("Seafile password (input hidden)", hide_input=True))


@seafile_group.command("get-token")
@click.option("--server", required=True, help="The Seafile server, e.g. https://seafile.example.edu")
@click.option("--username", required=True, help="Your Seafile login (usually an e-mail address).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of asking.")
@click.option("--otp", default=None, help="The current two-factor code, for accounts with two-factor authentication.")
def get_token_command(server: str, username: str, password_stdin: bool, otp: str | None) -> None:
    """Print an API token for USERNAME (the password is asked without echo)."""
    from .api import get_token

    token = get_token(server, username, _password(password_stdin), otp=otp)
    click.echo(token.reveal())
    click.echo(
        "Store it in a destination with `ocs-transfer dest add NAME --provider seafile --credential token ...`;"
        " anyone holding it can use your account.", err=True,
    )  # fmt: skip


@seafile_group.command("list-repos")
@click.option("--server", required=True, help="The Seafile server, e.g. https://seafile.example.edu")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_repos_command(server: str, as_json: bool) -> None:
    """List the libraries the token can see: name, id, size, permission,
    encrypted (a library API token: its one library). The token comes from
    $SEAFILE_TOKEN, else it is asked for."""
    import os

    from .api import list_repos

    raw = os.environ.get(TOKEN_ENV) or click.prompt("Seafile API token (input hidden)", hide_input=True, err=True)
    repos = list_repos(server, Secret(raw))
    if as_json:
        click.echo(json.dumps([attrs.asdict(r) for r in repos], indent=2))
        return
    if not repos:
        click.echo("no libraries")
        return
    rows = [("name", "id", "size", "permission", "encrypted")]
    rows += [(r.name, r.id, str(r.size), r.permission, "yes" if r.encrypted else "no") for r in repos]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
