"""The engine core: schedule, claim, execute one attempt, record its outcome.

A scheduled source file gets one transfer per destination. A transfer moves
``pending`` -> ``in_progress`` -> ``completed`` | ``failed`` | ``cancelled``; a
retryable failure puts it back to ``pending`` with a later ``next_attempt_at``.

Claiming is atomic: one transaction selects due rows (``FOR UPDATE SKIP LOCKED``
on PostgreSQL; on SQLite the transaction is ``BEGIN IMMEDIATE``, so no other
writer runs between the select and the update) and marks them ``in_progress``
with a fresh lease. Every later write about the attempt is conditional on that
lease, so a worker whose transfer was reclaimed cannot overwrite the new owner.

All times come from an injectable ``clock`` (UNIX seconds).

A source is deleted only when a destination asked for it, as many transfer
records as were scheduled for it exist, every one completed with the same
sha256 and size, no other schedule of the same source is unfinished, and the
source still has the size and modification time it had when scheduled.
Scheduling refuses a remote path that a live transfer of another source
already targets on the same destination.

The lifecycle passes (:mod:`.lifecycle`) and the executors (:mod:`.worker`,
:mod:`.celery`) build on this; :mod:`.engine` puts the pieces together.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, cast

import attrs
from sqlalchemy import ColumnElement, Connection, Table, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from ..exceptions import (
    ConfigurationError,
    CredentialError,
    ObjectNotFoundError,
    OcsTransferError,
    TransferCancelledError,
)
from ..redact import Secret, redact
from ..retry import Kind, classify
from ..settings import Settings
from ..storage.base import FileStore, ObjectInfo, StoredObject
from .attempt import (
    RemotePathTakenError,
    SourceChangedError,
    _adopt,
    _check_bytes,
    _check_unchanged,
    _discard_stale_partials,
    _extension,
    _GuardedReader,
    _info_or_none,
    _mtime,
)
from .destinations import DestinationNotFoundError, Destinations, open_store
from .ledger import Ledger
from .models import (
    BUNDLE,
    CANCELLED,
    COMPLETED,
    FAILED,
    FILE,
    FINAL_STATES,
    IN_PROGRESS,
    PENDING,
    BundleMemberRow,
    DestinationRow,
    SourceFileRow,
    TransferRow,
)

__all__ = ["EngineCore", "Transfer", "TransferNotFoundError", "remote_path_for"]

log = logging.getLogger("ocs_transfer.transfer.engine")  # every engine module logs under one name


#: Seconds between writes of a running transfer's ``bytes_done`` (between heartbeats).
PROGRESS_SAVE_INTERVAL = 1.0
#: Resolves a source file's store reference (a provider name or URL) to a store.
SourceResolver = Callable[[str], FileStore]
Outcome = Callable[["Transfer"], None]


class TransferNotFoundError(ConfigurationError, LookupError):
    """No transfer has this id."""


_SHA256 = re.compile(r"[0-9a-f]{64}")


@attrs.frozen(kw_only=True)
class Transfer:
    """A transfer record as callers see it (no credentials anywhere)."""

    id: int
    file_id: int
    source_store: str
    source_path: str
    destination_id: int
    destination_name: str
    provider: str
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str
    bytes_done: int
    size: int | None
    md5: str
    sha256: str
    provider_checksum: str
    remote_path: str
    remote_version: str
    link: str
    worker: str
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    expired_at: float | None
    heartbeat_at: float | None = None
    kind: str = "file"  #: "file", or "bundle" (``source_path`` is then the zip's name)
    link_expires_at: float | None = None  #: when ``link`` stops working (None: never by itself)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @classmethod
    def from_rows(cls, row: Any, file: Any) -> Transfer:
        """From a transfer row and its source file's row (anything with their
        attributes: ORM rows, or one Core row with both)."""
        snap = json.loads(row.snapshot)
        return cls(
            id=row.id, file_id=row.file_id, source_store=file.store, source_path=file.path,
            destination_id=row.destination_id, destination_name=row.destination_name,
            provider=snap.get("provider", ""), state=row.state, attempts=row.attempts,
            next_attempt_at=row.next_attempt_at, last_error=row.last_error, bytes_done=row.bytes_done,
            size=row.size, md5=row.md5, sha256=row.sha256, provider_checksum=row.provider_checksum,
            remote_path=row.remote_path, remote_version=row.remote_version, link=row.link, worker=row.worker,
            created_at=row.created_at, updated_at=row.updated_at, started_at=row.started_at,
            finished_at=row.finished_at, expired_at=row.expired_at, heartbeat_at=row.heartbeat_at,
            kind=file.kind or FILE, link_expires_at=row.link_expires_at,
        )  # fmt: skip


def remote_path_for(snapshot: Mapping[str, Any], source_path: str, context: Mapping[str, str]) -> str:
    """Where a file goes in a destination: the destination's path, then what
    its layout (:func:`ocs_transfer.storage.layouts.get_layout`) makes of the
    file name and ``context`` (``target``, ``project``, ...)."""
    from ..storage.layouts import get_layout
    from ..storage.paths import safe_path

    layout = get_layout(snapshot.get("layout") or "flat", context_fields=context)
    values = {"filename": posixpath.basename(source_path.rstrip("/")), **context}
    missing = [f for f in layout.fields if not values.get(f)]
    if missing:
        raise ConfigurationError(
            f"destination {snapshot.get('name')!r} uses layout {layout.name!r}, which needs"
            f" {', '.join(missing)}; give them when scheduling (e.g. --target/--project) or use another layout"
        )
    base = [p for p in str(snapshot.get("path") or "").split("/") if p]
    return safe_path("/".join([*base, layout.path_for(None, values)]))


def _named(source: tuple[str, str]) -> str:
    """A source file as messages name it: ``path from store``."""
    return f"{source[1]} from {source[0]}"


# -- the hot path's statements, built once (Core, bound parameters) ------------------------
#
# Claiming and recording run for every transfer; building their statements
# anew each time (and running them through the ORM) cost more CPU than the
# database's work. SQLAlchemy caches each one's compiled form.

_T = cast(Table, TransferRow.__table__)
_F = cast(Table, SourceFileRow.__table__)
_D = cast(Table, DestinationRow.__table__)
_RUNNING = _T.alias("running")
#: never two attempts at one remote path of one destination at once: each
#: removes the partial uploads it finds there, and only one may write
_BUSY = (
    exists()
    .where(_RUNNING.c.state == IN_PROGRESS, _RUNNING.c.destination_id == _T.c.destination_id,
           _RUNNING.c.remote_path == _T.c.remote_path)
    .correlate(_T)
)  # fmt: skip
_DUE = (
    select(_T.c.id, _T.c.destination_id, _T.c.remote_path, _T.c.started_at)
    .where(_T.c.state == PENDING, _T.c.next_attempt_at <= bindparam("b_now"), ~_BUSY)
    .order_by(_T.c.next_attempt_at, _T.c.id)
    .limit(bindparam("b_limit"))
)
_DUE_QUERIES: dict[tuple[str, bool], Any] = {}
_TAKE = (
    update(_T)
    .where(_T.c.id.in_(bindparam("b_ids", expanding=True)), _T.c.state == PENDING)
    .values(state=IN_PROGRESS, lease=bindparam("b_lease"), worker=bindparam("b_worker"),
            heartbeat_at=bindparam("b_now"), started_at=bindparam("b_now"), updated_at=bindparam("b_now"),
            attempts=_T.c.attempts + 1, cancel_requested=False, bytes_done=0)
    .returning(_T.c.id)
)  # fmt: skip
#: what the claimed attempts need, with their destinations' stored credentials
_WORK = (
    select(_T.c.id, _T.c.file_id, _T.c.snapshot, _T.c.remote_path, _T.c.attempts, _F.c.store, _F.c.path, _F.c.size,
           _F.c.mtime, _F.c.delete_state, _F.c.sha256, _F.c.kind, _D.c.uuid.label("dest_uuid"),
           _D.c.credentials.label("dest_credentials"))
    .select_from(_T.join(_F, _F.c.id == _T.c.file_id).outerjoin(_D, _D.c.id == _T.c.destination_id))
    .where(_T.c.id.in_(bindparam("b_ids", expanding=True)))
)  # fmt: skip
#: a conditional write of an attempt: only while it holds its lease (SET: the parameters given)
_LEASED = update(_T).where(_T.c.id == bindparam("b_id"), _T.c.lease == bindparam("b_lease"),
                           _T.c.state == IN_PROGRESS)  # fmt: skip
#: the same, returning the transfer as written
_LEASED_RETURNING = _LEASED.returning(*_T.c)
_FIRST_SHA256 = (
    update(_F)
    .where(_F.c.id == select(_T.c.file_id).where(_T.c.id == bindparam("b_id")).scalar_subquery(), _F.c.sha256 == "")
    .values(sha256=bindparam("b_sha256"))
)
#: a transfer with its source's store, path and kind (what :meth:`Transfer.from_rows` reads)
_READ = (
    select(_T, _F.c.store, _F.c.path, _F.c.kind).join(_F, _F.c.id == _T.c.file_id).where(_T.c.id == bindparam("b_id"))
)


def _due_query(dialect: str, among: bool) -> Any:
    query = _DUE_QUERIES.get((dialect, among))
    if query is None:
        query = _DUE.where(_T.c.id.in_(bindparam("b_among", expanding=True))) if among else _DUE
        if dialect == "postgresql":
            query = query.with_for_update(of=_T, skip_locked=True)
        _DUE_QUERIES[(dialect, among)] = query
    return query


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@attrs.define
class _Running:
    lease: str
    cancel: threading.Event
    bytes_done: int = 0
    deletes_source: bool = True
    saved_at: float = 0.0  #: when bytes_done was last written to the ledger
    #: the failure of the source (reading it, or finding it changed), when one happened
    source_failure: BaseException | None = None

    def failed_at_source(self, exc: BaseException) -> None:
        self.source_failure = exc

    @contextlib.contextmanager
    def source_side(self) -> Iterator[None]:
        """Failures inside are the source's."""
        try:
            yield
        except Exception as exc:
            self.failed_at_source(exc)
            raise

    def destination_may_fix(self, exc: BaseException) -> bool:
        """Whether fixing the destination (``dest edit``, ``retry --refresh``)
        can help with ``exc``: not when the source changed or failed (the
        store's error about a failed read has the source's failure as its
        cause), nor when the destination was removed."""
        if isinstance(exc, SourceChangedError | DestinationNotFoundError):
            return False
        seen: set[int] = set()
        link: BaseException | None = exc
        while link is not None and id(link) not in seen:
            if link is self.source_failure:
                return False
            seen.add(id(link))
            link = link.__cause__ or link.__context__
        return True
    source: tuple[str, str] = ("", "")  #: the source's store and path
    sha256: str = ""  #: the source's sha256 known when claimed ("" before the file's first completion)
    kind: str = FILE  #: the source's kind (a file, or a bundle)


