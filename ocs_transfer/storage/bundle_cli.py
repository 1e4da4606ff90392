"""``ocs-transfer bundle``: zip files into a destination now, with a share link.

::

    ocs-transfer bundle results/run-17 summary.pdf --to userbox --name results.zip --keep-days 7 --json

With a destination of the ledger (``dest add``), the bundle is a transfer
like any other (``schedule --bundle``) that this command runs at once: it is
recorded, retried on the same schedule when it fails, and ``ocs-transfer
expire`` deletes it and its share links after ``--keep-days`` (default: the
destination's retention). With a directory or URL it is stored directly and
nothing is recorded.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import IO, Any, NoReturn

import click

from ..exceptions import ConfigurationError
from ..settings import Settings

__all__ = ["bundle_command"]


def _keep(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    from ..transfer.destinations import parse_retention

    try:
        return parse_retention(value)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.command("bundle")
@click.argument("files", nargs=-1, required=True)
@click.option("--to", "destination", required=True, metavar="DEST",
              help="A destination of the ledger (recorded, expired by `expire`), a directory or a URL.")
@click.option("--name", required=True, metavar="NAME", help="The bundle's name, e.g. results.zip.")
@click.option("--keep-days", "keep_hours", default=None, metavar="DAYS|DURATION", callback=_keep,
              help="Keep it (and its link) this long: days (7) or a duration (48h)"
                   " [default: the destination's retention].")
@click.option("--include", multiple=True, metavar="GLOB", help="In directories, only files matching (repeat).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="In directories, skip files matching (repeat).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Provider option for DEST (repeat).")
@click.option("--credentials-file", type=click.File("r"), default=None,
              help='JSON object of credentials for DEST; "-" reads stdin.')
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (path, size, md5, sha256, members,"
              " link, expires).")
def bundle_command(
    files: tuple[str, ...], destination: str, name: str, keep_hours: int | None, include: tuple[str, ...],
    exclude: tuple[str, ...], options: tuple[str, ...], credentials_file: IO[str] | None, as_json: bool,
) -> None:  # fmt: skip
    """Zip FILES (files or directories) into DEST as NAME, streaming (no copy
    on disk), verify it, and print its share link. Members already
    compressed (.fz, .gz, .jpg, ...) are stored, the others deflated; the same
    files give the same bytes."""
    from .bundle import BundleResult, bundle_files, local_member, plan_files
    from .cli import _human, open_target, parse_options, read_credentials_file

    settings = Settings.from_env()
    keep = timedelta(hours=keep_hours) if keep_hours is not None else None
    try:
        planned = plan_files(files, include, exclude)
        opts, creds = parse_options(options), read_credentials_file(credentials_file)
        recorded = _ledger_bundle(destination, settings, planned, name, keep_hours, opts, creds)
        if recorded is None:
            opened = open_target(destination, settings=settings, options=opts, credentials=creds)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    if recorded is not None:
        result: BundleResult | dict[str, Any] = recorded
    else:
        with opened.store as store:
            members = [local_member(path, member) for path, member in planned]
            result = bundle_files(store, members, name, keep=keep, prefix=opened.prefix)
    data = result.as_dict() if isinstance(result, BundleResult) else result
    _note_short_link(data, keep)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(f"bundled {len(data['members'])} file(s) into {destination}:{data['path']} ({_human(data['size'])},"
               f" sha256 {data['sha256']})")  # fmt: skip
    if data["link"]:
        click.echo(f"link: {data['link']}")
        kept = f"; the bundle is kept until {data['kept_until']}" if data.get("kept_until") else ""
        click.echo(f"expires: {data['expires'] or 'not by itself' + kept}")
    else:
        click.echo("no link: the destination makes none (set its link_base_url, or use a file server)", err=True)


def _ledger_bundle(
    destination: str, settings: Settings, planned: Any, name: str, keep_hours: int | None,
    options: dict[str, Any], credentials: dict[str, str],
) -> dict[str, Any] | None:  # fmt: skip
    """Schedule the bundle for a destination of the ledger and run it now;
    its result as ``--json`` prints it. None when ``destination`` is not one."""
    from ..transfer.cli import ledger_exists

    if not ledger_exists(settings) or "/" in destination or ":" in destination:
        return None
    from ..transfer.bundles import BundleFailedError, run_bundle_now

    try:
        return run_bundle_now(settings, destination, planned, name, keep_hours=keep_hours,
                              refuse_options=bool(options or credentials))  # fmt: skip
    except BundleFailedError as exc:
        _exit_failed(str(exc))



def _note_short_link(data: dict[str, Any], keep: timedelta | None) -> None:
    """Say so on stderr when the provider's links die before the bundle is deleted."""
    from datetime import UTC, datetime

    if keep is None or not data.get("expires"):
        return
    expires = datetime.fromisoformat(data["expires"])
    if expires < datetime.now(UTC) + keep - timedelta(minutes=1):
        click.echo(f"note: the provider's links live at most until {expires:%Y-%m-%d %H:%M} UTC, before the bundle"
                   " is deleted: a new link is needed then", err=True)  # fmt: skip


def _exit_failed(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)
