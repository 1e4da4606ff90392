"""The transfer engine: schedule, claim, run, retry, cancel, clean up.

A scheduled source file gets one transfer per destination. A transfer moves
``pending`` -> ``in_progress`` -> ``completed`` | ``failed`` | ``cancelled``; a
retryable failure puts it back to ``pending`` with a later ``next_attempt_at``.

Claiming is atomic: one transaction selects due rows (``FOR UPDATE SKIP LOCKED``
on PostgreSQL; on SQLite the transaction is ``BEGIN IMMEDIATE``, so no other
writer runs between the select and the update) and marks them ``in_progress``
with a fresh lease. Every later write about the attempt is conditional on that
lease, so a worker whose transfer was reclaimed cannot overwrite the new owner.

All times come from an injectable ``clock`` (UNIX seconds).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Any

import attrs
from sqlalchemy import and_, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

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
from ..storage.base import FileStore, StoredObject
from .destinations import DestinationNotFoundError, Destinations, open_store
from .ledger import Ledger
from .models import (
    CANCELLED,
    COMPLETED,
    FAILED,
    FINAL_STATES,
    IN_PROGRESS,
    PENDING,
    SourceFileRow,
    TransferRow,
)

__all__ = ["Engine", "Transfer", "TransferNotFoundError", "Worker", "remote_path_for"]

log = logging.getLogger(__name__)

#: Resolves a source file's store reference (a provider name or URL) to a store.
SourceResolver = Callable[[str], FileStore]
Outcome = Callable[["Transfer"], None]


class TransferNotFoundError(ConfigurationError, LookupError):
    """No transfer has this id."""


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

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @classmethod
    def from_rows(cls, row: TransferRow, file: SourceFileRow) -> Transfer:
        snap = json.loads(row.snapshot)
        return cls(
            id=row.id, file_id=row.file_id, source_store=file.store, source_path=file.path,
            destination_id=row.destination_id, destination_name=row.destination_name,
            provider=snap.get("provider", ""), state=row.state, attempts=row.attempts,
            next_attempt_at=row.next_attempt_at, last_error=row.last_error, bytes_done=row.bytes_done,
            size=row.size, md5=row.md5, sha256=row.sha256, provider_checksum=row.provider_checksum,
            remote_path=row.remote_path, remote_version=row.remote_version, link=row.link, worker=row.worker,
            created_at=row.created_at, updated_at=row.updated_at, started_at=row.started_at,
            finished_at=row.finished_at, expired_at=row.expired_at,
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


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@attrs.define
class _Running:
    lease: str
    cancel: threading.Event
    bytes_done: int = 0
    deletes_source: bool = True


@attrs.frozen
class _Work:
    """What one attempt needs from the ledger, read when it was claimed."""

    snapshot: dict[str, Any]
    remote_path: str
    source_ref: str
    source_path: str
    attempts: int
    size: int | None
    deletes_source: bool

    @classmethod
    def of(cls, row: TransferRow, file: SourceFileRow) -> _Work:
        return cls(json.loads(row.snapshot), row.remote_path, file.store, file.path, row.attempts, file.size,
                   file.delete_state == "pending")  # fmt: skip


class Engine:
    """Schedules and runs transfers recorded in a :class:`Ledger`.

    ``source_resolver`` turns a source file's store reference into a store
    (default: :func:`ocs_transfer.storage.get_store`). ``on_finished`` is called
    with the :class:`Transfer` whenever one reaches a final state, as is the
    ``ocs_transfer_transfer_finished`` plugin hook.
    """

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
        return f"Engine({self.ledger!r}, worker={self.worker_id!r})"

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
    ) -> list[Transfer]:
        """Queue ``paths`` (in the store ``source``) for every destination: one
        ``pending`` transfer per file and destination, each keeping a snapshot
        of its destination as it is now."""
        if isinstance(paths, str):
            paths = [paths]
        dests = [self.destinations.get(ref) for ref in destinations]
        if not dests:
            raise ConfigurationError("no destinations given: name at least one (see `ocs-transfer dest list`)")
        for dest in dests:
            if not dest.usable:
                raise ConfigurationError(f"destination {dest.name!r} is disabled; enable it or pick another")
        if len({d.id for d in dests}) != len(dests):
            raise ConfigurationError("a destination is named twice")
        ctx = dict(context or {})
        now = self.clock()
        asked = any(d.delete_source for d in dests)
        snaps = [(d, d.snapshot()) for d in dests]
        created: list[Transfer] = []
        with self.ledger.session() as session:
            for start in range(0, len(paths), 500):  # bulk inserts, in slices
                batch = paths[start : start + 500]
                file_ids = session.scalars(
                    insert(SourceFileRow).returning(SourceFileRow.id, sort_by_parameter_order=True),
                    [
                        {"store": source, "path": path, "context": json.dumps(ctx, sort_keys=True),
                         "delete_source": asked, "delete_state": "pending" if asked else "", "created_at": now}
                        for path in batch
                    ],
                ).all()  # fmt: skip
                session.execute(
                    insert(TransferRow),
                    [
                        {"file_id": file_id, "destination_id": dest.id, "destination_name": dest.name,
                         "snapshot": json.dumps(snap, sort_keys=True), "state": PENDING, "attempts": 0,
                         "next_attempt_at": now, "remote_path": remote_path_for(snap, path, ctx), "created_at": now,
                         "updated_at": now, "last_error": "", "bytes_done": 0, "md5": "", "sha256": "",
                         "provider_checksum": "", "remote_version": "", "link": "", "worker": "",
                         "cancel_requested": False}
                        for file_id, path in zip(file_ids, batch, strict=True)
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
        log.info("scheduled %d transfer(s) of %d file(s)", len(created), len(paths))
        return created

    # -- reading -----------------------------------------------------------------------

    def get(self, transfer_id: int) -> Transfer:
        with self.ledger.session() as session:
            return self._read(session, transfer_id)

    @staticmethod
    def _read(session: Session, transfer_id: int) -> Transfer:
        found = session.execute(
            select(TransferRow, SourceFileRow)
            .join(SourceFileRow, SourceFileRow.id == TransferRow.file_id)
            .where(TransferRow.id == transfer_id)
        ).first()
        if found is None:
            raise TransferNotFoundError(f"no transfer with id {transfer_id} (see `ocs-transfer status`)")
        return Transfer.from_rows(found[0], found[1])

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

    def claim(self, limit: int = 1) -> list[tuple[int, str]]:
        """Atomically take up to ``limit`` due transfers; returns ``(id, lease)``
        pairs. Pass each to :meth:`execute` (a claim not executed stays
        ``in_progress`` until its heartbeat goes stale and it is reclaimed)."""
        now = self.clock()
        with self.ledger.session() as session:
            query = (
                select(TransferRow.id)
                .where(TransferRow.state == PENDING, TransferRow.next_attempt_at <= now)
                .order_by(TransferRow.next_attempt_at, TransferRow.id)
                .limit(limit)
            )
            if self.ledger.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(session.scalars(query))
            claimed: list[tuple[int, str]] = []
            for transfer_id in ids:
                lease = uuid.uuid4().hex
                result = session.execute(
                    update(TransferRow)
                    .where(TransferRow.id == transfer_id, TransferRow.state == PENDING)
                    .values(
                        state=IN_PROGRESS, lease=lease, worker=self.worker_id, heartbeat_at=now, started_at=now,
                        updated_at=now, attempts=TransferRow.attempts + 1, cancel_requested=False, bytes_done=0,
                    )
                )  # fmt: skip
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append((transfer_id, lease))
            if claimed:  # read what the attempts need in the same transaction
                leases = dict(claimed)
                rows = session.execute(
                    select(TransferRow, SourceFileRow)
                    .join(SourceFileRow, SourceFileRow.id == TransferRow.file_id)
                    .where(TransferRow.id.in_(list(leases)))
                ).all()
                with self._lock:
                    for row, file in rows:
                        self._claimed[(row.id, leases[row.id])] = _Work.of(row, file)
        return claimed

    def _lease_update(self, session: Session, transfer_id: int, held: str, /, **values: Any) -> bool:
        result = session.execute(
            update(TransferRow)
            .where(TransferRow.id == transfer_id, TransferRow.lease == held, TransferRow.state == IN_PROGRESS)
            .values(updated_at=self.clock(), **values)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

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
        running = _Running(lease=lease, cancel=threading.Event())
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
                work = _Work.of(row, file)
        snap, remote_path, source_ref, source_path = work.snapshot, work.remote_path, work.source_ref, work.source_path
        attempts, size_hint = work.attempts, work.size
        running.deletes_source = work.deletes_source
        secrets: list[Secret] = []
        try:
            try:
                creds = self.destinations.credentials(snap["id"])
            except DestinationNotFoundError:
                raise ConfigurationError(
                    f"destination {snap['name']!r} (id {snap['id']}) was removed after this transfer was queued;"
                    " schedule the file again for an existing destination"
                ) from None
            secrets = list(creds.values())
            store = open_store(snap["provider"], snap.get("options") or {}, creds, settings=self.settings)
            try:
                if attempts > 1:
                    _discard_stale_partials(store, remote_path)
                source = self.source_store(source_ref)
                with source.get_fileobj(source_path) as reader:
                    stored = store.put(
                        reader, remote_path, size=size_hint, progress=lambda n: self._progress(running, n),
                        cancel=running.cancel, extension=_extension(source_path),
                    )  # fmt: skip
                link = self._link(store, stored, snap.get("keep_days"))
            finally:
                self.destinations.save_rotated(snap["id"], store)
                store.close()
        except Exception as exc:
            return self._record_failure(transfer_id, running, exc, attempts, secrets)
        return self._record_success(transfer_id, running, stored, link)

    @staticmethod
    def _link(store: FileStore, stored: StoredObject, keep_days: int | None = None) -> str:
        """The link recorded for a transfer: it lives as long as the file is
        kept (``keep_days``), or the default link expiration."""
        try:
            if keep_days:
                return store.get_url(stored.path, stored.version_id, expiration=timedelta(days=int(keep_days)))
            return store.get_url(stored.path, stored.version_id)
        except (OcsTransferError, NotImplementedError) as exc:
            log.debug("no link for %s: %s", stored.path, type(exc).__name__)
            return ""

    def _progress(self, running: _Running, n: int) -> None:
        running.bytes_done += n
        if self.clock() - self._last_beat >= self.settings.heartbeat_interval:
            self.beat()

    def _record_success(self, transfer_id: int, running: _Running, stored: StoredObject, link: str) -> Transfer:
        now = self.clock()
        with self.ledger.session() as session:
            owned = self._lease_update(
                session, transfer_id, running.lease, state=COMPLETED, finished_at=now, lease=None, last_error="",
                bytes_done=stored.size, size=stored.size, md5=stored.md5, sha256=stored.sha256,
                provider_checksum=stored.provider_checksum or "", remote_version=stored.version_id or "", link=link,
                heartbeat_at=None,
            )  # fmt: skip
            transfer = self._read(session, transfer_id)
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
        else:
            delay = float(self.settings.retry_delays[attempts - 1])
            if decision.retry_after is not None:
                delay = max(delay, decision.retry_after)
            values.update(state=PENDING, next_attempt_at=now + delay)
        log.log(
            logging.WARNING if values["state"] != PENDING else logging.INFO,
            "transfer %d attempt %d: %s -> %s", transfer_id, attempts, message, values["state"],
        )  # fmt: skip
        with self.ledger.session() as session:
            owned = self._lease_update(session, transfer_id, running.lease, **values)
            transfer = self._read(session, transfer_id)
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

    # -- heartbeat, cancel, reclaim ----------------------------------------------------

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

    def reclaim(self) -> int:
        """Re-queue running transfers whose worker is gone: a heartbeat older
        than ``stale_after``, or (same host) a worker process that no longer
        exists. Returns how many were re-queued (or recorded cancelled/failed)."""
        now = self.clock()
        host = socket.gethostname()
        with self.ledger.session() as session:
            query = select(TransferRow).where(TransferRow.state == IN_PROGRESS)
            if self.ledger.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            finished: list[int] = []
            count = 0
            for row in session.scalars(query):
                stale = row.heartbeat_at is None or row.heartbeat_at < now - self.settings.stale_after
                w_host, _, rest = row.worker.partition(":")
                pid_text = rest.partition(":")[0]
                dead = w_host == host and pid_text.isdigit() and not _pid_alive(int(pid_text))
                with self._lock:
                    ours = row.id in self._running
                if ours or not (stale or dead):
                    continue
                count += 1
                row.lease, row.heartbeat_at, row.updated_at = None, None, now
                if row.cancel_requested:
                    row.state, row.finished_at, row.last_error = CANCELLED, now, "cancelled"
                    finished.append(row.id)
                elif row.attempts >= self.max_attempts:
                    row.state, row.finished_at = FAILED, now
                    row.last_error = f"worker {row.worker} stopped during the last allowed attempt"
                    finished.append(row.id)
                else:
                    row.state, row.next_attempt_at = PENDING, now
                    row.last_error = f"worker {row.worker} stopped responding; re-queued"
                log.warning("transfer %d: %s", row.id, row.last_error)
        for transfer_id in finished:
            self._finished(self.get(transfer_id))
        return count

    # -- source deletion, purge, expiry ------------------------------------------------

    def delete_source_if_done(self, file_id: int) -> bool:
        """Delete the source file when a destination asked for it and every
        transfer of it completed. At most one caller wins the right to delete
        (a conditional update); returns whether this call deleted it."""
        now = self.clock()
        with self.ledger.session() as session:
            file = session.get(SourceFileRow, file_id)
            if file is None or file.delete_state != "pending":
                return False
            ref, path = file.store, file.path
            # every transfer of this source, including those scheduled separately for the same path
            same_source = select(SourceFileRow.id).where(SourceFileRow.store == ref, SourceFileRow.path == path)
            unfinished = exists().where(TransferRow.file_id.in_(same_source), TransferRow.state != COMPLETED)
            result = session.execute(
                update(SourceFileRow)
                .where(
                    SourceFileRow.id == file_id,
                    SourceFileRow.delete_source.is_(True),
                    SourceFileRow.delete_state == "pending",
                    ~unfinished,
                )
                .values(delete_state="deleting", deleted_at=now)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
        return self._delete_source(file_id, ref, path)

    def _delete_source(self, file_id: int, ref: str, path: str) -> bool:
        try:
            self.source_store(ref).delete_file(path)
        except ObjectNotFoundError:
            log.info("source %s was already gone", path)
        except Exception as exc:
            log.warning("deleting source %s failed (will retry): %s", path, type(exc).__name__)
            with self.ledger.session() as session:
                session.execute(
                    update(SourceFileRow)
                    .where(SourceFileRow.id == file_id, SourceFileRow.delete_state == "deleting")
                    .values(delete_state="pending", deleted_at=None)
                )
            return False
        with self.ledger.session() as session:
            session.execute(
                update(SourceFileRow).where(SourceFileRow.id == file_id).values(
                    delete_state="deleted", deleted_at=self.clock()
                )
            )
        log.info("source %s deleted: every transfer completed", path)
        return True

    def finish_source_deletions(self) -> int:
        """Finish deletions a crashed worker left half-done, and those whose
        delete failed before."""
        cutoff = self.clock() - self.settings.stale_after
        with self.ledger.session() as session:
            stuck = list(
                session.execute(
                    select(SourceFileRow.id, SourceFileRow.store, SourceFileRow.path).where(
                        SourceFileRow.delete_state == "deleting", SourceFileRow.deleted_at < cutoff
                    )
                )
            )
            pending = list(
                session.scalars(select(SourceFileRow.id).where(SourceFileRow.delete_state == "pending"))
            )
        done = sum(self._delete_source(fid, ref, path) for fid, ref, path in stuck)
        return done + sum(self.delete_source_if_done(fid) for fid in pending)

    def purge(self, *, older_than_days: int | None = None, failed: bool = False) -> int:
        """Delete completed records finished more than ``older_than_days``
        (default ``purge_after_days``) ago; with ``failed=True`` failed and
        cancelled ones too. Returns how many transfer records went."""
        days = self.settings.purge_after_days if older_than_days is None else older_than_days
        cutoff = self.clock() - days * 86400
        states = [COMPLETED, FAILED, CANCELLED] if failed else [COMPLETED]
        with self.ledger.session() as session:
            result = session.execute(
                delete(TransferRow).where(TransferRow.state.in_(states), TransferRow.finished_at < cutoff)
            )
            orphan = ~exists().where(TransferRow.file_id == SourceFileRow.id)
            session.execute(
                delete(SourceFileRow).where(orphan, SourceFileRow.delete_state.in_(["", "deleted"]))
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def expire(self) -> int:
        """Delete files from destinations past their ``keep_days``. Returns
        how many objects were removed (or found already gone)."""
        now = self.clock()
        with self.ledger.session() as session:
            rows = list(
                session.execute(
                    select(TransferRow.id, TransferRow.snapshot, TransferRow.finished_at, TransferRow.remote_path,
                           TransferRow.remote_version)
                    .where(and_(TransferRow.state == COMPLETED, TransferRow.expired_at.is_(None)))
                )
            )  # fmt: skip
        done = 0
        for transfer_id, snapshot, finished_at, path, version in rows:
            snap = json.loads(snapshot)
            keep = snap.get("keep_days")
            if not keep or finished_at is None or finished_at + keep * 86400 > now:
                continue
            if self.destinations.find(snap["id"]) is None:
                log.warning("transfer %d: destination %r was removed; cannot expire %s", transfer_id, snap["name"],
                            path)
                continue
            try:
                creds = self.destinations.credentials(snap["id"])
                with open_store(snap["provider"], snap.get("options") or {}, creds, settings=self.settings) as store:
                    try:
                        store.delete_file(path, version or None)
                    except ObjectNotFoundError:
                        pass
            except (OcsTransferError, CredentialError) as exc:
                log.warning("transfer %d: expiring %s failed: %s", transfer_id, path, type(exc).__name__)
                continue
            with self.ledger.session() as session:
                session.execute(update(TransferRow).where(TransferRow.id == transfer_id).values(expired_at=now))
            done += 1
        return done

    def periodic(self) -> None:
        """The periodic pass: reclaim stale transfers, finish source deletions,
        sweep crashed uploads' temporaries (every few hours)."""
        self.reclaim()
        self.finish_source_deletions()
        from .sweep import sweep_if_due

        sweep_if_due(self)


