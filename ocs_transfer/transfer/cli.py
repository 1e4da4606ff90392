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
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import attrs
import click

from ..exceptions import ConfigurationError
from ..settings import Settings

__all__ = [
    "cancel_command", "dest_group", "expire_command", "keys_group", "ledger_group", "purge_command", "retry_command",
    "schedule_command", "status_command", "sweep_command", "worker_command",
]  # fmt: skip

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
        """The engine (:meth:`Engine.from_settings` on this command line's ledger)."""
        from .engine import Engine

        return Engine.from_settings(self.settings, self.ledger)


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


def ledger_exists(settings: Settings) -> bool:
    """Whether the ledger is there: a SQLite file that does not exist is not
    (commands that only read say so instead of creating one); any other
    database is assumed to be."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(settings.ledger_url)
    except Exception:
        return True  # let the ledger say what is wrong with the URL
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return True
    return Path(url.database).exists()


def _existing_ledger() -> None:
    settings = _ctx().settings
    if not ledger_exists(settings):
        raise ConfigurationError(
            f"there is no ledger at {settings.ledger_url} (nothing was scheduled here yet); set"
            " OCS_TRANSFER_LEDGER_URL to the one the worker uses, or schedule files first"
        )


def _read_credentials(fields: tuple[str, ...], source: IO[str] | None) -> dict[str, str]:
    """Credential values: prompted (hidden) for each ``--credential FIELD``, or a
    JSON object read from ``--credentials-file`` (``-`` for stdin)."""
    from ..storage.cli import read_credentials_file

    creds = read_credentials_file(source)
    for field in fields:
        if field in creds:
            continue
        creds[field] = click.prompt(f"{field} (input hidden; empty keeps the stored value)", hide_input=True,
                                    default="", show_default=False)  # fmt: skip
    return creds


def _dest_dict(dest: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in attrs.asdict(dest).items():
        data[key] = value
        if key == "keep_hours":  # keep_days computed from it, as destinations had it before hours
            data["keep_days"] = dest.keep_days
    return data


def _keep(hours: int | None) -> str:
    """A retention as `dest list` shows it: ``48h``, ``7d`` or ``-`` (forever)."""
    if hours is None:
        return "-"
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


def _retention(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """``--keep-days``: whole days (``7``) or a duration (``48h``, ``2d``), as hours."""
    from .destinations import parse_retention

    try:
        return parse_retention(value)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _destination_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed([
        click.option("--display-name", default=None, help="A friendly name."),
        click.option("--path", default=None, help="Folder inside the provider, e.g. /observatory/fits."),
        click.option("--layout", default=None,
                     help="flat, by_target, by_project_and_target, archive, or a template such as"
                          " '{project}/{target}/{filename}'."),
        click.option("--comment", default=None, help="A note for whoever manages it (shown by `dest show`)."),
        click.option("--description", default=None, help="What it is for, shown to users who pick it."),
        click.option("--scope", type=click.Choice(["personal", "organization", "project"]), default=None),
        click.option("--owner", "owner_id", default=None, help="Id of the user, organization or project."),
        click.option("--keep-days", "keep_days_hours", default=None, metavar="DAYS|DURATION", callback=_retention,
                     help="Delete files from it this long after their transfer: days (7) or a duration (48h, 2d)."),
        click.option("--keep-hours", type=click.IntRange(min=1), default=None,
                     help="Delete files from it this many hours after their transfer (same as --keep-days Nh)."),
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
    days_hours = kwargs.pop("keep_days_hours")
    if days_hours is not None and kwargs["keep_hours"] not in (None, days_hours):
        raise click.UsageError("give --keep-days or --keep-hours, not both")
    if days_hours is not None:
        kwargs["keep_hours"] = days_hours
    fields = {k: v for k, v in kwargs.items() if v is not None}
    if options:
        from ..storage.cli import parse_options

        fields["options"] = parse_options(options)
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
@click.option("--unset-option", "unset_options", multiple=True, metavar="KEY",
              help="Remove this provider option (repeat).")
def dest_edit(name: str, unset_options: tuple[str, ...], **kwargs: Any) -> None:
    """Change destination NAME. --option adds or replaces one option and keeps
    the others; --unset-option removes one. Credentials left empty keep their
    stored values."""
    fields, creds = _fields(kwargs)
    creds = {k: v for k, v in creds.items() if v}
    dest = _ctx().destinations(keys=bool(creds)).edit(name, credentials=creds, unset_options=unset_options,
                                                      **fields)  # fmt: skip
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
    rows: list[tuple[str, ...]] = [("id", "name", "provider", "scope", "owner", "enabled", "path", "keep",
                                    "last test")]  # fmt: skip
    for d in dests:
        test = "-" if d.last_test_ok is None else ("ok " if d.last_test_ok else "FAILED ") + _when(d.last_test_at)
        rows.append((str(d.id), d.name, d.provider, d.scope, d.owner_id or "-", "yes" if d.usable else "no",
                     d.path or "/", _keep(d.keep_hours), test))  # fmt: skip
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
    for field, value in data.items():
        click.echo(f"{field:18} {_readable(field, value)}".rstrip())


def _readable(key: str, value: Any) -> str:
    """One value of ``dest show``, as a person reads it (no Python reprs)."""
    if key.endswith("_at"):
        return _when(value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(value.items())) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


@dest_group.command("test")
@click.argument("name")
def dest_test(name: str) -> None:
    """Test the connection of destination NAME and record the result."""
    result = _ctx().destinations().test(name)  # the key ring is needed only to decrypt stored credentials
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
    dests = _ctx().destinations()
    dests.get(name)  # no such destination: say so before asking
    if not yes:
        click.confirm(f"remove destination {name!r}? Queued transfers to it will fail", abort=True)
    dests.remove(name)
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
    from ..storage.cli import parse_options

    dest = _ctx().destinations(keys=True).import_storage_backend(
        record, name=name, scope=scope, owner_id=owner_id, extra_options=parse_options(options)
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
              help="Source store (name or URL) holding FILES; default: FILES are local files or directories.")
@click.option("--target", default="", help="Target name instead of the files' own, for the by_target layouts.")
@click.option("--project", default="", help="Project instead of the files' own, for by_project_and_target.")
@click.option("-m", "--metadata", "metadata", multiple=True, metavar="KEY=VALUE",
              help="Metadata merged over every local file's headers (repeat); PDFs and JPEGs have only this.")
@click.option("--include", multiple=True, metavar="GLOB", help="In directories, only files matching (repeat).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="In directories, skip files matching (repeat).")
@click.option("--bundle", "bundle_name", default=None, metavar="NAME",
              help="Queue FILES as one zip NAME (e.g. results.zip), made when it is sent, with a share link.")
@click.option("--keep-days", "keep_hours", default=None, metavar="DAYS|DURATION", callback=_retention,
              help="With --bundle: keep it (and its link) this long [default: the destination's retention].")
def schedule_command(files: tuple[str, ...], destinations: tuple[str, ...], source: str | None, target: str,
                     project: str, metadata: tuple[str, ...], include: tuple[str, ...],
                     exclude: tuple[str, ...], bundle_name: str | None, keep_hours: int | None) -> None:  # fmt: skip
    """Queue FILES for every destination given with --to. Local files are
    read now, as `send` reads them, so the destinations' layouts (by_target,
    archive, templates) get each file's own target, project, site, ...
    With --bundle, FILES become one transfer per destination: a zip of them
    all, stored as NAME under the destination's path."""
    engine = _ctx().engine()
    given = {k: v for k, v in (("target", target), ("project", project)) if v}
    created = []
    if bundle_name is not None:
        if source is not None or metadata or target or project:
            raise click.UsageError("--bundle takes local FILES only (no --source, -m, --target or --project)")
        from ..storage.bundle import plan_files
        from .bundles import local_members

        members = local_members(plan_files(files, include, exclude))
        created = engine.schedule_bundle(bundle_name, members, destinations, keep_hours=keep_hours)
    elif keep_hours is not None:
        raise click.UsageError("--keep-days goes with --bundle (a destination's retention is set by `dest edit`)")
    elif source is not None:
        if metadata:
            raise ConfigurationError("-m needs local files; with --source give --target/--project instead")
        created = engine.schedule(source, list(files), destinations, context=given)
    else:
        plan = _plan(engine, files, destinations, given, metadata, include, exclude)
        # one call: all or nothing (two files that want one remote path are both refused)
        created = engine.schedule_files([(directory, name, context, "") for directory, name, context in plan],
                                        destinations)  # fmt: skip
    for t in created:
        click.echo(f"{t.id}\t{t.source_path}\t-> {t.destination_name}:{t.remote_path}")
    _publish(engine, [t.id for t in created])


