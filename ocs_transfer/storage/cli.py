"""``ocs-transfer send``: store files in a destination now, verified.

::

    ocs-transfer send examples/data/*.fits* --to ./archive --layout archive

Each file's metadata is read (the data-file class its extension selects), the
file is streamed into the destination where the layout puts it, hashed on the
way and verified there. A results table (or JSON) says where each file went.
A file that cannot be read or stored is reported on one line of stderr and
skipped; the exit status is 0 only when every file was stored.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any

import attrs
import click

from ..exceptions import ConfigurationError, OcsTransferError
from ..settings import Settings
from .base import FileStore, Progress, StoredObject
from .layouts import BUILTIN_LAYOUTS, DEFAULT_LAYOUT, Layout, get_layout

__all__ = ["send_command", "send_files", "SendResult"]


@attrs.frozen(kw_only=True)
class SendResult:
    """What happened to one file."""

    file: str
    stored: StoredObject | None = None
    link: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.stored is not None

    def as_dict(self, destination: str) -> dict[str, Any]:
        if self.stored is None:
            return {"file": self.file, "ok": False, "error": self.error}
        s = self.stored
        return {
            "file": self.file,
            "ok": True,
            "destination": destination,
            "path": s.path,
            "size": s.size,
            "md5": s.md5,
            "sha256": s.sha256,
            "content_type": s.content_type,
            "version_id": s.version_id,
            "provider_checksum": s.provider_checksum,
            "link": self.link,
        }


def _link(store: FileStore, path: str) -> str | None:
    try:
        return store.get_url(path)
    except (NotImplementedError, OcsTransferError):
        return None  # not every destination makes links (a plain directory without a base URL)


def default_transfers() -> int:
    """How many files ``send`` moves at once unless told: four per core, at
    most 16. Small files spend most of their time waiting for the disk or
    the network (an fsync, a request), so more of them in flight keep the
    cores busy; big ones are bounded by memory (each holds its buffers)."""
    return max(1, min(16, 4 * (os.cpu_count() or 1)))


def send_files(
    store: FileStore,
    files: Sequence[Path],
    *,
    layout: Layout,
    context: Mapping[str, str],
    settings: Settings | None = None,
    metadata: Mapping[str, Any] | None = None,
    prefix: str = "",
    progress_for: Callable[[Path, int], AbstractContextManager[Progress]] | None = None,
    on_result: Callable[[SendResult], None] | None = None,
    transfers: int = 1,
) -> list[SendResult]:
    """Store each of ``files`` in ``store``; one failure never stops the rest.

    ``settings`` decide how metadata is read (``Settings.from_env()`` when
    omitted); ``metadata`` is merged over each file's headers (the only
    metadata of PDFs and JPEGs). ``prefix`` is a folder every path goes under
    (a ledger destination's ``path``). ``progress_for(path, size)`` may return
    a context manager yielding a :data:`~ocs_transfer.storage.base.Progress`
    callback; ``on_result(result)`` is called after each file, in the order
    of ``files``, from the calling thread. ``transfers`` files are stored at
    once (each in a thread of its own; ``progress_for`` must be thread-safe
    then). The results are in the order of ``files``.
    """
    from ..input import open_datafile
    from .paths import safe_path
    from .store_file import destination_path

    if transfers < 1:
        raise ConfigurationError(f"transfers must be at least 1, not {transfers}")
    settings = settings if settings is not None else Settings.from_env()
    given = dict(metadata or {})

    def send_one(path: Path) -> SendResult:
        try:
            with open_datafile(path, dict(given), settings=settings) as data_file, \
                    _progress(progress_for, path) as progress:  # fmt: skip
                where = destination_path(data_file, layout=layout, context=context)
                if prefix.strip("/"):
                    where = safe_path(f"{prefix.strip('/')}/{where}")
                stored = store.store_file(data_file, where, progress=progress)
            return SendResult(file=str(path), stored=stored, link=_link(store, stored.path))
        except (OcsTransferError, OSError) as exc:
            error = _one_line(exc)
            error = error.removeprefix(f"{path.name}: ")  # the file is named once, in front
            if "missing required headers" in error or "required metadata" in error:
                error += "; give them with -m KEY=VALUE"
            return SendResult(file=str(path), error=error)

    results: list[SendResult] = []
    for result in _in_order(send_one, files, transfers):
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _in_order(work: Callable[[Path], SendResult], files: Sequence[Path], transfers: int) -> Iterator[SendResult]:
    """``work(f)`` for each of ``files``, ``transfers`` at a time, yielded
    in the order of ``files`` as soon as each one and all before it are done."""
    if transfers == 1 or len(files) <= 1:
        yield from map(work, files)
        return
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    ahead = 2 * transfers  # running plus waiting in the pool's queue, so no thread idles between files
    running: dict[Future[SendResult], int] = {}
    finished: dict[int, SendResult] = {}
    queued = iter(enumerate(files))
    reported = 0
    pool = ThreadPoolExecutor(transfers, thread_name_prefix="ocs-transfer-send")
    try:
        while True:
            for index, path in queued:
                running[pool.submit(work, path)] = index
                if len(running) >= ahead:
                    break
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                finished[running.pop(future)] = future.result()
            while reported in finished:
                yield finished.pop(reported)
                reported += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def expand_files(items: Sequence[str | Path], include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[Path]:
    """The files named by ``items``: files as given, directories walked
    recursively (sorted) keeping the files whose path below the directory, or
    name, matches an ``include`` glob (all when none is given) and no
    ``exclude`` glob. A path that does not exist is kept, for the caller to
    report."""
    from fnmatch import fnmatch

    def wanted(rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if include and not any(fnmatch(rel, g) or fnmatch(name, g) for g in include):
            return False
        return not any(fnmatch(rel, g) or fnmatch(name, g) for g in exclude)

    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file())
            out += [p for p in found if wanted(p.relative_to(path).as_posix())]
        else:
            out.append(path)
    return out


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` provider options; a value that is JSON (numbers, true,
    null) is decoded, anything else stays text."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--option {item!r} must look like KEY=VALUE")
        options[key] = _decode(value)
    return options


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def read_credentials_file(source: IO[str] | None) -> dict[str, str]:
    """Credentials from a JSON object (``--credentials-file``; ``-`` is stdin)."""
    creds: dict[str, str] = {}
    if source is None:
        return creds
    try:
        loaded = json.load(source)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"the credentials file is not a JSON object (line {exc.lineno})") from None
    if not isinstance(loaded, dict):
        raise ConfigurationError('the credentials file must hold a JSON object such as {"token": "..."}')
    for key, value in loaded.items():
        creds[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return creds


@attrs.frozen
class Target:
    """Where ``send`` stores: the store, how to name it, and a ledger
    destination's layout and folder (when ``--to`` named one)."""

    store: FileStore
    label: str
    layout: str | None = None
    prefix: str = ""


def open_target(
    dest: str, *, settings: Settings, options: Mapping[str, Any], credentials: Mapping[str, Any]
) -> Target:
    """The store ``--to DEST`` names: a URL (its query string gives provider
    options: ``s3://b/p?endpoint_url=http://127.0.0.1:9000``; ``s3://`` uses
    ``S3_ENDPOINT_URL``, ``gs://`` ``STORAGE_EMULATOR_HOST``), a directory, a
    destination from the ledger (with its stored credentials, layout and
    path), or a provider name (configured from the settings, as ocs_archive's
    ``FILESTORE_TYPE`` variables, and ``options``)."""
    from . import _URL, get_store

    opts = dict(options)
    creds = dict(credentials) or None
    if _URL.match(dest):
        return Target(_url_store(dest, settings, opts, creds), dest)
    if "/" in dest or dest.startswith((".", "~")):
        return Target(get_store(dest, credentials=creds, settings=settings, **opts), dest)
    found = _ledger_destination(dest, settings)
    if found is not None:
        if opts or creds:
            raise ConfigurationError(
                f"{dest!r} is a destination of the ledger; change its options or credentials with"
                f" `ocs-transfer dest edit {dest}`, not on the send command line"
            )
        return found
    from .. import plugins

    cls = plugins.get_provider(dest)
    try:
        config = cls.config_from_settings(settings, **opts)
    except (ConfigurationError, TypeError) as from_settings:
        try:
            config = cls.Config(**opts)
        except TypeError as exc:
            raise ConfigurationError(
                f"provider {cls.name!r} is not configured: {from_settings}; or give its options with"
                f" --option KEY=VALUE ({exc})"
            ) from None
    return Target(cls.from_config(config, creds, settings=settings), dest)


def _url_store(
    url: str, settings: Settings, options: Mapping[str, Any], credentials: Mapping[str, Any] | None
) -> FileStore:
    """The store of a URL whose query string gives provider options; ``s3://``
    uses ``S3_ENDPOINT_URL`` and ``gs://`` ``STORAGE_EMULATOR_HOST`` when the
    options name no endpoint."""
    from urllib.parse import parse_qsl, urlunsplit

    from . import get_store
    from .options import split_url

    parts = split_url(url)
    opts = {**{k: _decode(v) for k, v in parse_qsl(parts.query, keep_blank_values=True)}, **options}
    scheme = parts.scheme.lower()
    if scheme == "s3" and settings.s3_endpoint_url:
        opts.setdefault("endpoint_url", settings.s3_endpoint_url)
    if scheme in ("gs", "gcs") and settings.storage_emulator_host:
        host = settings.storage_emulator_host
        opts.setdefault("endpoint_url", host if "://" in host else f"http://{host}")
        if not credentials:
            opts.setdefault("anonymous", True)
    return get_store(urlunsplit(parts._replace(query="")), credentials=credentials, settings=settings, **opts)


def open_source(ref: str, settings: Settings) -> FileStore:
    """A scheduled file's source store (``schedule --source``): a URL as
    ``send --to`` reads it (query options, ``S3_ENDPOINT_URL``,
    ``STORAGE_EMULATOR_HOST``), else what :func:`get_store` makes of it."""
    from . import _URL, get_store

    return _url_store(ref, settings, {}, None) if _URL.match(ref) else get_store(ref, settings=settings)


def _ledger_destination(name: str, settings: Settings) -> Target | None:
    """The ledger destination ``name``, or None (no ledger, or no such
    destination). No ledger is created."""
    from ..transfer.cli import ledger_exists

    if not ledger_exists(settings):
        return None
    from ..transfer.crypto import KeyRing
    from ..transfer.destinations import Destinations
    from ..transfer.ledger import Ledger

    ledger = Ledger.from_settings(settings)
    try:
        keyring = KeyRing.from_settings(settings) if settings.transfer_keys else None
        dests = Destinations(ledger, keyring, settings=settings)
        found = dests.find(name)
        if found is None:
            return None
        return Target(dests.open_store(name), name, found.layout or None, found.path)
    finally:
        ledger.close()


@contextmanager
def _progress(
    progress_for: Callable[[Path, int], AbstractContextManager[Progress]] | None, path: Path
) -> Iterator[Progress | None]:
    if progress_for is None:
        yield None
        return
    with progress_for(path, path.stat().st_size) as callback:
        yield callback


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, OcsTransferError) else f"{type(exc).__name__}: {text}"


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