def _discard_stale_partials(store: FileStore, remote_path: str) -> None:
    """Remove staged uploads an earlier attempt of this transfer left beside
    its path when its worker was killed (a live attempt cleans up after itself;
    the lease guarantees no other attempt of this transfer is running)."""
    from ..storage.fsspec_store import TEMP_MARKER, FsspecStore

    if not isinstance(store, FsspecStore) or store.atomic_writes:
        return
    full = store._full(remote_path)
    parent, name = posixpath.split(full)
    prefix = f".{name[:180]}.{TEMP_MARKER}-"
    try:
        entries = store.fs.ls(parent or "/", detail=False)
        for entry in entries:
            if posixpath.basename(str(entry)).startswith(prefix):
                log.info("removing a partial upload a killed attempt left: %s", posixpath.basename(str(entry)))
                store.fs.rm(entry)
    except (FileNotFoundError, NotADirectoryError):
        return
    except Exception as exc:
        log.warning("could not check for partial uploads of %s: %s", remote_path, type(exc).__name__)


def _extension(path: str) -> str:
    name = posixpath.basename(path)
    for ext in (".fits.fz", ".fits.gz", ".tar.gz"):
        if name.endswith(ext):
            return ext
    return posixpath.splitext(name)[1]


def _log_crash(future: Future[Transfer]) -> None:
    """An attempt that could not even record its outcome (the ledger was
    unreachable): its heartbeat stops, and the periodic pass reclaims it."""
    exc = future.exception()
    if exc is not None:
        log.error("a transfer attempt crashed: %s: %s", type(exc).__name__, exc)


