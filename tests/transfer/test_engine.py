"""The engine on both ledgers: scheduling, retries, cancel, source deletion,
reclaim, purge, expiry, notifications."""

from __future__ import annotations

import io
import threading
from typing import IO, Any

import pytest

from ocs_transfer import plugins
from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.hookspecs import hookimpl
from ocs_transfer.storage import get_store
from ocs_transfer.storage.memory import MemoryStore
from ocs_transfer.transfer.engine import Transfer, Worker

from .conftest import FAULTS, Rig, assert_nothing_lost

MIN = 60.0


def test_schedule_snapshots_destination_and_layout(rig: Rig) -> None:
    store = rig.add_dest("arch", path="/archive/2026", layout="by_project_and_target")
    data = rig.add_source("raw/img_001.fits")
    [queued] = rig.engine.schedule(rig.source_url, ["raw/img_001.fits"], ["arch"],
                                   context={"project": "Galaxy Survey", "target": "M31/core"})
    assert queued.state == "pending" and queued.remote_path == "archive/2026/Galaxy Survey/M31_core/img_001.fits"
    # later edits and disabling do not change the queued transfer
    rig.destinations.edit("arch", path="/elsewhere", layout="flat", enabled=False)
    assert rig.engine.run_due() == 1
    done = rig.engine.get(queued.id)
    assert done.state == "completed" and done.attempts == 1 and done.size == len(data)
    assert done.link and done.md5 and done.sha256
    assert_nothing_lost(rig.engine, {"arch": {done.remote_path: data}}, {"arch": store})
    with pytest.raises(ConfigurationError, match="disabled"):
        rig.engine.schedule(rig.source_url, ["raw/img_001.fits"], ["arch"])
    with pytest.raises(ConfigurationError, match="no destination"):
        rig.engine.schedule(rig.source_url, ["raw/img_001.fits"], ["nope"])


def test_removed_destination_fails_clearly(rig: Rig) -> None:
    rig.add_dest("gone")
    rig.add_source("a.fits")
    [queued] = rig.engine.schedule(rig.source_url, "a.fits", ["gone"])
    rig.destinations.remove("gone")
    rig.engine.run_due()
    failed = rig.engine.get(queued.id)
    assert failed.state == "failed" and "was removed" in failed.last_error and failed.attempts == 1
    assert rig.finished[-1].id == queued.id


def test_backoff_schedule(rig: Rig) -> None:
    store = rig.add_dest("flaky")
    data = rig.add_source("b.fits")
    FAULTS[store.root] = ["always-transient"]
    [queued] = rig.engine.schedule(rig.source_url, "b.fits", ["flaky"])
    start = rig.clock.now
    attempts_at = []
    for _ in range(200):  # walk the clock one minute at a time
        if rig.engine.run_due():
            attempts_at.append(round((rig.clock.now - start) / MIN))
        if rig.engine.get(queued.id).final:
            break
        rig.clock.advance(MIN)
    failed = rig.engine.get(queued.id)
    # attempts at 0, +5, +5+10, +5+10+20 minutes; the fourth failure is final
    assert attempts_at == [0, 5, 15, 35]
    assert failed.state == "failed" and failed.attempts == 4 and "503" in failed.last_error
    assert [t.state for t in rig.finished] == ["failed"]
    assert not store.exists("b.fits")
    # a manual retry resets the count and runs once, at once
    FAULTS[store.root] = []
    again = rig.engine.retry(queued.id)
    assert again.state == "pending" and again.attempts == 0 and again.next_attempt_at == rig.clock.now
    assert rig.engine.run_due() == 1
    assert rig.engine.get(queued.id).attempts == 1
    assert_nothing_lost(rig.engine, {"flaky": {"b.fits": data}}, {"flaky": store})
    with pytest.raises(ConfigurationError, match="only failed or cancelled"):
        rig.engine.retry(queued.id)


def test_retry_delays_are_configurable(ledger: Any, keyring: Any, clock: Any, faulty_provider: None) -> None:
    rig = Rig(ledger, keyring, clock, retry_delays=(10,))
    store = rig.add_dest("f")
    rig.add_source("c.fits")
    FAULTS[store.root] = ["always-transient"]
    [queued] = rig.engine.schedule(rig.source_url, "c.fits", ["f"])
    rig.engine.run_due()
    assert rig.engine.get(queued.id).next_attempt_at == clock.now + 10
    clock.advance(10)
    rig.engine.run_due()
    assert rig.engine.get(queued.id).state == "failed"  # two attempts allowed


def test_never_retry_fails_at_once(rig: Rig) -> None:
    store = rig.add_dest("denied")
    rig.add_source("d.fits")
    FAULTS[store.root] = ["never"]
    [queued] = rig.engine.schedule(rig.source_url, "d.fits", ["denied"])
    rig.engine.run_due()
    failed = rig.engine.get(queued.id)
    assert failed.state == "failed" and failed.attempts == 1 and "403" in failed.last_error


