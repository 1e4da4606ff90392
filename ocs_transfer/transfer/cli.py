"""The transfer commands (registered by :mod:`ocs_transfer.transfer.builtin`).

Configuration comes from the environment (``Settings.from_env()``): the ledger
from ``OCS_TRANSFER_LEDGER_URL``, the key ring from ``OCS_TRANSFER_KEYS`` and
``OCS_TRANSFER_ACTIVE_KEY``. Credentials are prompted for (hidden), or read as a
JSON object from a file or stdin; a credential value is never a command-line
argument, so it never lands in shell history or ``ps`` output.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import attrs
import click

from ..exceptions import ConfigurationError
from ..settings import Settings

__all__ = ["COMMANDS"]

log = logging.getLogger(__name__)


@attrs.define
class _Context:
    settings: Settings
    _ledger: Any = None

    @property
    def ledger(self) -> Any:
        from .ledger import Ledger

        if self._ledger is None:
            self._ledger = Ledger.from_settings(self.settings)
        return self._ledger

    def destinations(self, *, keys: bool = False) -> Any:
        from .crypto import KeyRing
        from .destinations import Destinations

        keyring = KeyRing.from_settings(self.settings) if keys or self.settings.transfer_keys else None
        return Destinations(self.ledger, keyring, settings=self.settings)

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()

    def engine(self) -> Any:
        """The engine. The key ring is required (and checked now, at start-up)
        when keys are configured or any destination stores credentials; a
        ledger whose destinations need none (the embedded default: local
        disk) runs without keys."""
        from .crypto import KeyRing
        from .engine import Engine

        destinations = self.destinations()
        if not self.settings.transfer_keys and destinations.kids_in_use():
            KeyRing.from_settings(self.settings)  # raises: credentials are stored but no keys are configured
        return Engine(self.ledger, destinations, settings=self.settings)


def _ctx() -> _Context:
    """The settings and ledger, built once per command line."""
    root = click.get_current_context().find_root()
    obj = root.meta.get("ocs_transfer.transfer")
    if obj is None:
        obj = root.meta["ocs_transfer.transfer"] = _Context(Settings.from_env())
        root.call_on_close(obj.close)
    assert isinstance(obj, _Context)
    return obj


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


def _table(rows: Sequence[tuple[str, ...]]) -> Iterator[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        yield "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()


def _read_credentials(fields: tuple[str, ...], source: IO[str] | None) -> dict[str, str]:
    """Credential values: prompted (hidden) for each ``--credential FIELD``, or a
    JSON object read from ``--credentials-file`` (``-`` for stdin)."""
    creds: dict[str, str] = {}
    if source is not None:
        try:
            loaded = json.load(source)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"the credentials file is not a JSON object (line {exc.lineno})") from None
        if not isinstance(loaded, dict):
            raise ConfigurationError('the credentials file must hold a JSON object such as {"token": "..."}')
        for key, value in loaded.items():
            creds[str(key)] = value if isinstance(value, str) else json.dumps(value)
    for field in fields:
        if field in creds:
            continue
        creds[field] = click.prompt(f"{field} (input hidden; empty keeps the stored value)", hide_input=True,
                                    default="", show_default=False)  # fmt: skip
    return creds


def _parse_options(items: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--option {item!r} must look like KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _dest_dict(dest: Any) -> dict[str, Any]:
    return attrs.asdict(dest)


def _destination_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed([
        click.option("--display-name", default=None, help="A friendly name."),
        click.option("--path", default=None, help="Folder inside the provider, e.g. /observatory/fits."),
        click.option("--layout", default=None,
                     help="flat, by_target, by_project_and_target, archive, or a template such as"
                          " '{project}/{target}/{filename}'."),
        click.option("--comment", default=None),
        click.option("--description", default=None),
        click.option("--scope", type=click.Choice(["personal", "organization", "project"]), default=None),
        click.option("--owner", "owner_id", default=None, help="Id of the user, organization or project."),
        click.option("--keep-days", type=int, default=None, help="Delete files from it after this many days."),
        click.option("--delete-source/--keep-source", default=None,
                     help="Delete the server copy once every destination of a file completed."),
        click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Provider option (repeat)."),
        click.option("--credential", "credential_fields", multiple=True, metavar="FIELD",
                     help="Prompt (hidden) for this credential (repeat)."),
        click.option("--credentials-file", type=click.File("r"), default=None,
                     help='JSON object of credentials, e.g. {"token": "..."}; "-" reads stdin.'),
    ]):  # fmt: skip
        func = decorator(func)
    return func


def _fields(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    creds = _read_credentials(kwargs.pop("credential_fields"), kwargs.pop("credentials_file"))
    options = kwargs.pop("options")
    fields = {k: v for k, v in kwargs.items() if v is not None}
    if options:
        fields["options"] = _parse_options(options)
    return fields, creds


@click.group("dest")
def dest_group() -> None:
    """Manage destinations (where transfers go)."""


@dest_group.command("add")
@click.argument("name")
@click.option("--provider", required=True, help="Storage provider (see `ocs-transfer plugins`).")
@_destination_options
@click.option("--disabled", is_flag=True, help="Create it disabled.")
def dest_add(name: str, provider: str, disabled: bool, **kwargs: Any) -> None:
    """Create destination NAME."""
    fields, creds = _fields(kwargs)
    if disabled:
        fields["enabled"] = False
    dests = _ctx().destinations(keys=bool(creds))
    dest = dests.add(name, provider, credentials=creds, **fields)
    click.echo(f"destination {dest.name!r} created (id {dest.id}, provider {dest.provider})")


@dest_group.command("edit")
@click.argument("name")
@_destination_options
def dest_edit(name: str, **kwargs: Any) -> None:
    """Change destination NAME; credentials left empty keep their stored values."""
    fields, creds = _fields(kwargs)
    creds = {k: v for k, v in creds.items() if v}
    dest = _ctx().destinations(keys=bool(creds)).edit(name, credentials=creds, **fields)
    click.echo(f"destination {dest.name!r} updated")


@dest_group.command("list")
@click.option("--scope", type=click.Choice(["personal", "organization", "project"]), default=None)
@click.option("--owner", "owner_id", default=None)
@click.option("--json", "as_json", is_flag=True)
def dest_list(scope: str | None, owner_id: str | None, as_json: bool) -> None:
    """List destinations."""
    dests = _ctx().destinations().list(scope=scope, owner_id=owner_id)
    if as_json:
        click.echo(json.dumps([_dest_dict(d) for d in dests], indent=2))
        return
    if not dests:
        click.echo("no destinations (add one with `ocs-transfer dest add`)")
        return
    rows: list[tuple[str, ...]] = [("id", "name", "provider", "scope", "owner", "enabled", "path", "last test")]
    for d in dests:
        test = "-" if d.last_test_ok is None else ("ok " if d.last_test_ok else "FAILED ") + _when(d.last_test_at)
        rows.append((str(d.id), d.name, d.provider, d.scope, d.owner_id or "-", "yes" if d.usable else "no",
                     d.path or "/", test))  # fmt: skip
    for line in _table(rows):
        click.echo(line)


@dest_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def dest_show(name: str, as_json: bool) -> None:
    """Show destination NAME (credential names only, never values)."""
    data = _dest_dict(_ctx().destinations().get(name))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key.endswith("_at"):
            value = _when(value)
        click.echo(f"{key:18} {value}")


@dest_group.command("test")
@click.argument("name")
def dest_test(name: str) -> None:
    """Test the connection of destination NAME and record the result."""
    result = _ctx().destinations(keys=True).test(name)
    click.echo(f"{'ok' if result.ok else 'FAILED'}: {result.message} ({result.duration_s:.2f} s)")
    if not result.ok:
        sys.exit(1)


@dest_group.command("enable")
@click.argument("name")
def dest_enable(name: str) -> None:
    """Offer destination NAME for new transfers again."""
    _ctx().destinations().set_enabled(name, True)
    click.echo(f"destination {name!r} enabled")


@dest_group.command("disable")
@click.argument("name")
def dest_disable(name: str) -> None:
    """Stop offering destination NAME for new transfers (queued ones still run)."""
    _ctx().destinations().set_enabled(name, False)
    click.echo(f"destination {name!r} disabled")


@dest_group.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask.")
def dest_remove(name: str, yes: bool) -> None:
    """Delete destination NAME; its queued transfers will fail."""
    if not yes:
        click.confirm(f"remove destination {name!r}? Queued transfers to it will fail", abort=True)
    _ctx().destinations().remove(name)
    click.echo(f"destination {name!r} removed")


@dest_group.command("import")
@click.argument("record_file", type=click.File("r"))
@click.option("--name", default=None, help="Destination name (default: from the backend name).")
@click.option("--scope", type=click.Choice(["personal", "organization", "project"]), default="organization")
@click.option("--owner", "owner_id", default="")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Provider option the record lacks, e.g. server_url=https://seafile.example.edu (repeat).")
def dest_import(record_file: IO[str], name: str | None, scope: str, owner_id: str, options: tuple[str, ...]) -> None:
    """Create a destination from an old storage-backend record (a JSON object
    with the storage_backend* tags; "-" reads stdin)."""
    try:
        record = json.load(record_file)
    except json.JSONDecodeError:
        raise ConfigurationError("the storage backend record is not valid JSON") from None
    if not isinstance(record, dict):
        raise ConfigurationError("the storage backend record must be a JSON object")
    dest = _ctx().destinations(keys=True).import_storage_backend(
        record, name=name, scope=scope, owner_id=owner_id, extra_options=_parse_options(options)
    )
    click.echo(f"destination {dest.name!r} imported (id {dest.id}, provider {dest.provider})")


@click.command("sweep")
@click.argument("name")
@click.option("--older-than", "hours", type=float, default=24.0, show_default=True, metavar="HOURS",
              help="Remove only temporaries at least this old (a live upload's are young).")
def sweep_command(name: str, hours: float) -> None:
    """Remove the temporary names crashed uploads left in destination NAME."""
    from datetime import timedelta

    from .sweep import sweep_destination

    if hours < 0:
        raise ConfigurationError("--older-than must be zero or more hours")
    removed = sweep_destination(_ctx().destinations(), name, timedelta(hours=hours))
    for path in removed:
        click.echo(f"removed {path}")
    click.echo(f"{len(removed)} leftover temporary name(s) removed from {name!r}")


@click.command("schedule")
@click.argument("files", nargs=-1, required=True)
@click.option("--to", "destinations", multiple=True, required=True, help="Destination name (repeat).")
@click.option("--source", default=None,
              help="Source store (name or URL) holding FILES; default: FILES are local paths.")
@click.option("--target", default="", help="Target name, for the by_target layouts.")
@click.option("--project", default="", help="Project name, for the by_project_and_target layout.")
def schedule_command(files: tuple[str, ...], destinations: tuple[str, ...], source: str | None, target: str,
                     project: str) -> None:  # fmt: skip
    """Queue FILES for every destination given with --to."""
    engine = _ctx().engine()
    context = {k: v for k, v in (("target", target), ("project", project)) if v}
    created = []
    if source is not None:
        created = engine.schedule(source, list(files), destinations, context=context)
    else:
        for name in files:
            path = Path(name).resolve()
            if not path.is_file():
                raise ConfigurationError(f"{name}: no such file (give --source for files in another store)")
            created += engine.schedule(str(path.parent), [path.name], destinations, context=context)
    for t in created:
        click.echo(f"{t.id}\t{t.source_path}\t-> {t.destination_name}:{t.remote_path}")


@click.command("worker")
@click.option("--threads", type=int, default=None, help="Transfers at once (OCS_TRANSFER_WORKER_THREADS).")
@click.option("--until-idle", is_flag=True, help="Exit when nothing is due or running.")
@click.option("--poll", type=float, default=1.0, help="Seconds between looks for due transfers.")
def worker_command(threads: int | None, until_idle: bool, poll: float) -> None:
    """Run transfers as they come due (stop with Ctrl-C or SIGTERM)."""
    from .engine import Worker

    worker = Worker(_ctx().engine(), threads=threads, poll_interval=poll)

    def _stop(signum: int, frame: Any) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"worker {worker.engine.worker_id} started ({worker.threads} threads)", err=True)
    ran = worker.run(until_idle=until_idle)
    click.echo(f"worker stopped after {ran} attempt(s)", err=True)


@click.command("status")
@click.option("--state", type=click.Choice(["pending", "in_progress", "completed", "failed", "cancelled"]))
@click.option("--json", "as_json", is_flag=True)
def status_command(state: str | None, as_json: bool) -> None:
    """Transfers per destination (counts) and per file."""
    engine = _ctx().engine()
    counts = engine.counts()
    transfers = engine.transfers(state=state)
    if as_json:
        click.echo(json.dumps({"counts": counts, "transfers": [attrs.asdict(t) for t in transfers]}, indent=2))
        return
    states = ("pending", "in_progress", "completed", "failed", "cancelled")
    rows: list[tuple[str, ...]] = [("destination", *states)]
    rows += [(name, *(str(c.get(s, 0)) for s in states)) for name, c in sorted(counts.items())]
    for line in _table(rows):
        click.echo(line)
    per_file: dict[tuple[int, str], dict[str, int]] = {}
    for t in transfers:
        key = (t.file_id, t.source_path)
        per_file.setdefault(key, {}).setdefault(t.state, 0)
        per_file[key][t.state] += 1
    if per_file:
        click.echo("")
        rows = [("file", *states)]
        rows += [(path, *(str(c.get(s, 0)) for s in states)) for (_, path), c in sorted(per_file.items())]
        for line in _table(rows):
            click.echo(line)
    if transfers:
        click.echo("")
        rows = [("id", "file", "destination", "state", "attempts", "next attempt", "error / link")]
        for t in transfers:
            detail = t.last_error if t.state != "completed" else t.link
            nxt = _when(t.next_attempt_at) if t.state == "pending" else "-"
            rows.append((str(t.id), t.source_path, t.destination_name, t.state, str(t.attempts), nxt,
                         detail[:100]))  # fmt: skip
        for line in _table(rows):
            click.echo(line)


@click.command("retry")
@click.argument("transfer_id", type=int)
def retry_command(transfer_id: int) -> None:
    """Queue failed or cancelled transfer ID again, now."""
    t = _ctx().engine().retry(transfer_id)
    click.echo(f"transfer {t.id} queued again")


@click.command("cancel")
@click.argument("transfer_id", type=int)
def cancel_command(transfer_id: int) -> None:
    """Cancel transfer ID (a running one stops cleanly)."""
    t = _ctx().engine().cancel(transfer_id)
    click.echo(f"transfer {t.id}: {'cancelled' if t.state == 'cancelled' else 'cancel requested'}")


@click.command("purge")
@click.option("--days", type=int, default=None, help="Older than this (OCS_TRANSFER_PURGE_AFTER_DAYS).")
@click.option("--failed", is_flag=True, help="Purge failed and cancelled records too.")
def purge_command(days: int | None, failed: bool) -> None:
    """Delete old completed transfer records."""
    click.echo(f"purged {_ctx().engine().purge(older_than_days=days, failed=failed)} record(s)")


@click.command("expire")
def expire_command() -> None:
    """Delete files from destinations past their keep_days."""
    click.echo(f"expired {_ctx().engine().expire()} file(s)")


@click.group("keys")
def keys_group() -> None:
    """Credential encryption keys."""


@keys_group.command("generate")
@click.option("--kid", default="k1", help="Key id to print the entry with.")
def keys_generate(kid: str) -> None:
    """Print a new key entry for OCS_TRANSFER_KEYS (keep it secret)."""
    from .crypto import generate_key

    click.echo(f"{kid}:{generate_key()}")


@keys_group.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored credential with OCS_TRANSFER_ACTIVE_KEY."""
    dests = _ctx().destinations(keys=True)
    count = dests.rotate_keys()
    kids = sorted(dests.kids_in_use())
    click.echo(f"re-encrypted {count} destination(s); keys in use now: {', '.join(kids) or 'none'}")


@keys_group.command("status")
def keys_status() -> None:
    """Which keys stored credentials use (a key may be removed when unused)."""
    dests = _ctx().destinations(keys=True)
    used = dests.kids_in_use()
    for kid in dests.keyring.kids:
        mark = " (active)" if kid == dests.keyring.active else ""
        click.echo(f"{kid}{mark}: {'in use' if kid in used else 'unused'}")
    for kid in sorted(used - set(dests.keyring.kids)):
        click.echo(f"{kid}: IN USE BUT MISSING from OCS_TRANSFER_KEYS")


COMMANDS = [dest_group, schedule_command, worker_command, status_command, retry_command, cancel_command,
            purge_command, expire_command, keys_group, sweep_command]  # fmt: skip


