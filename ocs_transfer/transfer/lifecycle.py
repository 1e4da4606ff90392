"""The lifecycle passes: what keeps the ledger moving when no attempt is
running: reclaim transfers whose worker died, finish source deletions a crash
left half-done, purge old records, expire files past their retention, sweep
crashed uploads' temporaries, and :meth:`LifecyclePasses.periodic`, which runs
them all (any executor calls it every ``periodic_interval``).

Purging an unfinished transfer's record marks its file ``kept`` for good.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, delete, exists, select, update

from ..exceptions import (
    ConfigurationError,
    CredentialError,
    ObjectNotFoundError,
    OcsTransferError,
)
from .attempt import _discard_stale_partials
from .core import EngineCore, _keep_seconds
from .destinations import open_store
from .models import (
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    SourceFileRow,
    TransferRow,
)

__all__ = ["LifecyclePasses"]

log = logging.getLogger("ocs_transfer.transfer.engine")  # every engine module logs under one name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LifecyclePasses(EngineCore):
    """The engine core plus the passes that reclaim, finish, purge, expire and sweep."""

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
            leftovers: list[tuple[str, str]] = []
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
                    leftovers.append((row.snapshot, row.remote_path))
                elif row.attempts >= self.max_attempts:
                    row.state, row.finished_at = FAILED, now
                    row.last_error = f"worker {row.worker} stopped during the last allowed attempt"
                    finished.append(row.id)
                    leftovers.append((row.snapshot, row.remote_path))
                else:
                    row.state, row.next_attempt_at = PENDING, now
                    row.last_error = f"worker {row.worker} stopped responding; re-queued"
                log.warning("transfer %d: %s", row.id, row.last_error)
        for snapshot, remote_path in leftovers:  # no attempt will come to clean up after the dead one
            self._discard_partials_of(json.loads(snapshot), remote_path)
        for transfer_id in finished:
            self._finished(self.get(transfer_id))
        return count

    def _discard_partials_of(self, snap: Mapping[str, Any], remote_path: str) -> None:
        try:
            creds = self._destination_credentials(snap)
            with open_store(snap["provider"], snap.get("options") or {}, creds, settings=self.settings,
                            scope=self.destinations.scope_for(snap)) as store:
                _discard_stale_partials(store, remote_path)
        except (OcsTransferError, CredentialError) as exc:
            log.warning("could not clean up after a stopped worker at %s: %s", remote_path, type(exc).__name__)

    def finish_source_deletions(self) -> int:
        """Finish deletions a crashed worker left half-done, and those whose
        delete failed before."""
        cutoff = self.clock() - self.settings.stale_after
        with self.ledger.session() as session:
            stuck = list(
                session.execute(
                    select(SourceFileRow.id, SourceFileRow.store, SourceFileRow.path, SourceFileRow.size,
                           SourceFileRow.mtime).where(
                        SourceFileRow.delete_state == "deleting", SourceFileRow.deleted_at < cutoff
                    )
                )
            )
            pending = list(
                session.scalars(select(SourceFileRow.id).where(SourceFileRow.delete_state == "pending"))
            )
        done = sum(self._delete_source(*row) for row in stuck)
        return done + sum(self.delete_source_if_done(fid) for fid in pending)

    def purge(self, *, older_than_days: int | None = None, failed: bool = False) -> int:
        """Delete completed records finished more than ``older_than_days``
        (default ``purge_after_days``) ago; with ``failed=True`` failed and
        cancelled ones too. Returns how many transfer records went.

        Purging never enables a source deletion: a file whose deletion is
        still pending when one of its records goes is marked ``kept`` (its
        source stays, whatever happens to its other transfers)."""
        days = self.settings.purge_after_days if older_than_days is None else older_than_days
        if days < 0:
            raise ConfigurationError(f"purge --days must be 0 or more, got {days}")
        cutoff = self.clock() - days * 86400
        states = [COMPLETED, FAILED, CANCELLED] if failed else [COMPLETED]
        doomed = and_(TransferRow.state.in_(states), TransferRow.finished_at < cutoff)
        with self.ledger.session() as session:
            kept = session.execute(
                update(SourceFileRow)
                .where(SourceFileRow.delete_state == "pending",
                       SourceFileRow.id.in_(select(TransferRow.file_id).where(doomed)))
                .values(delete_state="kept")
            )  # fmt: skip
            if kept.rowcount:  # type: ignore[attr-defined]
                log.warning("purge: %d source file(s) will not be deleted: records of their transfers were purged"
                            " before every transfer completed", kept.rowcount)  # type: ignore[attr-defined]
            result = session.execute(delete(TransferRow).where(doomed))
            orphan = ~exists().where(TransferRow.file_id == SourceFileRow.id)
            session.execute(
                delete(SourceFileRow).where(orphan, SourceFileRow.delete_state.in_(["", "deleted", "kept"]))
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def expire(self) -> int:
        """Delete files from destinations past their retention (``keep_hours``;
        a snapshot from before hours has ``keep_days``; a bundle's own
        ``keep_hours`` is in its snapshot), and the share links the provider
        keeps to them. Returns how many objects were removed (or found already
        gone)."""
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
            keep = _keep_seconds(snap)
            if not keep or finished_at is None or finished_at + keep > now:
                continue
            if self.destinations.find(snap["id"]) is None:
                log.warning("transfer %d: destination %r was removed; cannot expire %s", transfer_id, snap["name"],
                            path)
                continue
            try:
                creds = self.destinations.credentials(snap["id"])
                with open_store(snap["provider"], snap.get("options") or {}, creds, settings=self.settings,
                                scope=self.destinations.scope_for(snap)) as store:
                    try:
                        store.delete_file(path, version or None)
                    except ObjectNotFoundError:
                        pass
                    withdrawn = store.delete_links(path)  # share links kept as objects of their own go too
                    if withdrawn:
                        log.info("transfer %d: %d share link(s) to %s withdrawn", transfer_id, withdrawn, path)
            except (OcsTransferError, CredentialError) as exc:
                log.warning("transfer %d: expiring %s failed: %s", transfer_id, path, type(exc).__name__)
                continue
            with self.ledger.session() as session:
                session.execute(update(TransferRow).where(TransferRow.id == transfer_id).values(expired_at=now))
            done += 1
        return done

    def sweep(self) -> None:
        """Remove crashed uploads' temporaries from every destination (at most every few hours)."""
        from .sweep import sweep_if_due

        sweep_if_due(self)

    def periodic(self) -> None:
        """The periodic pass: reclaim stale transfers, finish source deletions,
        purge old completed records (``purge_after_days``), expire files past
        their destination's retention (``keep_hours``) and sweep crashed
        uploads' temporaries (every few hours). One step failing does not stop
        the others."""
        for step in (self.reclaim, self.finish_source_deletions, self.purge, self.expire, self.sweep):
            try:
                step()
            except Exception as exc:
                log.warning("periodic pass: %s failed: %s: %s", step.__name__, type(exc).__name__, exc)