@attrs.frozen
class _SourceName:
    """The source file's store, path and kind, as :meth:`Transfer.from_rows` reads them."""

    store: str
    path: str
    kind: str = FILE


@attrs.frozen
class _Work:
    """What one attempt needs from the ledger, read when it was claimed."""

    snapshot: dict[str, Any]
    remote_path: str
    source_ref: str
    source_path: str
    attempts: int
    size: int | None
    mtime: float | None
    deletes_source: bool
    #: an earlier attempt of this transfer ran (and may have left a partial upload)
    tried_before: bool
    #: the sha256 the source must have ("" when not known yet): given at
    #: scheduling, or read by the file's first completed transfer
    sha256: str
    file_id: int = 0
    kind: str = FILE
    #: the destination's credentials, decrypted after the claim (None: look them up in the attempt)
    credentials: dict[str, Secret] | None = None

    @classmethod
    def of(cls, row: Any, file: Any, tried_before: bool, credentials: dict[str, Secret] | None = None,
           snapshot: dict[str, Any] | None = None) -> _Work:  # fmt: skip
        """From a transfer row and its file's row (ORM objects, or one Core
        row holding the columns of both)."""
        snap = snapshot if snapshot is not None else json.loads(row.snapshot)
        return cls(snap, row.remote_path, file.store, file.path, row.attempts, file.size, file.mtime,
                   file.delete_state == "pending", tried_before, file.sha256, row.file_id, file.kind or FILE,
                   credentials)  # fmt: skip


