"""Completion and source deletion, case by case (issue 20: the mutation run over
`core.py`'s completion and deletion logic found these unprobed). A source goes
only when every transfer record of it completed with its bytes; a rollback
after a failed delete touches only its own file and only while it is
"deleting"; a deletion that another worker won is not done twice. Each test
ends with the nothing-lost check."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, update

from ocs_transfer.exceptions import TransientStorageError
from ocs_transfer.settings import Settings
from ocs_transfer.storage import get_store
from ocs_transfer.storage.memory import MemoryStore
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.engine import Engine
from ocs_transfer.transfer.models import TransferRow

from .conftest import FAULTS, FakeClock, Rig, assert_nothing_lost, assert_sources_safe, ledger_for, unique_root


class FlakySource(MemoryStore):
    """A memory source whose deletes can fail (``failures[path]``: how many
    more times) and can run something first (``before_delete[path]``, once).
    ``deleted`` lists the paths really deleted, in order."""

    failures: dict[str, int]
    before_delete: dict[str, Callable[[], None]]
    deleted: list[str]

    @classmethod
    def over(cls, url: str) -> FlakySource:
        source = get_store(url)
        source.__class__ = cls
        assert isinstance(source, FlakySource)
        source.failures, source.before_delete, source.deleted = {}, {}, []
        return source

    def delete_file(self, path: str, version_id: str | None = None) -> None:
        hook = self.before_delete.pop(path, None)
        if hook is not None:
            hook()
        if self.failures.get(path, 0) > 0:
            self.failures[path] -= 1
            raise TransientStorageError(f"delete of {path!r} failed: 503 Service Unavailable")
        super().delete_file(path, version_id)
        self.deleted.append(path)


def flaky_engine(rig: Rig) -> tuple[Engine, FlakySource]:
    source = FlakySource.over(rig.source_url)
    return rig.make_engine(source_resolver=lambda ref: source), source


# -- every record of the file, with the file's bytes ---------------------------------------


def test_the_same_path_in_another_source_store_does_not_hold_the_source(rig: Rig) -> None:
    """Only transfers of the same store *and* path count as "the same source":
    an unfinished transfer of another store's img.fits does not keep this one."""
    stores = {"del": rig.add_dest("del", delete_source=True), "keep": rig.add_dest("keep")}
    data = rig.add_source("img.fits")
    other_url = "memory://a-other-" + unique_root("src")[1:]  # sorts before rig.source_url
    assert other_url < rig.source_url
    other = get_store(other_url)
    other_data = bytes(reversed(data))
    other.put(io.BytesIO(other_data), "img.fits")
    FAULTS[stores["keep"].root] = ["never"]
    [kept] = rig.engine.schedule(other_url, "img.fits", ["keep"])
    [moved] = rig.engine.schedule(rig.source_url, "img.fits", ["del"])
    rig.engine.run_due()
    assert rig.engine.get(kept.id).state == "failed" and rig.engine.get(moved.id).state == "completed"
    assert not rig.source.exists("img.fits"), "another store's unfinished img.fits held this source"
    assert rig.engine.source_file(moved.file_id)["delete_state"] == "deleted"
    assert other.exists("img.fits")
    assert_sources_safe(other, {"img.fits": other_data}, {})
    assert_nothing_lost(rig.engine, {"del": {"img.fits": data}, "keep": {}}, stores)


@pytest.mark.parametrize("field", ["sha256", "size"])
def test_a_completed_record_of_other_bytes_keeps_the_source(rig: Rig, field: str) -> None:
    """A completed record whose sha256 or size is not the file's (a ledger
    edited or restored by hand) does not count as a copy."""
    stores = {"a": rig.add_dest("a", delete_source=True), "b": rig.add_dest("b")}
    data = rig.add_source("o.fits", 40_000)
    transfers = rig.engine.schedule(rig.source_url, "o.fits", ["a", "b"])
    assert rig.engine.run_due(limit=1) == 1
    first = rig.engine.get(transfers[0].id)
    assert first.state == "completed" and first.sha256
    other = {"sha256": "f" * 64} if field == "sha256" else {"size": len(data) + 1}  # "f"*64 sorts after any sha
    with rig.ledger.session() as session:
        session.execute(update(TransferRow).where(TransferRow.id == first.id).values(**other))
    assert rig.engine.run_due() == 1
    assert rig.engine.get(transfers[1].id).state == "completed"
    rig.engine.periodic()
    assert rig.source.exists("o.fits"), f"deleted although one record holds another {field}"
    assert rig.engine.source_file(first.file_id)["delete_state"] == "pending"
    assert_nothing_lost(rig.engine, {n: {"o.fits": data} for n in stores}, stores)