class Worker:
    """The embedded runner: a bounded thread pool running due transfers,
    with heartbeats and the periodic pass."""

    def __init__(self, engine: Engine, *, threads: int | None = None, poll_interval: float = 1.0) -> None:
        self.engine = engine
        self.threads = threads or engine.settings.worker_threads
        if self.threads < 1:
            raise ConfigurationError("a worker needs at least one thread (OCS_TRANSFER_WORKER_THREADS)")
        self.poll_interval = poll_interval
        self.stop_event = threading.Event()

    def stop(self) -> None:
        self.stop_event.set()

    def _heartbeat_loop(self, done: threading.Event) -> None:
        while not done.wait(self.engine.settings.heartbeat_interval):
            try:
                self.engine.beat()
            except Exception as exc:
                log.warning("heartbeat failed: %s", type(exc).__name__)

    def run(self, *, until_idle: bool = False) -> int:
        """Run until :meth:`stop` (or, with ``until_idle``, until nothing is
        due or running). Returns how many attempts ran."""
        engine = self.engine
        engine.reclaim()  # start-up: re-queue what dead workers left in flight
        engine.finish_source_deletions()
        last_periodic = engine.clock()
        futures: set[Future[Transfer]] = set()
        ran = 0
        done = threading.Event()
        beater = threading.Thread(target=self._heartbeat_loop, args=(done,), name="ocs-transfer-heartbeat", daemon=True)
        beater.start()
        try:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="ocs-transfer") as pool:
                while not self.stop_event.is_set():
                    futures = {f for f in futures if not f.done()}
                    free = self.threads - len(futures)
                    claimed = engine.claim(free) if free > 0 else []
                    for transfer_id, lease in claimed:
                        future = pool.submit(engine.execute, transfer_id, lease)
                        future.add_done_callback(_log_crash)
                        futures.add(future)
                    ran += len(claimed)
                    if engine.clock() - last_periodic >= engine.settings.periodic_interval:
                        engine.periodic()
                        last_periodic = engine.clock()
                    if claimed and free > len(claimed):
                        continue
                    if until_idle and not claimed and not futures:
                        break
                    if futures and not claimed:
                        # wake when a slot frees up, or after the poll interval
                        wait(futures, timeout=self.poll_interval, return_when=FIRST_COMPLETED)
                    elif not claimed:
                        self.stop_event.wait(self.poll_interval)
        finally:
            done.set()
            beater.join()
        return ran