class EngineCore:
    """Schedules transfers, claims due ones, runs one attempt and records its
    outcome (see :class:`ocs_transfer.transfer.engine.Engine`)."""

    def __init__(
        self,
        ledger: Ledger,
        destinations: Destinations,
        *,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.time,
        source_resolver: SourceResolver | None = None,
        on_finished: Outcome | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.destinations = destinations
        self.settings = settings if settings is not None else Settings()
        self.clock = clock
        self.on_finished = on_finished
        self.worker_id = worker_id or _default_worker_id()
        self._resolver = source_resolver
        self._sources: dict[str, FileStore] = {}
        self._running: dict[int, _Running] = {}
        self._claimed: dict[tuple[int, str], _Work] = {}
        self._lock = threading.Lock()
        self._last_beat = 0.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ledger!r}, worker={self.worker_id!r})"

    @property
    def max_attempts(self) -> int:
        return len(self.settings.retry_delays) + 1

    # -- sources ---------------------------------------------------------------------

    def source_store(self, ref: str) -> FileStore:
        with self._lock:
            store = self._sources.get(ref)
            if store is None:
                if self._resolver is not None:
                    store = self._resolver(ref)
                else:
                    from ..storage import get_store

                    store = get_store(ref, settings=self.settings)
                self._sources[ref] = store
            return store

    # -- scheduling --------------------------------------------------------------------

    def schedule(
        self,
        source: str,
        paths: str | Sequence[str],
        destinations: Iterable[str | int],
        *,
        context: Mapping[str, str] | None = None,
        sha256: Mapping[str, str] | None = None,
    ) -> list[Transfer]:
        """Queue ``paths`` (in the store ``source``) for every destination: one
        ``pending`` transfer per file and destination, each keeping a snapshot
        of its destination as it is now.

        Each source must exist; its size and modification time are recorded
        (an attempt that finds them changed fails and keeps the source). A
        ``sha256`` may give the sources' hashes where the caller knows them
        (``{path: hex}``); a transfer that reads other bytes then fails
        (retryable) instead of completing. A
        remote path that a pending, running or completed (unexpired) transfer
        of another source already targets on the same destination, or that two
        of ``paths`` would share, is refused (:class:`RemotePathTakenError`)."""
        if isinstance(paths, str):
            paths = [paths]
        hashes = {path: str(value).lower() for path, value in (sha256 or {}).items()}
        bad = [path for path, value in hashes.items() if not _SHA256.fullmatch(value) or path not in paths]
        if bad:
            raise ConfigurationError(
                f"sha256 for {bad[0]!r} must be 64 hex digits, for one of the files scheduled; nothing was scheduled"
            )
        ctx = dict(context or {})
        return self.schedule_files([(source, path, ctx, hashes.get(path, "")) for path in paths], destinations)

    def schedule_files(
        self, files: Sequence[tuple[str, str, Mapping[str, str], str]], destinations: Iterable[str | int]
    ) -> list[Transfer]:
        """:meth:`schedule` for files of several sources, each with its own
        layout context: ``(source, path, context, sha256 or "")``. All or
        nothing: when any file cannot be queued (missing, or its remote path
        taken on a destination, also by another of ``files``) none is."""
        dests = [self.destinations.get(ref) for ref in destinations]
        if not dests:
            raise ConfigurationError("no destinations given: name at least one (see `ocs-transfer dest list`)")
        for dest in dests:
            if not dest.usable:
                raise ConfigurationError(f"destination {dest.name!r} is disabled; enable it or pick another")
        if len({d.id for d in dests}) != len(dests):
            raise ConfigurationError("a destination is named twice")
        now = self.clock()
        asked = any(d.delete_source for d in dests)
        snaps = [(d, d.snapshot()) for d in dests]
        names = {d.id: d.name for d in dests}
        targets = {
            (d.id, (source, path)): remote_path_for(snap, path, dict(ctx)) for d, snap in snaps
            for source, path, ctx, _ in files
        }  # fmt: skip
        self._refuse_taken_paths(targets, names)
        stats = self._stat_sources(files)
        created: list[Transfer] = []
        with self.ledger.session() as session:
            for start in range(0, len(files), 500):  # bulk inserts, in slices
                batch = files[start : start + 500]
                file_ids = session.scalars(
                    insert(SourceFileRow).returning(SourceFileRow.id, sort_by_parameter_order=True),
                    [
                        {"store": source, "path": path, "context": json.dumps(dict(ctx), sort_keys=True),
                         "delete_source": asked, "delete_state": "pending" if asked else "", "created_at": now,
                         "size": stats[(source, path)].size, "mtime": _mtime(stats[(source, path)]), "sha256": sha,
                         "transfer_count": len(dests)}
                        for source, path, ctx, sha in batch
                    ],
                ).all()  # fmt: skip
                session.execute(
                    insert(TransferRow),
                    [
                        {"file_id": file_id, "destination_id": dest.id, "destination_name": dest.name,
                         "snapshot": json.dumps(snap, sort_keys=True), "state": PENDING, "attempts": 0,
                         "next_attempt_at": now, "remote_path": targets[(dest.id, (source, path))], "created_at": now,
                         "updated_at": now, "last_error": "", "bytes_done": 0, "md5": "", "sha256": "",
                         "provider_checksum": "", "remote_version": "", "link": "", "worker": "",
                         "cancel_requested": False}
                        for file_id, (source, path, _, _) in zip(file_ids, batch, strict=True)
                        for dest, snap in snaps
                    ],
                )  # fmt: skip
                query = (
                    select(TransferRow, SourceFileRow)
                    .join(SourceFileRow, SourceFileRow.id == TransferRow.file_id)
                    .where(TransferRow.file_id.in_(file_ids))
                    .order_by(TransferRow.id)
                )
                created += [Transfer.from_rows(t, f) for t, f in session.execute(query)]
                session.expunge_all()
        log.info("scheduled %d transfer(s) of %d file(s)", len(created), len(files))
        return created

    def schedule_bundle(
        self,
        name: str,
        members: Sequence[tuple[str, str, str]],
        destinations: Iterable[str | int],
        *,
        keep_hours: int | None = None,
    ) -> list[Transfer]:
        """Queue one bundle: a zip named ``name`` of ``members`` (``(store,
        path, name in the archive)``, archived in the order given), made when
        it is sent, for every destination: one transfer per destination, with
        the retries, states and records of any other. It goes to ``name``
        under each destination's path (layouts do not apply). ``keep_hours``
        overrides the destinations' retention for this bundle (how long it
        and its link are kept). Every member must exist; its size and
        modification time are recorded, and an attempt that finds one changed
        fails (retryable) without publishing anything. When a destination
        asks for source deletion, the members are deleted once every transfer
        of the bundle completed."""
        from ..storage.paths import safe_path

        dests = [self.destinations.get(ref) for ref in destinations]
        if not dests:
            raise ConfigurationError("no destinations given: name at least one (see `ocs-transfer dest list`)")
        for dest in dests:
            if not dest.usable:
                raise ConfigurationError(f"destination {dest.name!r} is disabled; enable it or pick another")
        if len({d.id for d in dests}) != len(dests):
            raise ConfigurationError("a destination is named twice")
        if not members:
            raise ConfigurationError(f"bundle {name!r} has no files; nothing was scheduled")
        names = [safe_path(m[2]) for m in members]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"bundle {name!r} names two files alike; nothing was scheduled")
        if keep_hours is not None and keep_hours < 1:
            raise ConfigurationError(f"a bundle is kept at least 1 hour, not {keep_hours}")
        ref = f"bundle:{uuid.uuid4().hex}"
        now = self.clock()
        asked = any(d.delete_source for d in dests)
        snaps = []
        for dest in dests:
            snap = dest.snapshot()
            if keep_hours is not None:
                snap["bundle_keep_hours"] = keep_hours
            snaps.append((dest, snap))
        targets = {(d.id, (ref, name)): _bundle_path(snap, name) for d, snap in snaps}
        try:
            self._refuse_taken_paths(targets, {d.id: d.name for d in dests})
        except RemotePathTakenError as exc:
            taken = str(exc).split(";", 1)[0]
            raise RemotePathTakenError(
                f"bundle {name!r} was not scheduled: {taken}. Give the bundle another name; the one there stays"
                " until it is expired or removed"
            ) from None
        stats = []
        for store_ref, path, _ in members:
            try:
                stats.append(self.source_store(store_ref).info(path))
            except ObjectNotFoundError:
                raise ConfigurationError(f"{path}: no such file in {store_ref}; nothing was scheduled") from None
        with self.ledger.session() as session:
            file = SourceFileRow(store=ref, path=name, context="{}", delete_source=asked,
                                 delete_state="pending" if asked else "", created_at=now, size=None, mtime=None,
                                 sha256="", transfer_count=len(dests), kind=BUNDLE)  # fmt: skip
            session.add(file)
            session.flush()
            file_id = file.id
            for start in range(0, len(members), 500):
                session.execute(insert(BundleMemberRow), [
                    {"file_id": file_id, "position": i, "store": members[i][0], "path": members[i][1],
                     "name": names[i], "size": stats[i].size, "mtime": _mtime(stats[i])}
                    for i in range(start, min(start + 500, len(members)))
                ])  # fmt: skip
            session.execute(insert(TransferRow), [
                {"file_id": file_id, "destination_id": dest.id, "destination_name": dest.name,
                 "snapshot": json.dumps(snap, sort_keys=True), "state": PENDING, "attempts": 0,
                 "next_attempt_at": now, "remote_path": targets[(dest.id, (ref, name))], "created_at": now,
                 "updated_at": now, "last_error": "", "bytes_done": 0, "md5": "", "sha256": "",
                 "provider_checksum": "", "remote_version": "", "link": "", "worker": "", "cancel_requested": False}
                for dest, snap in snaps
            ])  # fmt: skip
            query = (
                select(TransferRow, SourceFileRow)
                .join(SourceFileRow, SourceFileRow.id == TransferRow.file_id)
                .where(TransferRow.file_id == file_id)
                .order_by(TransferRow.id)
            )
            created = [Transfer.from_rows(t, f) for t, f in session.execute(query)]
        log.info("scheduled bundle %s of %d file(s) for %d destination(s)", name, len(members), len(dests))
        return created

    def snapshot_of(self, transfer_id: int) -> dict[str, Any]:
        """The destination as transfer ``transfer_id`` keeps it (no credentials)."""
        with self.ledger.session() as session:
            row = session.get(TransferRow, transfer_id)
            if row is None:
                raise TransferNotFoundError(f"no transfer with id {transfer_id}")
            return dict(json.loads(row.snapshot))

    def bundle_members(self, file_id: int) -> list[dict[str, Any]]:
        """A bundle's members in archive order: ``store``, ``path``, ``name``, ``size``, ``mtime``."""
        with self.ledger.session() as session:
            rows = session.scalars(
                select(BundleMemberRow).where(BundleMemberRow.file_id == file_id).order_by(BundleMemberRow.position)
            )
            return [{"store": r.store, "path": r.path, "name": r.name, "size": r.size, "mtime": r.mtime} for r in rows]

    def _stat_sources(self, files: Sequence[tuple[str, str, Any, Any]]) -> dict[tuple[str, str], ObjectInfo]:
        stats: dict[tuple[str, str], ObjectInfo] = {}
        for source, path, _, _ in files:
            try:
                stats[(source, path)] = self.source_store(source).info(path)
            except ObjectNotFoundError:
                raise ConfigurationError(f"{path}: no such file in {source}; nothing was scheduled") from None
        return stats

    def _refuse_taken_paths(self, targets: Mapping[tuple[int, tuple[str, str]], str], names: Mapping[int, str],
                            outcome: str = "was not scheduled, nor anything else") -> None:  # fmt: skip
        """Refuse when two sources (``(store, path)``) would share a remote
        path on one destination: two of ``targets``, or one of them and a
        pending, running or completed (unexpired) transfer of another source.
        ``outcome`` says what became of the refused one."""
        seen: dict[tuple[int, str], tuple[str, str]] = {}
        for (dest_id, src), remote in targets.items():
            other = seen.setdefault((dest_id, remote), src)
            if other != src:
                one, two = (other[1], src[1]) if other[0] == src[0] else (_named(other), _named(src))
                raise RemotePathTakenError(
                    f"{one} and {two} would both go to {remote!r} on destination"
                    f" {names[dest_id]!r}; nothing was scheduled. Use a layout that keeps them apart (a template"
                    " with more fields), or send them to different destinations"
                )
        live = (PENDING, IN_PROGRESS, COMPLETED)
        wanted = list(seen.items())
        with self.ledger.session() as session:
            for start in range(0, len(wanted), 500):
                batch = wanted[start : start + 500]
                remotes = {remote for (_, remote), _ in batch}
                query = (
                    select(TransferRow.id, TransferRow.destination_id, TransferRow.remote_path, SourceFileRow.store,
                           SourceFileRow.path)
                    .join(SourceFileRow, SourceFileRow.id == TransferRow.file_id)
                    .where(TransferRow.destination_id.in_(list(names)), TransferRow.remote_path.in_(remotes),
                           TransferRow.state.in_(live), TransferRow.expired_at.is_(None))
                )  # fmt: skip
                for transfer_id, dest_id, remote, store, path in session.execute(query):
                    mine = seen.get((dest_id, remote))
                    if mine is not None and (store, path) != mine:
                        raise RemotePathTakenError(
                            f"{remote!r} on destination {names[dest_id]!r} is already the target of transfer"
                            f" {transfer_id} ({_named((store, path))}); {_named(mine)} {outcome}. Use a layout that"
                            " keeps them apart, or send it to another destination"
                        )

    # -- reading -----------------------------------------------------------------------

    def get(self, transfer_id: int) -> Transfer:
        with self.ledger.transaction() as conn:
            return self._read(conn, transfer_id)

    @staticmethod
    def _read(conn: Connection, transfer_id: int) -> Transfer:
        found = conn.execute(_READ, {"b_id": transfer_id}).first()
        if found is None:
            raise TransferNotFoundError(f"no transfer with id {transfer_id} (see `ocs-transfer status`)")
        return Transfer.from_rows(found, found)  # the row has the transfer's columns and the file's store, path

    def transfers(
        self, *, state: str | None = None, file_id: int | None = None, destination: str | None = None
    ) -> list[Transfer]:
        with self.ledger.session() as session:
            query = select(TransferRow, SourceFileRow).join(SourceFileRow, SourceFileRow.id == TransferRow.file_id)
            if state is not None:
                query = query.where(TransferRow.state == state)
            if file_id is not None:
                query = query.where(TransferRow.file_id == file_id)
            if destination is not None:
                query = query.where(TransferRow.destination_name == destination)
            return [Transfer.from_rows(t, f) for t, f in session.execute(query.order_by(TransferRow.id))]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{destination name: {state: count}}``."""
        result: dict[str, dict[str, int]] = {}
        with self.ledger.session() as session:
            query = select(TransferRow.destination_name, TransferRow.state, func.count()).group_by(
                TransferRow.destination_name, TransferRow.state
            )
            for name, state, count in session.execute(query):
                result.setdefault(name, {})[state] = count
        return result

    def source_file(self, file_id: int) -> dict[str, Any]:
        with self.ledger.session() as session:
            file = session.get(SourceFileRow, file_id)
            if file is None:
                raise TransferNotFoundError(f"no scheduled file with id {file_id}")
            return {
                "id": file.id, "store": file.store, "path": file.path, "delete_source": file.delete_source,
                "delete_state": file.delete_state, "deleted_at": file.deleted_at,
            }  # fmt: skip

    # -- claiming --------------------------------------------------------------------------

    def claim(self, limit: int = 1, *, ids: Sequence[int] | None = None) -> list[tuple[int, str]]:
        """Atomically take up to ``limit`` due transfers (only among ``ids``,
        when given); returns ``(id, lease)`` pairs. Pass each to
        :meth:`execute` (a claim not executed stays ``in_progress`` until its
        heartbeat goes stale and it is reclaimed). A transfer that is not
        pending, not due yet, or whose remote path another attempt is writing
        is not taken."""
        now = self.clock()
        among = ids is not None
        params: dict[str, Any] = {"b_now": now, "b_limit": limit * 4}
        if among:
            params["b_among"] = list(ids or ())
            if not params["b_among"]:
                return []
        lease = uuid.uuid4().hex  # one per claim: the (transfer, lease) pair names each attempt
        with self.ledger.transaction() as conn:
            chosen: list[int] = []
            targets: set[tuple[int, str]] = set()
            tried: dict[int, bool] = {}
            for transfer_id, dest_id, remote, started_at in conn.execute(_due_query(self.ledger.dialect, among),
                                                                         params):  # fmt: skip
                if (dest_id, remote) not in targets and len(chosen) < limit:
                    targets.add((dest_id, remote))
                    chosen.append(transfer_id)
                    tried[transfer_id] = started_at is not None
            if not chosen:
                return []
            taken = set(conn.execute(_TAKE, {"b_ids": chosen, "b_lease": lease, "b_worker": self.worker_id,
                                             "b_now": now}).scalars())  # fmt: skip
            rows = conn.execute(_WORK, {"b_ids": [i for i in chosen if i in taken]}).all() if taken else []
        # read what the attempts need in the same transaction; decrypt after it
        decrypted: dict[tuple[str, str], dict[str, Secret] | None] = {}
        with self._lock:
            for row in rows:
                snap = json.loads(row.snapshot)
                creds = self._claimed_credentials(row, snap, decrypted)
                self._claimed[(row.id, lease)] = _Work.of(row, row, tried[row.id], creds, snap)
        return [(i, lease) for i in chosen if i in taken]

    def _claimed_credentials(
        self, row: Any, snap: Mapping[str, Any], seen: dict[tuple[str, str], dict[str, Secret] | None]
    ) -> dict[str, Secret] | None:
        """The credentials of a claimed transfer's destination, read in the
        claim: only when it still is the destination the transfer was queued
        for (same uuid). Anything else (removed, a key that does not decrypt)
        is left to the attempt, which records the clear error."""
        snap_uuid = snap.get("uuid")
        if row.dest_uuid is None or (snap_uuid and row.dest_uuid != snap_uuid):
            return None
        key = (row.dest_uuid, row.dest_credentials or "")
        if key not in seen:
            try:
                seen[key] = self.destinations.decrypt_stored(snap["id"], row.dest_credentials)
            except Exception:
                seen[key] = None
        found = seen[key]
        return dict(found) if found is not None else None

    def _lease_update(self, conn: Connection, transfer_id: int, held: str, /, **values: Any) -> bool:
        result = conn.execute(_LEASED, {"b_id": transfer_id, "b_lease": held, "updated_at": self.clock(), **values})
        return bool(result.rowcount == 1)

    def _lease_record(self, conn: Connection, transfer_id: int, running: _Running, /, **values: Any
                      ) -> tuple[bool, Transfer]:  # fmt: skip
        """Write an attempt's outcome while it holds its lease; returns whether
        it did, and the transfer as it is now."""
        row = conn.execute(
            _LEASED_RETURNING, {"b_id": transfer_id, "b_lease": running.lease, "updated_at": self.clock(), **values}
        ).first()
        if row is None:  # reclaimed meanwhile: someone else's now
            return False, self._read(conn, transfer_id)
        store, path = running.source
        return True, Transfer.from_rows(row, _SourceName(store, path, running.kind))

    # -- running -------------------------------------------------------------------------

    def run_due(self, limit: int | None = None) -> int:
        """Run due transfers one after another in this thread until none is
        due (or ``limit`` ran); for callers with their own loop. Returns how
        many ran."""
        ran = 0
        while limit is None or ran < limit:
            claimed = self.claim(1)
            if not claimed:
                break
            self.execute(*claimed[0])
            ran += 1
        return ran

    def execute(self, transfer_id: int, lease: str) -> Transfer:
        """Run one claimed attempt to its outcome and record it."""
        # progress is first saved a second in (a small file's attempt never writes it)
        running = _Running(lease=lease, cancel=threading.Event(), saved_at=self.clock())
        with self._lock:
            self._running[transfer_id] = running
        try:
            return self._attempt(transfer_id, running)
        finally:
            with self._lock:
                self._running.pop(transfer_id, None)

    def _attempt(self, transfer_id: int, running: _Running) -> Transfer:
        with self._lock:
            work = self._claimed.pop((transfer_id, running.lease), None)
        if work is None:
            with self.ledger.session() as session:
                row = session.get(TransferRow, transfer_id)
                file = session.get(SourceFileRow, row.file_id) if row is not None else None
                assert row is not None and file is not None
                work = _Work.of(row, file, tried_before=True)
        snap, remote_path = work.snapshot, work.remote_path
        running.deletes_source = work.deletes_source
        running.source, running.sha256, running.kind = (work.source_ref, work.source_path), work.sha256, work.kind
        secrets: list[Secret] = []
        try:
            creds = work.credentials if work.credentials is not None else self._destination_credentials(snap)
            secrets = list(creds.values())
            store = open_store(snap["provider"], snap.get("options") or {}, creds, settings=self.settings,
                               scope=self.destinations.scope_for(snap))
            try:
                if work.tried_before:  # any earlier attempt (even before a retry) may have been killed mid-upload
                    _discard_stale_partials(store, remote_path)
                stored = self._copy(store, work, transfer_id, running)
                link, link_expires_at = self._link(store, stored, _keep_seconds(snap))
            finally:
                self.destinations.save_rotated(snap["id"], store)
                store.close()
        except Exception as exc:
            return self._record_failure(transfer_id, running, exc, work.attempts, secrets)
        return self._record_success(transfer_id, running, stored, link, link_expires_at)

    def _destination_credentials(self, snap: Mapping[str, Any]) -> dict[str, Secret]:
        """The credentials of the destination this transfer was queued for: the
        one with the snapshot's id AND uuid (ids of removed destinations are
        never reused, and the uuid makes sure of it)."""
        try:
            return self.destinations.credentials(snap["id"], uuid=snap.get("uuid"))
        except DestinationNotFoundError:
            raise DestinationNotFoundError(
                f"destination {snap['name']!r} (id {snap['id']}) was removed after this transfer was queued;"
                " the source is kept: schedule the file again for an existing destination"
            ) from None

    def _copy(self, store: FileStore, work: _Work, transfer_id: int, running: _Running) -> StoredObject:
        """Copy the source to ``work.remote_path``, or adopt the identical object
        already there; refuse (and leave alone) any other object there."""
        if work.kind == BUNDLE:
            return self._copy_bundle(store, work, transfer_id, running)
        path = work.source_path
        with running.source_side():
            source = self.source_store(work.source_ref)
            before = source.info(path)
            _check_unchanged(path, before, work.size, work.mtime, "since it was scheduled")

        def unchanged_at_end() -> None:
            with running.source_side():
                _check_unchanged(path, source.info(path), before.size, _mtime(before), "while it was read")

        existing = _info_or_none(store, work.remote_path)
        with contextlib.ExitStack() as opened:
            with running.source_side():
                raw = opened.enter_context(source.get_fileobj(path))
            reader = _GuardedReader(raw, unchanged_at_end, on_failure=running.failed_at_source)
            if existing is not None:
                adopted = _adopt(store, existing, reader, before.size, work.remote_path, _extension(path))
                _check_bytes(path, adopted, work.sha256)
                return adopted
            stored = store.put(
                reader, work.remote_path, size=before.size,  # type: ignore[arg-type]  # duck-typed reader
                progress=lambda n: self._progress(transfer_id, running, n), cancel=running.cancel,
                extension=_extension(path),
            )  # fmt: skip
        try:  # take back what was published of other bytes than the file's
            if not reader.checked:  # a store that stopped reading before the end
                unchanged_at_end()
            _check_bytes(path, stored, work.sha256)
        except SourceChangedError:
            with contextlib.suppress(OcsTransferError):
                store.delete_file(stored.path, stored.version_id)
            raise
        return stored

    def _archive(self, work: _Work) -> Any:
        """The zip stream of a bundle's members; each member is checked
        against its scheduled size and modification time before and after it
        is read."""
        from ..storage.zipstream import ZipMember, ZipStream

        def member(m: dict[str, Any]) -> ZipMember:
            source = self.source_store(m["store"])

            def opener() -> Any:
                _check_unchanged(m["path"], source.info(m["path"]), m["size"], m["mtime"], "since it was scheduled")
                return source.open(m["path"])

            def check(count: int) -> None:
                if count != m["size"]:
                    raise SourceChangedError(
                        f"bundle member {m['path']!r} gave {count} bytes, it had {m['size']} when scheduled; it is"
                        " kept, and nothing was published. The attempt is retried"
                    )
                _check_unchanged(m["path"], source.info(m["path"]), m["size"], m["mtime"], "while it was read")

            return ZipMember(name=m["name"], size=m["size"], open=opener, check=check)

        return ZipStream([member(m) for m in self.bundle_members(work.file_id)], chunk_size=self.settings.chunk_size)

    def _copy_bundle(self, store: FileStore, work: _Work, transfer_id: int, running: _Running) -> StoredObject:
        """Zip a bundle's members into ``work.remote_path`` as it is sent (or
        adopt the identical bundle already there: the same members give the
        same bytes)."""
        from ..storage.bundle import put_archive

        existing = _info_or_none(store, work.remote_path)
        archive = self._archive(work)
        try:
            if existing is not None:
                reader = _GuardedReader(archive, lambda: None)
                size = archive.size if archive.size is not None else existing.size
                adopted = _adopt(store, existing, reader, size, work.remote_path, ".zip")
                _check_bytes(work.source_path, adopted, work.sha256)
                return adopted
            stored, _ = put_archive(store, archive, work.remote_path, cancel=running.cancel,
                                    progress=lambda n: self._progress(transfer_id, running, n))  # fmt: skip
        finally:
            archive.close()
        try:
            _check_bytes(work.source_path, stored, work.sha256)
        except SourceChangedError:
            with contextlib.suppress(OcsTransferError):
                store.delete_file(stored.path, stored.version_id)
            raise
        return stored

    def _link(
        self, store: FileStore, stored: StoredObject, keep_seconds: int | None = None
    ) -> tuple[str, float | None]:
        """The link recorded for a transfer and when it stops working: it
        lives as long as the file is kept (the destination's retention), or
        the default link expiration, within what the provider allows. Links
        that hold credentials are never stored: they are made when asked for
        (Destinations.link)."""
        from ..storage.base import share_link

        if store.links_hold_credentials:
            return "", None
        keep = timedelta(seconds=keep_seconds) if keep_seconds else None
        link, expires = share_link(store, stored.path, stored.version_id, keep, now=self.clock())
        if link is None:
            log.debug("no link for %s", stored.path)
            return "", None
        return link, expires.timestamp() if expires is not None else None

    def _progress(self, transfer_id: int, running: _Running, n: int) -> None:
        running.bytes_done += n
        now = self.clock()
        if now - self._last_beat >= self.settings.heartbeat_interval:
            self.beat()
        elif now - running.saved_at >= PROGRESS_SAVE_INTERVAL:  # `status` shows progress at least every second
            running.saved_at = now
            with self.ledger.transaction() as conn:
                self._lease_update(conn, transfer_id, running.lease, bytes_done=running.bytes_done)

    def _record_success(
        self, transfer_id: int, running: _Running, stored: StoredObject, link: str, link_expires_at: float | None
    ) -> Transfer:
        now = self.clock()
        with self.ledger.transaction() as conn:
            owned, transfer = self._lease_record(
                conn, transfer_id, running, state=COMPLETED, finished_at=now, lease=None, last_error="",
                bytes_done=stored.size, size=stored.size, md5=stored.md5, sha256=stored.sha256,
                provider_checksum=stored.provider_checksum or "", remote_version=stored.version_id or "", link=link,
                link_expires_at=link_expires_at, heartbeat_at=None,
            )  # fmt: skip
            if owned and not running.sha256:  # the first completed transfer of a file records the bytes
                conn.execute(_FIRST_SHA256, {"b_id": transfer_id, "b_sha256": stored.sha256})
        if not owned:
            log.warning("transfer %d finished here but was reclaimed meanwhile; the new owner records it", transfer_id)
            return transfer
        log.info("transfer %d completed: %s -> %s", transfer_id, transfer.source_path, transfer.destination_name)
        self._finished(transfer)
        if running.deletes_source:
            self.delete_source_if_done(transfer.file_id)
        return transfer

    def _record_failure(
        self, transfer_id: int, running: _Running, exc: Exception, attempts: int, secrets: Sequence[Secret]
    ) -> Transfer:
        now = self.clock()
        message = redact(f"{type(exc).__name__}: {exc}", secrets)[:2000]
        decision = classify(exc)
        values: dict[str, Any] = {"lease": None, "heartbeat_at": None, "last_error": message}
        if isinstance(exc, TransferCancelledError) or running.cancel.is_set():
            values.update(state=CANCELLED, finished_at=now, last_error="cancelled")
        elif decision.kind is Kind.DONE:  # the store found the identical object already there
            values.update(state=COMPLETED, finished_at=now, last_error="")
        elif decision.kind is Kind.NEVER or attempts >= self.max_attempts:
            values.update(state=FAILED, finished_at=now)
            if running.destination_may_fix(exc):
                values["last_error"] = (
                    f"{message} (the transfer keeps the destination as it was when scheduled: after fixing it with"
                    f" `ocs-transfer dest edit`, run `ocs-transfer retry {transfer_id} --refresh`)"
                )
        else:
            delay = float(self.settings.retry_delays[attempts - 1])
            if decision.retry_after is not None:
                delay = max(delay, decision.retry_after)
            values.update(state=PENDING, next_attempt_at=now + delay)
        log.log(
            logging.WARNING if values["state"] != PENDING else logging.INFO,
            "transfer %d attempt %d: %s -> %s", transfer_id, attempts, message, values["state"],
        )  # fmt: skip
        with self.ledger.transaction() as conn:
            owned, transfer = self._lease_record(conn, transfer_id, running, **values)
        if owned and transfer.final:
            self._finished(transfer)
            if transfer.state == COMPLETED:
                self.delete_source_if_done(transfer.file_id)
        return transfer

    def _finished(self, transfer: Transfer) -> None:
        from .. import plugins

        hook = plugins.get_plugin_manager().hook.ocs_transfer_transfer_finished
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("ocs_transfer_transfer_finished hook", lambda: hook(transfer=transfer))
        ]
        if self.on_finished is not None:
            callback = self.on_finished
            calls.insert(0, ("on_finished callback", lambda: callback(transfer)))
        for name, call in calls:
            try:
                call()
            except Exception as exc:  # a notifier's bug must not undo a transfer
                log.error("%s failed for transfer %d: %s: %s", name, transfer.id, type(exc).__name__, exc)

    # -- heartbeat, cancel, retry -----------------------------------------------------

    def beat(self) -> None:
        """Refresh the heartbeat of this engine's running transfers, save their
        progress, and pass on cancel requests made elsewhere."""
        with self._lock:
            running = dict(self._running)
        self._last_beat = now = self.clock()
        if not running:
            return
        with self.ledger.session() as session:
            for transfer_id, item in running.items():
                session.execute(
                    update(TransferRow)
                    .where(TransferRow.id == transfer_id, TransferRow.lease == item.lease)
                    .values(heartbeat_at=now, bytes_done=item.bytes_done)
                )
            cancelled = session.scalars(
                select(TransferRow.id).where(
                    TransferRow.id.in_(list(running)), TransferRow.cancel_requested.is_(True)
                )
            )
            for transfer_id in cancelled:
                running[transfer_id].cancel.set()

    def cancel(self, transfer_id: int) -> Transfer:
        """Cancel a transfer: a pending one at once; a running one is stopped
        by its worker (nothing partial is left) and then recorded cancelled."""
        now = self.clock()
        with self.ledger.session() as session:
            row = session.scalars(select(TransferRow).where(TransferRow.id == transfer_id).with_for_update()).first()
            if row is None:
                raise TransferNotFoundError(f"no transfer with id {transfer_id}")
            if row.state in FINAL_STATES:
                raise ConfigurationError(f"transfer {transfer_id} is already {row.state}; nothing to cancel")
            if row.state == PENDING:
                row.state, row.finished_at, row.last_error, row.updated_at = CANCELLED, now, "cancelled", now
            else:
                row.cancel_requested = True
                row.updated_at = now
            state = row.state
        with self._lock:
            item = self._running.get(transfer_id)
        if item is not None:
            item.cancel.set()
        transfer = self.get(transfer_id)
        if state == CANCELLED:
            self._finished(transfer)
        return transfer

    def retry(self, transfer_id: int) -> Transfer:
        """Queue a failed or cancelled transfer again, now, with its attempt
        count reset."""
        now = self.clock()
        with self.ledger.session() as session:
            row = session.scalars(select(TransferRow).where(TransferRow.id == transfer_id).with_for_update()).first()
            if row is None:
                raise TransferNotFoundError(f"no transfer with id {transfer_id}")
            if row.state not in (FAILED, CANCELLED):
                raise ConfigurationError(
                    f"transfer {transfer_id} is {row.state}; only failed or cancelled transfers can be retried"
                )
            row.state, row.attempts, row.next_attempt_at, row.updated_at = PENDING, 0, now, now
            row.finished_at, row.cancel_requested, row.lease = None, False, None
        return self.get(transfer_id)

    def refresh(self, transfer_id: int) -> Transfer:
        """Replace a failed or cancelled transfer's destination snapshot (and
        so its remote path) with the destination as it is now, e.g. after
        `dest edit` fixed it. Call :meth:`retry` to queue it."""
        current = self.get(transfer_id)
        dest = self.destinations.find(current.destination_id)
        if dest is None:
            raise ConfigurationError(
                f"destination {current.destination_name!r} (id {current.destination_id}) no longer exists;"
                " schedule the file again for an existing destination"
            )
        snap = dest.snapshot()
        with self.ledger.session() as session:
            source_file = session.get(SourceFileRow, current.file_id)
            context = json.loads(source_file.context or "{}") if source_file is not None else {}
            bundle = source_file is not None and source_file.kind == BUNDLE
        # a bundle goes to NAME under the destination's path, whatever the layout
        remote = _bundle_path(snap, current.source_path) if bundle else remote_path_for(snap, current.source_path,
                                                                                          context)  # fmt: skip
        # the scheduling-time check: another source's transfer may target the new path
        mine = (dest.id, (current.source_store, current.source_path))
        self._refuse_taken_paths({mine: remote}, {dest.id: dest.name},
                                 f"was not refreshed (transfer {transfer_id} keeps its old destination)")  # fmt: skip
        with self.ledger.session() as session:
            row = session.scalars(select(TransferRow).where(TransferRow.id == transfer_id).with_for_update()).first()
            file = session.get(SourceFileRow, current.file_id)
            if row is None or file is None:
                raise TransferNotFoundError(f"no transfer with id {transfer_id}")
            if row.state not in (FAILED, CANCELLED):
                raise ConfigurationError(
                    f"transfer {transfer_id} is {row.state}; only a failed or cancelled one can be refreshed"
                )
            if file.kind == BUNDLE:  # its own retention stays
                old = json.loads(row.snapshot)
                if old.get("bundle_keep_hours") is not None:
                    snap["bundle_keep_hours"] = old["bundle_keep_hours"]
            row.snapshot = json.dumps(snap, sort_keys=True)
            row.remote_path = remote
            row.destination_name, row.updated_at = dest.name, self.clock()
        return self.get(transfer_id)


    def retry_all_failed(self, *, destination: str | None = None) -> list[int]:
        """Queue every failed transfer again (of one destination, by name, when
        given), with attempt counts reset; returns their ids."""
        query = select(TransferRow.id).where(TransferRow.state == FAILED).order_by(TransferRow.id)
        if destination is not None:
            query = query.where(TransferRow.destination_name == destination)
        with self.ledger.session() as session:
            ids = list(session.scalars(query))
        retried = []
        for transfer_id in ids:
            try:
                self.retry(transfer_id)
            except (TransferNotFoundError, ConfigurationError):  # purged or retried meanwhile
                continue
            retried.append(transfer_id)
        return retried

    def check_credentials(self) -> None:
        """Decrypt the credentials of every destination that pending transfers
        will use. When none of those that store credentials decrypts, the key
        ring is wrong (a wrong key under the right kid, a missing kid): raise
        the :class:`CredentialError`, so that a worker stops before it claims
        anything instead of failing every queued transfer one after another.
        When only some fail (one damaged row), log them and go on: their
        transfers fail one by one with the same clear message, and the others
        run."""
        with self.ledger.session() as session:
            snaps = list(session.scalars(
                select(TransferRow.snapshot).where(TransferRow.state.in_([PENDING, IN_PROGRESS])).distinct()
            ))  # fmt: skip
        seen: set[int] = set()
        failures: list[CredentialError] = []
        decrypted = 0
        for text in snaps:
            snap = json.loads(text)
            if snap["id"] in seen:
                continue
            seen.add(snap["id"])
            try:
                decrypted += bool(self.destinations.credentials(snap["id"], uuid=snap.get("uuid")))
            except DestinationNotFoundError:
                continue  # those transfers fail one by one, with their own clear message
            except CredentialError as exc:
                failures.append(exc)
        if failures and not decrypted:
            raise failures[0]
        for failure in failures:
            log.error("%s; its transfers will fail", failure)

    # -- source deletion --------------------------------------------------------------

    def delete_source_if_done(self, file_id: int) -> bool:
        """Delete the source file when a destination asked for it and it is
        safe: as many transfer records as were scheduled for the file exist,
        every one completed with the file's sha256 and size, no other schedule
        of the same source is unfinished, and the source still has the size and
        modification time recorded at scheduling. At most one caller wins the
        right to delete (a conditional update); returns whether this call
        deleted it."""
        now = self.clock()
        with self.ledger.session() as session:
            file = session.get(SourceFileRow, file_id)
            if file is None or file.delete_state != "pending" or file.transfer_count < 1 or not file.sha256:
                return False
            ref, path, size, mtime, count = file.store, file.path, file.size, file.mtime, file.transfer_count
            of_file = TransferRow.file_id == file_id
            same_bytes = and_(TransferRow.state == COMPLETED, TransferRow.sha256 == file.sha256,
                              TransferRow.size == size if size is not None else TransferRow.size.is_not(None))
            verified = select(func.count()).where(of_file, same_bytes).scalar_subquery()
            recorded = select(func.count()).where(of_file).scalar_subquery()
            unfinished = _unfinished_elsewhere(file_id, ref, path)
            result = session.execute(
                update(SourceFileRow)
                .where(
                    SourceFileRow.id == file_id,
                    SourceFileRow.delete_source.is_(True),
                    SourceFileRow.delete_state == "pending",
                    SourceFileRow.sha256 == file.sha256,
                    verified == count,
                    recorded == count,
                    ~unfinished,
                )
                .values(delete_state="deleting", deleted_at=now)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
        return self._delete_source(file_id, ref, path, size, mtime)

    def _delete_source(self, file_id: int, ref: str, path: str, size: int | None, mtime: float | None) -> bool:
        if ref.startswith("bundle:"):
            return self._delete_members(file_id)
        try:
            store = self.source_store(ref)
            try:
                _check_unchanged(path, store.info(path), size, mtime, "after its transfers read it")
            except SourceChangedError as exc:
                log.warning("not deleting: %s", exc)
                self._undo_deleting(file_id, "kept")
                return False
            store.delete_file(path)
        except ObjectNotFoundError:
            log.info("source %s was already gone", path)
        except Exception as exc:
            log.warning("deleting source %s failed (will retry): %s", path, type(exc).__name__)
            self._undo_deleting(file_id, "pending")
            return False
        with self.ledger.session() as session:
            session.execute(
                update(SourceFileRow).where(SourceFileRow.id == file_id).values(
                    delete_state="deleted", deleted_at=self.clock()
                )
            )
        log.info("source %s deleted: every transfer completed", path)
        return True

    def _delete_members(self, file_id: int) -> bool:
        """Delete a completed bundle's members: each one still as it was when
        scheduled (what the bundle holds); a changed one is kept."""
        kept = 0
        for m in self.bundle_members(file_id):
            try:
                store = self.source_store(m["store"])
                try:
                    info = store.info(m["path"])
                    _check_unchanged(m["path"], info, m["size"], m["mtime"], "after the bundle read it")
                except SourceChangedError as exc:
                    log.warning("not deleting: %s", exc)
                    kept += 1
                    continue
                store.delete_file(m["path"])
            except ObjectNotFoundError:
                log.info("bundle member %s was already gone", m["path"])
            except Exception as exc:
                log.warning("deleting bundle member %s failed (will retry): %s", m["path"], type(exc).__name__)
                self._undo_deleting(file_id, "pending")
                return False
        with self.ledger.session() as session:
            session.execute(
                update(SourceFileRow).where(SourceFileRow.id == file_id).values(
                    delete_state="kept" if kept else "deleted", deleted_at=self.clock()
                )
            )
        log.info("bundle %d: members deleted (%d kept): every transfer completed", file_id, kept)
        return True

    def _undo_deleting(self, file_id: int, state: str) -> None:
        with self.ledger.session() as session:
            session.execute(
                update(SourceFileRow)
                .where(SourceFileRow.id == file_id, SourceFileRow.delete_state == "deleting")
                .values(delete_state=state, deleted_at=None)
            )


def _unfinished_elsewhere(file_id: int, ref: str, path: str) -> Any:
    """SQL: whether another transfer still needs the source file(s) that the
    deletion of scheduled file ``file_id`` (``ref``, ``path``) would remove:
    an unfinished transfer of the same source scheduled separately, or of a
    bundle holding it; for a bundle, the same for each of its members."""
    others = aliased(SourceFileRow)
    member, other_member = aliased(BundleMemberRow), aliased(BundleMemberRow)
    not_done = TransferRow.state != COMPLETED
    sources: list[ColumnElement[bool]]
    bundles: list[ColumnElement[bool]]
    if not ref.startswith("bundle:"):
        sources = [others.store == ref, others.path == path]
        bundles = [other_member.store == ref, other_member.path == path]
    else:  # each member: its own schedules, and other bundles holding it
        sources = [member.file_id == file_id, others.store == member.store, others.path == member.path]
        bundles = [member.file_id == file_id, other_member.store == member.store, other_member.path == member.path]
    return or_(
        exists().where(*sources, TransferRow.file_id == others.id, others.id != file_id, not_done),
        exists().where(*bundles, TransferRow.file_id == other_member.file_id, other_member.file_id != file_id,
                       not_done),
        exists().where(TransferRow.file_id == file_id, not_done),
    )


def _bundle_path(snapshot: Mapping[str, Any], name: str) -> str:
    """Where a bundle goes: ``name`` under the destination's path (no layout)."""
    from ..storage.paths import safe_path

    base = [p for p in str(snapshot.get("path") or "").split("/") if p]
    return safe_path("/".join([*base, name]))


def _keep_seconds(snapshot: dict[str, Any]) -> int | None:
    """How long a transfer's file stays at its destination, from the snapshot
    (a bundle's own ``bundle_keep_hours``, else the destination's
    ``keep_hours``; snapshots taken before hours existed have ``keep_days``)."""
    hours = snapshot.get("bundle_keep_hours", snapshot.get("keep_hours"))
    if hours is not None:
        return int(hours) * 3600
    days = snapshot.get("keep_days")
    return int(days) * 86400 if days else None