def test_a_record_more_than_were_scheduled_keeps_the_source(rig: Rig) -> None:
    """A file has as many records as were scheduled for it; one more (another
    file's completed transfer attached to it by a hand edit) is not ignored."""
    stores = {"a": rig.add_dest("a", delete_source=True), "b": rig.add_dest("b")}
    data = rig.add_source("p.fits", 30_000)
    stray_data = rig.add_source("stray.fits", 20_000)
    [stray] = rig.engine.schedule(rig.source_url, "stray.fits", ["b"])
    [mine] = rig.engine.schedule(rig.source_url, "p.fits", ["a"])
    assert rig.engine.run_due(limit=1) == 1 and rig.engine.get(stray.id).state == "completed"
    with rig.ledger.session() as session:
        session.execute(update(TransferRow).where(TransferRow.id == stray.id).values(file_id=mine.file_id))
    assert rig.engine.run_due() == 1 and rig.engine.get(mine.id).state == "completed"
    rig.engine.periodic()
    assert rig.source.exists("p.fits"), "deleted although the file has a record more than were scheduled"
    assert rig.engine.source_file(mine.file_id)["delete_state"] == "pending"
    assert_nothing_lost(rig.engine, {"a": {"p.fits": data}, "b": {"stray.fits": stray_data}}, stores)


# -- one file's deletion touches only that file --------------------------------------------


def test_deleting_one_file_leaves_another_of_the_same_bytes_alone(rig: Rig) -> None:
    """x.fits and y.fits hold the same bytes; y's deletion waits for a failed
    transfer. Deleting x must not claim, mark or roll back y (whose record
    has a higher id and the same sha256)."""
    stores = {"a": rig.add_dest("a", delete_source=True), "b": rig.add_dest("b")}
    data = rig.add_source("x.fits", 50_000)
    rig.source.put(io.BytesIO(data), "y.fits")
    FAULTS[stores["a"].root] = ["transient"]  # x's first attempt
    FAULTS[stores["b"].root] = ["never"]  # y's copy to b
    [x] = rig.engine.schedule(rig.source_url, "x.fits", ["a"])
    y_to_a, y_to_b = rig.engine.schedule(rig.source_url, "y.fits", ["a", "b"])
    assert y_to_a.file_id > x.file_id
    for _ in range(3):
        assert rig.engine.run_due(limit=1) == 1
    assert [rig.engine.get(t.id).state for t in (x, y_to_a, y_to_b)] == ["pending", "completed", "failed"]
    y_before = rig.engine.source_file(y_to_a.file_id)
    assert y_before["delete_state"] == "pending"
    rig.clock.advance(rig.settings.retry_delays[0])
    assert rig.engine.run_due() == 1
    assert rig.engine.get(x.id).state == "completed"
    assert not rig.source.exists("x.fits") and rig.engine.source_file(x.file_id)["delete_state"] == "deleted"
    assert rig.engine.source_file(y_to_a.file_id) == y_before, "deleting x changed y's record"
    assert rig.source.exists("y.fits")
    rig.engine.retry(y_to_b.id)
    assert rig.engine.run_due() == 1
    assert not rig.source.exists("y.fits")
    assert_nothing_lost(rig.engine, {"a": {"x.fits": data, "y.fits": data}, "b": {"y.fits": data}}, stores)


def test_a_failed_delete_rolls_back_only_its_own_file(rig: Rig) -> None:
    """While y.fits is being deleted, x.fits's delete fails: x goes back to
    "pending"; y (a higher id, also "deleting") is not touched."""
    stores = {"a": rig.add_dest("a", delete_source=True)}
    engine, source = flaky_engine(rig)
    data = {p: rig.add_source(p, 10_000 + i) for i, p in enumerate(["x.fits", "y.fits"])}
    source.failures["x.fits"] = 2  # when it completes, and again while y is deleted
    [x] = engine.schedule(rig.source_url, "x.fits", ["a"])
    [y] = engine.schedule(rig.source_url, "y.fits", ["a"])
    assert engine.run_due(limit=1) == 1
    assert source.exists("x.fits") and engine.source_file(x.file_id)["delete_state"] == "pending"
    seen: dict[str, Any] = {}

    def meanwhile() -> None:  # y is "deleting" now; x's deletion is tried and fails
        seen["x deleted"] = engine.delete_source_if_done(x.file_id)
        seen["x"] = engine.source_file(x.file_id)
        seen["y"] = engine.source_file(y.file_id)

    source.before_delete["y.fits"] = meanwhile
    assert engine.run_due() == 1
    assert seen["x deleted"] is False
    assert seen["x"]["delete_state"] == "pending" and seen["x"]["deleted_at"] is None
    assert seen["y"]["delete_state"] == "deleting", "x's rollback touched y"
    assert source.deleted == ["y.fits"] and engine.source_file(y.file_id)["delete_state"] == "deleted"
    assert engine.finish_source_deletions() == 1
    assert source.deleted == ["y.fits", "x.fits"]
    assert_nothing_lost(engine, {"a": data}, stores)