def _plan(
    engine: Any, files: Sequence[str], destinations: Sequence[str], given: dict[str, str], metadata: Sequence[str],
    include: Sequence[str], exclude: Sequence[str],
) -> list[tuple[str, str, dict[str, str]]]:  # fmt: skip
    """``(directory, name, context)`` for each local file, with the layout
    fields read from its metadata; every file's path in every destination is
    checked before anything is queued."""
    from ..exceptions import OcsTransferError
    from ..input import open_datafile
    from ..input.cli import _parse_metadata
    from ..storage.cli import expand_files
    from ..storage.layouts import context_from
    from .engine import remote_path_for

    extra = _parse_metadata(tuple(metadata))
    dests = [engine.destinations.get(ref) for ref in destinations]
    read = extra or any((d.layout or "flat") != "flat" for d in dests)
    plan = []
    for path in expand_files(files, include, exclude):
        if not path.is_file():
            raise ConfigurationError(f"{path}: no such file (give --source for files in another store)")
        path = path.resolve()
        context: dict[str, str] = {}
        unreadable = ""
        if read:
            try:
                with open_datafile(path, extra, settings=engine.settings) as data_file:
                    context = context_from(data_file)
            except (OcsTransferError, OSError) as exc:
                unreadable = " ".join(str(exc).split())
        context.update(given)
        for dest in dests:
            try:
                remote_path_for(dest.snapshot(), path.name, context)
            except OcsTransferError as exc:
                why = f"; its metadata could not be read ({unreadable}): give it with -m KEY=VALUE" * bool(unreadable)
                raise ConfigurationError(f"{path}: {exc}{why}") from None
        plan.append((str(path.parent), path.name, context))
    return plan