@click.command("send")
@click.argument("files", nargs=-1, required=True)
@click.option("--to", "destination", required=True, metavar="DEST",
              help="Where to store: a directory (./archive), a URL (memory://x, s3://bucket/prefix,"
                   " s3://bucket?endpoint_url=http://host:9000, webdav+https://host/path), a destination"
                   " name from the ledger, or a provider name.")
@click.option("--layout", default=None, metavar="LAYOUT",
              help=f"{', '.join(BUILTIN_LAYOUTS)}, or a template such as"
                   " '{site}/{instrument}/{day}/{target}/{filename}'"
                   f" [default: the destination's, else {DEFAULT_LAYOUT}].")
@click.option("--target", help="Target name to use instead of the files' own (for the path).")
@click.option("--project", help="Project (proposal) id to use instead of the files' own (for the path).")
@click.option("-m", "--metadata", "metadata", multiple=True, metavar="KEY=VALUE",
              help="Metadata merged over every file's headers (repeat); PDFs and JPEGs have only this,"
                   " e.g. -m DATE-OBS=2015-02-19T13:56:05.")
@click.option("--include", multiple=True, metavar="GLOB", help="In directories, only files matching (repeat).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="In directories, skip files matching (repeat).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Provider option for DEST (repeat), e.g. --option endpoint_url=http://127.0.0.1:9000.")
@click.option("--credentials-file", type=click.File("r"), default=None,
              help='JSON object of credentials for DEST, e.g. {"token": "..."}; "-" reads stdin.')
@click.option("--transfers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Store N files at once [default: 4 per core, at most 16; here "
                   f"{default_transfers()}].")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars with bytes, rate and ETA on stderr [default: on a terminal].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list, one object per file) instead of a table.")