def test_a_rollback_after_another_worker_finished_the_deletion_keeps_it_deleted(rig: Rig) -> None:
    """A worker's delete hangs past ``stale_after``; another worker's periodic
    pass finishes it; then the first delete fails. Its rollback must not make
    the deleted source "pending" again (it only undoes "deleting")."""
    store = rig.add_dest("a", delete_source=True)
    engine, source = flaky_engine(rig)
    data = rig.add_source("z.fits")
    other = rig.make_engine(source_resolver=lambda ref: source, worker_id="elsewhere:1:x")

    def hang_then_fail() -> None:
        rig.clock.advance(rig.settings.stale_after + 1)
        assert other.finish_source_deletions() == 1  # the other worker deletes it
        source.failures["z.fits"] = 1  # and this worker's own delete then fails

    source.before_delete["z.fits"] = hang_then_fail
    [z] = engine.schedule(rig.source_url, "z.fits", ["a"])
    assert engine.run_due() == 1 and engine.get(z.id).state == "completed"
    assert source.deleted == ["z.fits"]
    assert engine.source_file(z.file_id)["delete_state"] == "deleted", "the rollback undid a finished deletion"
    assert engine.finish_source_deletions() == 0
    assert source.deleted == ["z.fits"]
    assert_nothing_lost(engine, {"a": {"z.fits": data}}, {"a": store})


@pytest.fixture
def pg_rig(tmp_path: Path, keyring: KeyRing, clock: FakeClock, faulty_provider: None) -> Iterator[Rig]:
    with ledger_for("postgresql", tmp_path) as ledger:
        yield Rig(ledger, keyring, clock)


def test_of_two_workers_deciding_at_once_only_one_deletes(pg_rig: Rig) -> None:
    """Two workers read the file as deletable at the same moment (PostgreSQL,
    where reads take no lock); the other one deletes it before this one's
    conditional update runs. This one must then find it no longer "pending"
    and not claim a deletion (SQLite serialises the two: BEGIN IMMEDIATE)."""
    rig = pg_rig
    store = rig.add_dest("a", delete_source=True)
    engine, source = flaky_engine(rig)
    other = rig.make_engine(source_resolver=lambda ref: source, worker_id="elsewhere:1:x")
    data = rig.add_source("w.fits")
    source.failures["w.fits"] = 1  # the first try, at completion, fails: both workers will try again
    [w] = engine.schedule(rig.source_url, "w.fits", ["a"])
    assert engine.run_due() == 1 and engine.source_file(w.file_id)["delete_state"] == "pending"
    results: dict[str, bool] = {}

    def other_worker_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        claiming = statement.lstrip().startswith("UPDATE ocs_source_files") and "delete_source" in statement
        if claiming and "other" not in results:
            results["other"] = False
            results["other"] = other.delete_source_if_done(w.file_id)  # on another connection

    event.listen(rig.ledger.engine, "before_cursor_execute", other_worker_first)
    try:
        results["this"] = engine.delete_source_if_done(w.file_id)
    finally:
        event.remove(rig.ledger.engine, "before_cursor_execute", other_worker_first)
    assert results == {"other": True, "this": False}
    assert source.deleted == ["w.fits"] and engine.source_file(w.file_id)["delete_state"] == "deleted"
    assert_nothing_lost(engine, {"a": {"w.fits": data}}, {"a": store})


# -- recording outcomes --------------------------------------------------------------------


def test_a_shorter_retry_schedule_fails_a_transfer_already_past_it(rig: Rig) -> None:
    """Three attempts were made under a four-attempt schedule; the operator
    then shortens it to two. The next failure is final, not an error."""
    store = rig.add_dest("f")
    data = rig.add_source("r.fits")
    FAULTS[store.root] = ["always-transient"]
    [queued] = rig.engine.schedule(rig.source_url, "r.fits", ["f"])
    for delay in (0, *rig.settings.retry_delays[:2]):
        rig.clock.advance(delay)
        assert rig.engine.run_due() == 1
    assert rig.engine.get(queued.id).attempts == 3 and rig.engine.max_attempts == 4
    shorter = Settings(retry_delays=(300,), chunk_size=rig.settings.chunk_size)
    engine = Engine(rig.ledger, rig.destinations, settings=shorter, clock=rig.clock)
    assert engine.max_attempts == 2
    rig.clock.advance(rig.settings.retry_delays[2])
    assert engine.run_due() == 1
    failed = engine.get(queued.id)
    assert failed.state == "failed" and failed.attempts == 4 and "503" in failed.last_error
    FAULTS[store.root] = []
    engine.retry(queued.id)
    assert engine.run_due() == 1
    assert_nothing_lost(engine, {"f": {"r.fits": data}}, {"f": store})