@click.command("worker")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Transfers at once, at least 1 (OCS_TRANSFER_WORKER_THREADS).")
@click.option("--until-idle", is_flag=True, help="Exit when nothing is due or running.")
@click.option("--poll", type=click.FloatRange(min=0.0, min_open=True), default=1.0,
              help="Seconds between looks for due transfers.")
@click.option("--live/--no-live", default=None,
              help="A live line of running transfers on stderr [default: on a terminal; plain log lines otherwise].")
@click.option("--celery", "use_celery", is_flag=True,
              help="Run a Celery worker instead: --threads worker processes taking tasks from"
                   " OCS_TRANSFER_BROKER_URL (see docs/scaling.md).")
def worker_command(threads: int | None, until_idle: bool, poll: float, live: bool | None, use_celery: bool) -> None:
    """Run transfers as they come due (stop with Ctrl-C or SIGTERM)."""
    from .worker import Worker

    if use_celery:
        if until_idle or live:
            raise click.UsageError("--until-idle and --live go with the thread-pool worker, not --celery")
        from . import celery

        settings = _ctx().settings
        _ctx().engine().check_credentials()  # a key error stops here, before the worker starts
        celery.run_worker(settings, threads or settings.worker_threads)
        return
    worker = Worker(_ctx().engine(), threads=threads, poll_interval=poll)

    def _stop(signum: int, frame: Any) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"worker {worker.engine.worker_id} started ({worker.threads} threads)", err=True)
    if live if live is not None else sys.stderr.isatty():
        with _LiveLine(worker.engine):
            ran = worker.run(until_idle=until_idle)
    else:
        worker.engine.on_finished = _outcome_line  # one plain line per outcome
        ran = worker.run(until_idle=until_idle)
    click.echo(f"worker stopped after {ran} attempt(s)", err=True)


@click.command("beat")
def beat_command() -> None:
    """Run Celery beat for the Celery executor (one per deployment): it has
    the workers reclaim, publish due retries, and run the periodic pass."""
    from . import celery

    celery.run_beat(_ctx().settings)


def _publish(engine: Any, ids: list[int]) -> None:
    """With OCS_TRANSFER_EXECUTOR=celery, hand the transfers just queued to
    the broker. A broker that cannot be reached loses nothing: they are in the
    ledger, and the dispatch pass publishes them when it is back."""
    if engine.settings.executor != "celery" or not ids:
        return
    from . import celery

    try:
        celery.publish(engine, ids)
    except Exception as exc:
        click.echo(f"warning: the broker could not be reached ({type(exc).__name__}); the transfers are queued in"
                   " the ledger and Celery beat's next dispatch publishes them", err=True)


def _outcome_line(t: Any) -> None:
    where = f"{t.destination_name}:{t.remote_path}"
    if t.state == "completed":
        click.echo(f"transfer {t.id} completed: {t.source_path} -> {where}", err=True)
    else:
        click.echo(f"transfer {t.id} {t.state}: {t.source_path} -> {where}: {t.last_error}", err=True)