def test_delete_after_all_destinations(rig: Rig) -> None:
    stores = {name: rig.add_dest(name, delete_source=(name == "b")) for name in ("a", "b", "c")}
    data = rig.add_source("e.fits")
    FAULTS[stores["c"].root] = ["never"]
    transfers = rig.engine.schedule(rig.source_url, "e.fits", ["a", "b", "c"])
    assert rig.engine.run_due() == 3
    by_dest = {t.destination_name: rig.engine.get(t.id) for t in transfers}
    assert by_dest["c"].state == "failed" and by_dest["a"].state == by_dest["b"].state == "completed"
    assert rig.source.exists("e.fits"), "source deleted although one destination failed"
    rig.engine.periodic()
    assert rig.source.exists("e.fits")
    rig.engine.retry(by_dest["c"].id)
    assert rig.source.exists("e.fits"), "source deleted before the retry ran"
    assert rig.engine.run_due() == 1
    assert not rig.source.exists("e.fits")
    file = rig.engine.source_file(transfers[0].file_id)
    assert file["delete_state"] == "deleted"
    assert rig.engine.delete_source_if_done(transfers[0].file_id) is False  # once only
    assert_nothing_lost(rig.engine, {n: {"e.fits": data} for n in stores}, stores)


def test_no_delete_when_no_destination_asked(rig: Rig) -> None:
    rig.add_dest("keep")
    rig.add_source("f.fits")
    rig.engine.schedule(rig.source_url, "f.fits", ["keep"])
    rig.engine.run_due()
    assert rig.source.exists("f.fits")