def test_a_retried_failure_logs_info_and_a_final_one_a_warning(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    store = rig.add_dest("f")
    rig.add_source("l.fits")
    FAULTS[store.root] = ["transient", "never"]
    [queued] = rig.engine.schedule(rig.source_url, "l.fits", ["f"])
    with caplog.at_level(logging.INFO, logger="ocs_transfer.transfer.engine"):
        rig.engine.run_due()
        rig.clock.advance(rig.settings.retry_delays[0])
        rig.engine.run_due()
    outcomes = [(r.levelno, r.getMessage().rsplit(" -> ", 1)[-1]) for r in caplog.records
                if r.getMessage().startswith(f"transfer {queued.id} attempt")]
    assert outcomes == [(logging.INFO, "pending"), (logging.WARNING, "failed")]
    assert_nothing_lost(rig.engine, {"f": {}}, {"f": store})


# -- the lifecycle passes: reclaim and finishing deletions ---------------------------------


class WorkerKilled(BaseException):
    """Stands for the worker dying at that point (not an ``Exception``: nothing
    in the engine catches it, so the ledger stays as a kill leaves it)."""


def test_a_deletion_a_dead_worker_left_is_finished_once_it_is_stale(rig: Rig) -> None:
    """The worker dies after marking the file "deleting" and before deleting:
    another worker's pass leaves it alone while it may still be running,
    finishes it once ``stale_after`` has passed, and never again after."""
    store = rig.add_dest("a", delete_source=True)
    engine, source = flaky_engine(rig)
    other = rig.make_engine(source_resolver=lambda ref: source, worker_id="elsewhere:1:x")
    data = rig.add_source("k.fits")

    def die() -> None:
        raise WorkerKilled

    source.before_delete["k.fits"] = die
    [k] = engine.schedule(rig.source_url, "k.fits", ["a"])
    with pytest.raises(WorkerKilled):
        engine.run_due()
    assert engine.source_file(k.file_id)["delete_state"] == "deleting" and source.exists("k.fits")
    rig.clock.advance(rig.settings.stale_after - 1)
    assert other.finish_source_deletions() == 0, "took over a deletion that may still be running"
    assert source.exists("k.fits") and source.deleted == []
    rig.clock.advance(2)
    assert other.finish_source_deletions() == 1
    assert source.deleted == ["k.fits"] and other.source_file(k.file_id)["delete_state"] == "deleted"
    rig.clock.advance(rig.settings.stale_after + 1)
    assert other.finish_source_deletions() == 0, "a finished deletion was done again"
    assert source.deleted == ["k.fits"]
    assert_nothing_lost(other, {"a": {"k.fits": data}}, {"a": store})


def test_reclaim_leaves_waiting_and_live_transfers_and_takes_every_dead_one(rig: Rig) -> None:
    """Reclaim touches only running transfers whose worker is gone: one
    waiting out its retry delay keeps its time; one a live worker holds is
    skipped, and the dead worker's transfer after it is still taken."""
    import socket
    import subprocess
    import sys

    stores = {n: rig.add_dest(n) for n in ("wait", "live", "dead")}
    files = {n: rig.add_source(f"{n}.fits") for n in stores}
    FAULTS[stores["wait"].root] = ["transient"]
    waiting, live, dead = (rig.engine.schedule(rig.source_url, f"{n}.fits", [n])[0] for n in stores)
    assert rig.engine.run_due(limit=1) == 1  # "wait" fails once and waits for its retry
    before = rig.engine.get(waiting.id)
    assert before.state == "pending" and before.next_attempt_at > rig.clock.now
    [(live_id, _)] = rig.make_engine(worker_id="elsewhere:1:x").claim()  # a live worker on another host
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    [(dead_id, _)] = rig.make_engine(worker_id=f"{socket.gethostname()}:{gone.stdout.strip()}:gone").claim()
    assert (live_id, dead_id) == (live.id, dead.id)
    assert rig.engine.reclaim() == 1
    assert rig.engine.get(waiting.id) == before, "reclaim touched a transfer waiting for its retry"
    assert rig.engine.get(live_id).state == "in_progress"
    assert rig.engine.get(dead_id).state == "pending" and "stopped responding" in rig.engine.get(dead_id).last_error
    rig.clock.advance(rig.settings.stale_after + rig.settings.retry_delays[0])
    assert rig.engine.reclaim() == 1  # now the other host's worker is stale too
    assert rig.engine.run_due() == 3
    assert_nothing_lost(rig.engine, {n: {f"{n}.fits": files[n]} for n in stores}, stores)