class _LiveLine:
    """A line on stderr, redrawn every second, of this worker's running
    transfers (file, bytes so far) and how many finished."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ocs-transfer-live", daemon=True)
        self.live: Any = None
        self.finished = 0
        engine.on_finished = self._count  # outcomes are counted, not read back from the whole ledger

    def _count(self, transfer: Any) -> None:
        self.finished += 1

    def _line(self) -> str:
        mine = [t for t in self.engine.transfers(state="in_progress") if t.worker == self.engine.worker_id]
        finished = self.finished
        parts = [f"{Path(t.source_path).name} {_size(t.bytes_done)}/{_size(t.size)}" for t in mine]
        return f"worker: {len(mine)} running, {finished} finished" + (": " + ", ".join(parts) if parts else "")

    def _run(self) -> None:
        while not self.done.wait(1.0):
            try:
                self.live.update(self._line())
            except Exception as exc:  # the ledger is busy or away: the worker itself reports that
                log.debug("live line: %s", type(exc).__name__)

    def __enter__(self) -> _LiveLine:
        from rich.console import Console
        from rich.live import Live

        self.live = Live(self._line(), console=Console(file=sys.stderr, force_terminal=True, highlight=False),
                         auto_refresh=False)  # fmt: skip
        self.live.__enter__()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.live.update(self._line(), refresh=True)
        self.live.__exit__(None, None, None)


def _size(n: int | None) -> str:
    from ..storage.cli import _human

    return "?" if n is None else _human(n)


_STATES = ("pending", "in_progress", "completed", "failed", "cancelled")
#: Errors longer than this are cut in the `status` table (marked; `status ID` shows them whole). Links never are.
_ERROR_WIDTH = 100


@click.command("status")
@click.argument("which", required=False, metavar="[ID_OR_NAME]")
@click.option("--state", type=click.Choice(_STATES))
@click.option("--json", "as_json", is_flag=True)
def status_command(which: str | None, state: str | None, as_json: bool) -> None:
    """Transfers per destination (counts) and per file; with ID_OR_NAME (a
    transfer id, a file name or path, or a destination name) those transfers
    whole."""
    _existing_ledger()
    engine = _ctx().engine()
    if which is not None:
        chosen = _matching(engine, which, state)
        if as_json:
            click.echo(json.dumps([attrs.asdict(t) for t in chosen], indent=2))
            return
        for i, t in enumerate(chosen):
            if i:
                click.echo("")
            for field, value in attrs.asdict(t).items():
                click.echo(f"{field:18} {_readable(field, value) or '-'}")
        return
    counts = engine.counts()
    transfers = engine.transfers(state=state)
    if as_json:
        click.echo(json.dumps({"counts": counts, "transfers": [attrs.asdict(t) for t in transfers]}, indent=2))
        return
    rows: list[tuple[str, ...]] = [("destination", *_STATES)]
    rows += [(name, *(str(c.get(s, 0)) for s in _STATES)) for name, c in sorted(counts.items())]
    for line in _table(rows):
        click.echo(line)
    per_file: dict[tuple[int, str], dict[str, int]] = {}
    for t in transfers:
        key = (t.file_id, t.source_path)
        per_file.setdefault(key, {}).setdefault(t.state, 0)
        per_file[key][t.state] += 1
    if per_file:
        click.echo("")
        rows = [("file", *_STATES)]
        rows += [(path, *(str(c.get(s, 0)) for s in _STATES)) for (_, path), c in sorted(per_file.items())]
        for line in _table(rows):
            click.echo(line)
    if transfers:
        click.echo("")
        rows = [("id", "file", "destination", "state", "attempts", "next attempt", "error / link / progress")]
        for t in transfers:
            nxt = _when(t.next_attempt_at) if t.state == "pending" else "-"
            rows.append((str(t.id), t.source_path, t.destination_name, t.state, str(t.attempts), nxt,
                         _detail(t, engine.clock())))  # fmt: skip
        for line in _table(rows):
            click.echo(line)


def _detail(t: Any, now: float) -> str:
    """The last column of `status`: a link whole, a running transfer's worker,
    heartbeat and bytes, or the error (long ones cut, and marked so)."""
    if t.state == "completed":
        return t.link or "-"
    if t.state == "in_progress":
        beat = f"heartbeat {max(0, round(now - t.heartbeat_at))} s ago" if t.heartbeat_at else "no heartbeat yet"
        return f"running on {t.worker}, {beat}, {_size(t.bytes_done)} of {_size(t.size)}"
    error = " ".join(t.last_error.split())
    if t.state == "pending" and error:
        error = f"last attempt: {error}"
    if len(error) > _ERROR_WIDTH:
        error = error[:_ERROR_WIDTH] + f" [...cut: `ocs-transfer status {t.id}` shows it whole]"
    return error or "-"


def _matching(engine: Any, which: str, state: str | None) -> list[Any]:
    """The transfers ``which`` names: an id, a source file (path or name), or
    a destination."""
    if which.isdigit():
        found = [engine.get(int(which))]
    else:
        found = [t for t in engine.transfers(state=state)
                 if which in (t.destination_name, t.source_path, Path(t.source_path).name)]  # fmt: skip
    if not found:
        raise ConfigurationError(f"no transfer matches {which!r} (an id, a file or a destination; see `status`)")
    return found


@click.command("retry")
@click.argument("transfer_id", type=int, required=False)
@click.option("--all-failed", is_flag=True, help="Queue every failed transfer again.")
@click.option("--destination", default=None, help="With --all-failed: only those to this destination.")
@click.option("--refresh", is_flag=True,
              help="Use the destination as it is now (after `dest edit`), not as it was when scheduled.")
def retry_command(transfer_id: int | None, all_failed: bool, destination: str | None, refresh: bool) -> None:
    """Queue failed or cancelled transfer ID (or, with --all-failed, every
    failed one) again, now, with its attempt count reset."""
    if all_failed == (transfer_id is not None):
        raise click.UsageError("give a TRANSFER_ID or --all-failed (not both)")
    if destination is not None and not all_failed:
        raise click.UsageError("--destination goes with --all-failed")
    if refresh and all_failed:
        raise click.UsageError("--refresh goes with one TRANSFER_ID")
    engine = _ctx().engine()
    if all_failed:
        if destination is not None:
            engine.destinations.get(destination)  # a clear error for a name that does not exist
        ids = engine.retry_all_failed(destination=destination)
        _publish(engine, ids)
        click.echo(f"{len(ids)} failed transfer(s) queued again" + (f": {', '.join(map(str, ids))}" if ids else ""))
        return
    assert transfer_id is not None
    if refresh:
        engine.refresh(transfer_id)
    t = engine.retry(transfer_id)
    _publish(engine, [t.id])
    click.echo(f"transfer {t.id} queued again" + (f" for {t.destination_name}:{t.remote_path}" if refresh else ""))


@click.command("cancel")
@click.argument("transfer_id", type=int)
def cancel_command(transfer_id: int) -> None:
    """Cancel transfer ID (a running one stops cleanly)."""
    t = _ctx().engine().cancel(transfer_id)
    click.echo(f"transfer {t.id}: {'cancelled' if t.state == 'cancelled' else 'cancel requested'}")


@click.command("purge")
@click.option("--days", type=click.IntRange(min=0), default=None,
              help="Older than this many days, 0 or more (OCS_TRANSFER_PURGE_AFTER_DAYS).")
@click.option("--failed", is_flag=True, help="Purge failed and cancelled records too.")
def purge_command(days: int | None, failed: bool) -> None:
    """Delete old completed transfer records. Purging a failed or cancelled
    record never lets its source be deleted: a file whose records are purged
    before all its transfers completed keeps its source."""
    click.echo(f"purged {_ctx().engine().purge(older_than_days=days, failed=failed)} record(s)")


@click.command("expire")
def expire_command() -> None:
    """Delete files from destinations past their retention (--keep-hours /
    --keep-days of `dest add`)."""
    click.echo(f"expired {_ctx().engine().expire()} file(s)")


@click.group("ledger")
def ledger_group() -> None:
    """The ledger database (OCS_TRANSFER_LEDGER_URL)."""


@ledger_group.command("upgrade")
def ledger_upgrade() -> None:
    """Bring the ledger's schema to this version's (every command does so on
    start; this does only that, e.g. before starting many workers)."""
    from .ledger import Ledger

    ledger = Ledger.from_settings(_ctx().settings, migrate=False)
    try:
        before = ledger.schema_revision()
        after = ledger.migrate()
    finally:
        ledger.close()
    if before == after:
        click.echo(f"ledger schema is up to date ({after})")
    else:
        click.echo(f"ledger schema upgraded from {before or 'none'} to {after}")


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