def send_command(
    files: tuple[str, ...], destination: str, layout: str | None, target: str | None, project: str | None,
    metadata: tuple[str, ...], include: tuple[str, ...], exclude: tuple[str, ...], options: tuple[str, ...],
    credentials_file: IO[str] | None, transfers: int | None, progress: bool | None, as_json: bool,
) -> None:  # fmt: skip
    """Store FILES (files or directories) in DEST now: read each file's
    metadata, stream it where the layout puts it, verify it, and print where
    it went."""
    from ..input.cli import _parse_metadata

    settings = Settings.from_env()
    extra = _parse_metadata(metadata)
    try:
        paths = expand_files(files, include, exclude)
        opened = open_target(destination, settings=settings, options=parse_options(options),
                             credentials=read_credentials_file(credentials_file))  # fmt: skip
        chosen = get_layout(layout or opened.layout or DEFAULT_LAYOUT)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    if not paths:
        raise click.UsageError("no files to send (the directories hold none that --include/--exclude keep)")
    context = {k: v for k, v in (("target", target), ("project", project)) if v}
    show = (sys.stderr.isatty() if progress is None else progress) and not as_json

    def report(result: SendResult) -> None:
        if not result.ok:
            click.echo(f"error: {result.file}: {result.error}", err=True)
        elif not show and not as_json:
            assert result.stored is not None
            click.echo(f"stored {result.file} -> {result.stored.path} ({_human(result.stored.size)})", err=True)

    with opened.store as store, _bars(paths if show else None) as bar:
        results = send_files(
            store, paths, layout=chosen, context=context, settings=settings, metadata=extra,
            prefix=opened.prefix, progress_for=bar, on_result=report,
            transfers=transfers or default_transfers(),
        )  # fmt: skip
    if as_json:
        click.echo(json.dumps([r.as_dict(destination) for r in results], indent=2, ensure_ascii=False))
    else:
        rows: list[tuple[str, ...]] = [("path", "size", "md5", "version", "link")]
        for r in results:
            if r.stored is not None:
                s = r.stored
                rows.append((s.path, _human(s.size), s.md5, s.version_id or "-", r.link or "-"))
        if len(rows) > 1:
            click.echo(f"stored in {destination}:")
            click.echo(_table(rows))
    failed = sum(not r.ok for r in results)
    if failed:
        click.echo(f"{failed} of {len(results)} file(s) failed", err=True)
        sys.exit(1)


@contextmanager
def _bars(
    paths: Sequence[Path] | None,
) -> Iterator[Callable[[Path, int], AbstractContextManager[Progress]] | None]:
    """rich progress bars on stderr (bytes, rate, ETA): one for the batch and
    one for each file in flight (removed when it is done); None when
    ``paths`` is None (no progress shown). Thread-safe: files sent at once
    share the view."""
    if paths is None:
        yield None
        return
    from rich import progress as rp
    from rich.console import Console

    total = sum(p.stat().st_size for p in paths)
    console = Console(file=sys.stderr, force_terminal=True)
    columns = (rp.TextColumn("{task.description}"), rp.BarColumn(), rp.DownloadColumn(), rp.TransferSpeedColumn(),
               rp.TimeRemainingColumn())  # fmt: skip
    with rp.Progress(*columns, console=console, transient=False) as bars:
        batch = bars.add_task(f"all {len(paths)} file(s)", total=total)

        @contextmanager
        def bar(path: Path, size: int) -> Iterator[Progress]:
            task = bars.add_task(path.name, total=size)

            def advance(n: int) -> None:
                bars.advance(task, n)
                bars.advance(batch, n)

            try:
                yield advance
            finally:
                bars.remove_task(task)

        yield bar