class GatedSource(MemoryStore):
    """A memory store whose readers stop after the first chunk until released."""

    reached: threading.Event
    release: threading.Event

    @classmethod
    def over(cls, url: str) -> GatedSource:
        """A gated view of the memory store at ``url``."""
        gated = get_store(url)
        gated.__class__ = cls
        assert isinstance(gated, GatedSource)
        gated.reached, gated.release = threading.Event(), threading.Event()
        return gated

    def open(self, path: str, version_id: str | None = None) -> IO[bytes]:
        inner = super().open(path, version_id)
        gate = self

        class Reader(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                data = inner.read(len(buffer))
                buffer[: len(data)] = data
                if data and not gate.reached.is_set():
                    gate.reached.set()
                    assert gate.release.wait(10)
                return len(data)

            def close(self) -> None:
                inner.close()
                super().close()

        return io.BufferedReader(Reader(), 64 * 1024)


@pytest.mark.parametrize("where", ["same process", "another worker"])
def test_cancel_no_truncation(rig: Rig, where: str) -> None:
    store = rig.add_dest("dst")
    rig.add_source("big.fits", 2 * 1024 * 1024)
    gated = GatedSource.over(rig.source_url)
    engine = rig.make_engine(source_resolver=lambda ref: gated)
    [queued] = engine.schedule(rig.source_url, "big.fits", ["dst"])
    runner = threading.Thread(target=engine.run_due)
    runner.start()
    assert gated.reached.wait(10)
    assert engine.get(queued.id).state == "in_progress"
    if where == "same process":
        engine.cancel(queued.id)
    else:  # another process flags it; the running worker's next heartbeat passes it on
        assert rig.make_engine().cancel(queued.id).state == "in_progress"
        engine.beat()
    gated.release.set()
    runner.join(10)
    cancelled = engine.get(queued.id)
    assert cancelled.state == "cancelled"
    assert list(store.list()) == []  # nothing at the path, no staged part left
    assert [t.state for t in rig.finished] == ["cancelled"]
    assert rig.source.exists("big.fits")
    assert_nothing_lost(engine, {"dst": {}}, {"dst": store})
    # a cancelled transfer can be retried
    engine.retry(queued.id)
    assert rig.engine.run_due() == 1 and rig.engine.get(queued.id).state == "completed"


def test_cancel_pending_and_requested_elsewhere(rig: Rig) -> None:
    rig.add_dest("d1")
    rig.add_source("g.fits")
    [queued] = rig.engine.schedule(rig.source_url, "g.fits", ["d1"])
    assert rig.engine.cancel(queued.id).state == "cancelled"
    with pytest.raises(ConfigurationError, match="already cancelled"):
        rig.engine.cancel(queued.id)
    assert rig.engine.run_due() == 0


def test_stale_heartbeat_is_reclaimed_and_fresh_one_kept(rig: Rig) -> None:
    store = rig.add_dest("d2")
    data = rig.add_source("h.fits")
    [queued] = rig.engine.schedule(rig.source_url, "h.fits", ["d2"])
    other = rig.make_engine(worker_id="elsewhere:1:x")  # a worker on another host
    [(tid, _lease)] = other.claim()
    assert rig.engine.reclaim() == 0  # fresh heartbeat: never stolen
    rig.clock.advance(rig.settings.stale_after - 1)
    assert rig.engine.reclaim() == 0
    rig.clock.advance(2)
    assert rig.engine.reclaim() == 1
    requeued = rig.engine.get(tid)
    assert requeued.state == "pending" and "stopped responding" in requeued.last_error
    assert rig.engine.run_due() == 1
    # the dead worker's late write cannot overwrite the new owner's record
    late = other.execute(tid, _lease)
    assert late.state == "completed" and late.attempts == 2
    assert_nothing_lost(rig.engine, {"d2": {"h.fits": data}}, {"d2": store})
    assert queued.id == tid


def test_dead_local_worker_requeued_at_startup(rig: Rig) -> None:
    rig.add_dest("d3")
    rig.add_source("i.fits")
    rig.engine.schedule(rig.source_url, "i.fits", ["d3"])
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ghost = rig.make_engine(worker_id=f"{socket.gethostname()}:{dead.stdout.strip()}:gone")
    [(tid, _)] = ghost.claim()
    assert Worker(rig.engine, threads=2, poll_interval=0.01).run(until_idle=True) == 1
    assert rig.engine.get(tid).state == "completed"


def test_purge_and_expire(rig: Rig) -> None:
    store = rig.add_dest("short", keep_days=3)
    rig.add_dest("long")
    rig.add_source("j.fits")
    transfers = rig.engine.schedule(rig.source_url, "j.fits", ["short", "long"])
    rig.engine.run_due()
    rig.clock.advance(3 * 86400 - 1)
    assert rig.engine.expire() == 0 and store.exists("j.fits")
    rig.clock.advance(2)
    assert rig.engine.expire() == 1 and not store.exists("j.fits")
    assert rig.engine.expire() == 0
    assert rig.engine.get(transfers[0].id).expired_at is not None
    rig.clock.advance(86 * 86400)
    assert rig.engine.purge() == 0
    rig.clock.advance(2 * 86400)
    assert rig.engine.purge() == 2
    assert rig.engine.transfers() == []


def test_purge_keeps_failed_unless_asked(rig: Rig) -> None:
    store = rig.add_dest("bad")
    rig.add_source("k.fits")
    FAULTS[store.root] = ["never"]
    rig.engine.schedule(rig.source_url, "k.fits", ["bad"])
    rig.engine.run_due()
    rig.clock.advance(365 * 86400)
    assert rig.engine.purge() == 0
    assert rig.engine.purge(failed=True) == 1


def test_outcome_hook_and_callback(rig: Rig) -> None:
    seen: list[Transfer] = []

    class Notifier:
        @hookimpl
        def ocs_transfer_transfer_finished(self, transfer: Transfer) -> None:
            seen.append(transfer)

    rig.add_dest("n")
    rig.add_source("l.fits")
    with plugins.temporary_plugin(Notifier(), "notifier"):
        [queued] = rig.engine.schedule(rig.source_url, "l.fits", ["n"])
        rig.engine.run_due()
    assert [(t.id, t.state) for t in seen] == [(queued.id, "completed")]
    assert seen[0].link and rig.finished == seen


def test_worker_runs_everything_with_a_bounded_pool(rig: Rig) -> None:
    stores = {n: rig.add_dest(n) for n in ("w1", "w2")}
    files = {f"obs/{i}.fits": rig.add_source(f"obs/{i}.fits", 10_000 + i) for i in range(12)}
    rig.engine.schedule(rig.source_url, sorted(files), ["w1", "w2"])
    assert Worker(rig.engine, threads=3, poll_interval=0.01).run(until_idle=True) == 24
    expected = {n: {p.split("/")[1]: d for p, d in files.items()} for n in stores}
    assert_nothing_lost(rig.engine, expected, stores)
    assert rig.engine.counts() == {"w1": {"completed": 12}, "w2": {"completed": 12}}


def test_rotated_refresh_token_is_saved_encrypted(rig: Rig) -> None:
    store = rig.add_dest("oauth", credentials={"token": "t0-token", "refresh_token": "r0-refresh"})
    data = rig.add_source("m.fits")
    FAULTS[store.root] = ["rotate"]
    rig.engine.schedule(rig.source_url, "m.fits", ["oauth"])
    assert rig.engine.run_due() == 1
    [new] = FAULTS["rotated"]
    creds = rig.destinations.credentials("oauth")
    assert creds["refresh_token"].reveal() == new and creds["token"].reveal() == "t0-token"
    assert_nothing_lost(rig.engine, {"oauth": {"m.fits": data}}, {"oauth": store})


def test_source_kept_while_a_separate_schedule_of_it_is_unfinished(rig: Rig) -> None:
    stores = {"del": rig.add_dest("del", delete_source=True), "keep": rig.add_dest("keep")}
    data = rig.add_source("n.fits")
    FAULTS[stores["keep"].root] = ["never"]
    [first] = rig.engine.schedule(rig.source_url, "n.fits", ["del"])
    [second] = rig.engine.schedule(rig.source_url, "n.fits", ["keep"])
    rig.engine.run_due()
    assert rig.engine.get(first.id).state == "completed" and rig.engine.get(second.id).state == "failed"
    assert rig.source.exists("n.fits"), "deleted while another transfer of the same source had failed"
    rig.engine.retry(second.id)
    rig.engine.run_due()
    assert rig.source.exists("n.fits")  # the second schedule did not ask; the periodic pass finishes the first
    rig.engine.periodic()
    assert not rig.source.exists("n.fits")
    assert_nothing_lost(rig.engine, {n: {"n.fits": data} for n in stores}, stores)
