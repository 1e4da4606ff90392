"""The only copy is never lost (issue 11, points 1-4; RELIABILITY.md promises 4,
9 and 10): purging records never enables a source deletion, a transfer counts
only for its own source's bytes, a source that changes is never deleted on the
strength of a copy of other bytes, and partial uploads a killed attempt left are
cleaned. Each test ends with the nothing-lost check."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from ocs_transfer.exceptions import ConfigurationError, TransientStorageError
from ocs_transfer.storage import get_store
from ocs_transfer.storage.fsspec_store import TEMP_MARKER
from ocs_transfer.storage.memory import MemoryStore
from ocs_transfer.transfer.engine import RemotePathTakenError, SourceChangedError
from ocs_transfer.transfer.models import TransferRow

from .conftest import FAULTS, Rig, assert_nothing_lost, assert_sources_safe, data_for, partials, unique_root
from .test_cli import Cli
from .test_engine import GatedSource

# -- point 1: purging records never enables a deletion -----------------------------------


@pytest.mark.parametrize("how", ["failed", "cancelled"])
def test_purge_of_unfinished_records_never_deletes_the_source(rig: Rig, how: str) -> None:
    store = rig.add_dest("backup", delete_source=True)
    data = rig.add_source("night1/img.fits")
    if how == "failed":
        FAULTS[store.root] = ["never"]
    [queued] = rig.engine.schedule(rig.source_url, "night1/img.fits", ["backup"])
    if how == "failed":
        rig.engine.run_due()
    else:
        rig.engine.cancel(queued.id)
    assert rig.engine.get(queued.id).state == how
    rig.clock.advance(1)
    assert rig.engine.purge(older_than_days=0, failed=True) == 1
    rig.engine.periodic()  # the worker's start-up and periodic pass
    rig.engine.run_due()
    assert rig.source.exists("night1/img.fits"), "source deleted although no destination has it"
    assert_nothing_lost(rig.engine, {"backup": {}}, {"backup": store})
    assert_sources_safe(rig.source, {"night1/img.fits": data}, {})


def test_purging_one_failed_record_keeps_the_source_of_a_file_with_another_completed(rig: Rig) -> None:
    stores = {"a": rig.add_dest("a", delete_source=True), "b": rig.add_dest("b")}
    data = rig.add_source("e.fits")
    FAULTS[stores["b"].root] = ["never"]
    rig.engine.schedule(rig.source_url, "e.fits", ["b", "a"])
    assert rig.engine.run_due(limit=1) == 1  # b fails first
    rig.clock.advance(10 * 86400)
    assert rig.engine.run_due() == 1  # a completes ten days later
    rig.engine.purge(older_than_days=5, failed=True)  # only a's completed record is left: "all completed"
    rig.engine.periodic()
    assert rig.source.exists("e.fits"), "purging b's record made a's completion look like all of them"
    assert rig.engine.source_file(rig.engine.transfers()[0].file_id)["delete_state"] == "kept"
    assert_nothing_lost(rig.engine, {"a": {"e.fits": data}, "b": {}}, stores)


@pytest.fixture
def local_plugin(faulty_provider: None) -> Any:
    import ocs_transfer_local.plugin

    from ocs_transfer import plugins

    with plugins.temporary_plugin(ocs_transfer_local.plugin, "local"):
        yield


def test_purge_then_worker_via_the_cli_keeps_the_source(tmp_path: Path, local_plugin: None) -> None:
    """The issue's reproduction, as users type it: a destination that cannot
    take the file, `worker`, `purge --failed --days 0`, `worker` again."""
    cli = Cli(tmp_path)
    root = unique_root("cli-purge")
    FAULTS[root] = ["never"]
    cli("dest", "add", "backup", "--provider", "faulty-memory", "--option", f"root={root}", "--delete-source")
    src = tmp_path / "night1" / "img.fits"
    src.parent.mkdir()
    src.write_bytes(data_for("img", 70_000))
    cli("schedule", str(src), "--to", "backup")
    cli("worker", "--until-idle", "--poll", "0.01")
    assert "purged 1 record" in cli("purge", "--failed", "--days", "0").output
    cli("worker", "--until-idle", "--poll", "0.01")
    assert src.read_bytes() == data_for("img", 70_000)
    assert cli("purge", "--days", "-1", ok=False).exit_code != 0


def test_deletion_needs_every_scheduled_record(rig: Rig) -> None:
    """Records deleted by any means (not only purge) never make a deletion
    possible: the count scheduled is kept with the file."""
    stores = {"a": rig.add_dest("a", delete_source=True), "b": rig.add_dest("b")}
    data = rig.add_source("f.fits")
    transfers = rig.engine.schedule(rig.source_url, "f.fits", ["a", "b"])
    from sqlalchemy import delete

    with rig.ledger.session() as session:
        session.execute(delete(TransferRow).where(TransferRow.id == transfers[1].id))
    rig.engine.run_due()
    rig.engine.periodic()
    assert rig.source.exists("f.fits")
    assert_nothing_lost(rig.engine, {"a": {"f.fits": data}, "b": {}}, stores)


# -- point 2: one remote path, one source --------------------------------------------------


@pytest.mark.parametrize("layout", ["flat", "by_target"])
def test_two_sources_for_one_remote_path_are_refused_at_scheduling(rig: Rig, layout: str) -> None:
    store = rig.add_dest("backup", delete_source=True, layout=layout)
    files = {p: rig.add_source(p, 10_000 + i) for i, p in enumerate(["night1/img.fits", "night2/img.fits"])}
    with pytest.raises(RemotePathTakenError, match=r"night1/img.fits and night2/img.fits would both go to"):
        rig.engine.schedule(rig.source_url, sorted(files), ["backup"], context={"target": "M31"})
    assert rig.engine.transfers() == []  # nothing scheduled
    # across separate schedule calls
    [first] = rig.engine.schedule(rig.source_url, "night1/img.fits", ["backup"], context={"target": "M31"})
    with pytest.raises(RemotePathTakenError, match=f"already the target of transfer {first.id}"):
        rig.engine.schedule(rig.source_url, "night2/img.fits", ["backup"], context={"target": "M31"})
    # the same source again is not a conflict (it is adopted at run time)
    again = rig.engine.schedule(rig.source_url, "night1/img.fits", ["backup"], context={"target": "M31"})
    assert run_worker(rig) == 2
    remote = first.remote_path
    assert [rig.engine.get(t.id).state for t in [first, *again]] == ["completed", "completed"], [
        rig.engine.get(t.id).last_error for t in [first, *again]]
    assert not rig.source.exists("night1/img.fits") and rig.source.exists("night2/img.fits")
    assert_nothing_lost(rig.engine, {"backup": {remote: files["night1/img.fits"]}}, {"backup": store})
    assert_sources_safe(rig.source, files, {"night1/img.fits": [(store, remote)]})


def run_worker(rig: Rig) -> int:
    from ocs_transfer.transfer.engine import Worker

    return Worker(rig.engine, threads=2, poll_interval=0.01).run(until_idle=True)


def _two_nights_for_one_backup(tmp_path: Path) -> tuple[Cli, list[Path]]:
    """A CLI with a deleting destination ``backup`` (flat layout) and two
    different files of one name in folders night1 and night2."""
    cli = Cli(tmp_path)
    cli("dest", "add", "backup", "--provider", "faulty-memory", "--option", f"root={unique_root('cli')}",
        "--delete-source")  # fmt: skip
    paths = []
    for night in ("night1", "night2"):
        path = tmp_path / night / "img.fits"
        path.parent.mkdir()
        path.write_bytes(data_for(night, 5_000))
        paths.append(path)
    return cli, paths


def test_schedule_two_same_named_files_via_the_cli_is_refused(tmp_path: Path, local_plugin: None) -> None:
    cli, paths = _two_nights_for_one_backup(tmp_path)
    first = cli("schedule", str(paths[0]), "--to", "backup")
    refused = cli("schedule", str(paths[1]), "--to", "backup", ok=False)
    assert refused.exit_code != 0 and "already the target of transfer" in cli.outputs[-1]
    assert first.output.count("->") == 1
    cli("worker", "--until-idle", "--poll", "0.01")
    assert not paths[0].exists() and paths[1].read_bytes() == data_for("night2", 5_000)


def test_schedule_of_two_files_for_one_remote_path_queues_neither(tmp_path: Path, local_plugin: None) -> None:
    """One `schedule` of files that want one remote path is all or nothing: both are
    refused, the message names both, and a third file given with them is not queued either."""
    cli, paths = _two_nights_for_one_backup(tmp_path)
    other = tmp_path / "night1" / "other.fits"
    other.write_bytes(data_for("other", 5_000))
    refused = cli("schedule", str(other), str(paths[0]), str(paths[1]), "--to", "backup", ok=False)
    said = cli.outputs[-1]
    assert refused.exit_code != 0 and "would both go to 'img.fits'" in said and "nothing was scheduled" in said
    assert str(paths[0].parent) in said and str(paths[1].parent) in said
    assert json.loads(cli("status", "--json").output)["transfers"] == []
    cli("worker", "--until-idle", "--poll", "0.01")
    for path, night in ((paths[0], "night1"), (paths[1], "night2")):
        assert path.read_bytes() == data_for(night, 5_000)  # both kept
    assert other.read_bytes() == data_for("other", 5_000)


def test_an_other_object_at_the_path_is_never_taken_or_overwritten(rig: Rig) -> None:
    """Two destinations sharing one root (the ledger cannot see it): the second
    transfer finds night1's bytes at its path, fails for good, and keeps night2."""
    root = unique_root("shared")
    for name in ("a", "b"):
        rig.destinations.add(name, "faulty-memory", options={"root": root}, delete_source=True)
    store = get_store("memory", root=root)
    files = {p: rig.add_source(p, 20_000 + i) for i, p in enumerate(["night1/img.fits", "night2/img.fits"])}
    [t1] = rig.engine.schedule(rig.source_url, "night1/img.fits", ["a"])
    [t2] = rig.engine.schedule(rig.source_url, "night2/img.fits", ["b"])
    assert rig.engine.run_due() == 2
    failed = rig.engine.get(t2.id)
    assert rig.engine.get(t1.id).state == "completed"
    assert failed.state == "failed" and failed.attempts == 1 and "already holds another file" in failed.last_error
    assert RemotePathTakenError.__name__ in failed.last_error
    assert rig.source.exists("night2/img.fits") and not rig.source.exists("night1/img.fits")
    assert_nothing_lost(rig.engine, {"shared": {"img.fits": files["night1/img.fits"]}}, {"shared": store})
    assert_sources_safe(rig.source, files, {"night1/img.fits": [(store, "img.fits")]})


def test_same_size_other_bytes_at_the_path_is_not_adopted(rig: Rig) -> None:
    store = rig.add_dest("backup", delete_source=True)
    data = rig.add_source("img.fits", 30_000)
    other = bytes(reversed(data))
    store.put(io.BytesIO(other), "img.fits")
    [queued] = rig.engine.schedule(rig.source_url, "img.fits", ["backup"])
    rig.engine.run_due()
    failed = rig.engine.get(queued.id)
    assert failed.state == "failed" and "sha256 differs" in failed.last_error
    assert rig.source.exists("img.fits")
    assert_nothing_lost(rig.engine, {"backup": {"img.fits": other}}, {"backup": store})


def test_lost_ack_object_with_the_same_bytes_is_adopted(rig: Rig) -> None:
    """An earlier attempt's upload committed but its answer was lost: the
    retry finds exactly the source's bytes there and adopts them (one object)."""
    store = rig.add_dest("backup", delete_source=True)
    data = rig.add_source("img.fits", 30_000)
    store.put(io.BytesIO(data), "img.fits")
    [queued] = rig.engine.schedule(rig.source_url, "img.fits", ["backup"])
    rig.engine.run_due()
    done = rig.engine.get(queued.id)
    assert done.state == "completed" and done.attempts == 1 and done.size == len(data)
    import hashlib

    assert done.sha256 == hashlib.sha256(data).hexdigest()
    assert not rig.source.exists("img.fits")
    assert_nothing_lost(rig.engine, {"backup": {"img.fits": data}}, {"backup": store})


# -- point 3: a source that changes ---------------------------------------------------------


def test_source_replaced_after_scheduling_fails_the_attempt_and_is_kept(rig: Rig) -> None:
    store = rig.add_dest("backup", delete_source=True)
    rig.add_source("img.fits", 40_000)
    [queued] = rig.engine.schedule(rig.source_url, "img.fits", ["backup"])
    new = data_for("the new version", 40_000)  # same size, other bytes, a later time
    rig.source.put(io.BytesIO(new), "img.fits")
    rig.engine.run_due()
    again = rig.engine.get(queued.id)
    assert again.state == "pending" and "changed since it was scheduled" in again.last_error
    assert SourceChangedError.__name__ in again.last_error
    assert rig.source.exists("img.fits")
    for _ in range(5):
        rig.clock.advance(3600)
        rig.engine.run_due()
    assert rig.engine.get(queued.id).state == "failed"
    assert_nothing_lost(rig.engine, {"backup": {}}, {"backup": store})
    assert_sources_safe(rig.source, {"img.fits": new}, {})


@pytest.mark.parametrize("change", ["replaced", "truncated"])
def test_source_changed_while_read_publishes_nothing_and_is_kept(rig: Rig, change: str) -> None:
    store = rig.add_dest("backup", delete_source=True)
    rig.add_source("big.fits", 1024 * 1024)
    gated = GatedSource.over(rig.source_url)
    engine = rig.make_engine(source_resolver=lambda ref: gated)
    [queued] = engine.schedule(rig.source_url, "big.fits", ["backup"])
    import threading

    runner = threading.Thread(target=engine.run_due, kwargs={"limit": 1})
    runner.start()
    assert gated.reached.wait(10)
    now = data_for("new", 1024 * 1024) if change == "replaced" else data_for("big.fits", 1024 * 1024)[:100_000]
    rig.source.put(io.BytesIO(now), "big.fits")
    gated.release.set()
    runner.join(10)
    again = engine.get(queued.id)
    assert again.state == "pending" and "changed while it was read" in again.last_error
    assert partials(store) == [] and list(store.list()) == []
    assert rig.source.exists("big.fits")
    assert_sources_safe(rig.source, {"big.fits": now}, {})
    engine.cancel(queued.id)
    assert_nothing_lost(engine, {"backup": {}}, {"backup": store})


def test_a_source_changed_between_its_transfers_is_never_deleted(rig: Rig) -> None:
    stores = {"a": rig.add_dest("a", delete_source=True), "b": rig.add_dest("b")}
    old = rig.add_source("g.fits", 50_000)
    transfers = rig.engine.schedule(rig.source_url, "g.fits", ["a", "b"])
    rig.engine.run_due(limit=1)  # a completes with the old bytes
    new = data_for("edited", 50_000)
    rig.source.put(io.BytesIO(new), "g.fits")
    for _ in range(6):
        rig.engine.run_due()
        rig.clock.advance(3600)
    rig.engine.periodic()
    states = {t.destination_name: rig.engine.get(t.id).state for t in transfers}
    assert states == {"a": "completed", "b": "failed"}
    assert_sources_safe(rig.source, {"g.fits": new}, {})
    assert_nothing_lost(rig.engine, {"a": {"g.fits": old}, "b": {}}, stores)


def test_a_source_changed_after_its_transfers_is_not_deleted(rig: Rig) -> None:
    """The check right before deleting: the copies hold the bytes that were
    scheduled; if the source is different by the time it would go, it stays."""
    store = rig.add_dest("a", delete_source=True)
    old = rig.add_source("h.fits", 50_000)
    new = data_for("edited later", 50_000)

    class ChangingSource(MemoryStore):
        """The first deletion fails (so the periodic pass finishes it later)."""

        failed = False

        def delete_file(self, path: str, version_id: str | None = None) -> None:
            if not ChangingSource.failed:
                ChangingSource.failed = True
                raise TransientStorageError("delete failed: 503")
            super().delete_file(path, version_id)

    source = get_store(rig.source_url)
    source.__class__ = ChangingSource
    engine = rig.make_engine(source_resolver=lambda ref: source)
    [queued] = engine.schedule(rig.source_url, "h.fits", ["a"])
    engine.run_due()
    assert engine.get(queued.id).state == "completed" and source.exists("h.fits")
    rig.source.put(io.BytesIO(new), "h.fits")  # edited before the deletion is retried
    assert engine.finish_source_deletions() == 0
    assert engine.source_file(queued.file_id)["delete_state"] == "kept"
    assert_sources_safe(rig.source, {"h.fits": new}, {})
    assert_nothing_lost(engine, {"a": {"h.fits": old}}, {"a": store})


def test_a_sha256_given_at_scheduling_is_enforced(rig: Rig) -> None:
    import hashlib

    store = rig.add_dest("a", delete_source=True)
    data = rig.add_source("s.fits", 30_000)
    with pytest.raises(ConfigurationError, match="64 hex digits"):
        rig.engine.schedule(rig.source_url, "s.fits", ["a"], sha256={"s.fits": "nothex"})
    [wrong] = rig.engine.schedule(rig.source_url, "s.fits", ["a"], sha256={"s.fits": "0" * 64})
    rig.engine.run_due()
    failed = rig.engine.get(wrong.id)
    assert failed.state == "pending" and "no longer holds the bytes" in failed.last_error
    assert list(store.list()) == [] and rig.source.exists("s.fits")
    rig.engine.cancel(wrong.id)
    [right] = rig.engine.schedule(rig.source_url, "s.fits", ["a"], sha256={"s.fits": hashlib.sha256(data).hexdigest()})
    rig.engine.run_due()
    assert rig.engine.get(right.id).state == "completed"
    assert rig.source.exists("s.fits")  # the cancelled schedule of the same source keeps it
    assert_nothing_lost(rig.engine, {"a": {"s.fits": data}}, {"a": store})


def test_a_change_that_keeps_size_and_time_is_caught_by_the_hash(rig: Rig) -> None:
    """The source is rewritten with other bytes of the same size and its time
    put back: the second transfer reads other bytes than the first copied, so
    it fails and takes back its upload, and the source is never deleted."""
    stores = {"a": rig.add_dest("a", delete_source=True), "b": rig.add_dest("b")}
    old = rig.add_source("t.fits", 30_000)
    transfers = rig.engine.schedule(rig.source_url, "t.fits", ["a", "b"])
    rig.engine.run_due(limit=1)
    fs = rig.source.fs  # type: ignore[attr-defined]
    full = rig.source._full("t.fits")  # type: ignore[attr-defined]
    created = fs.store[full].created
    new = data_for("same size, same time", 30_000)
    rig.source.put(io.BytesIO(new), "t.fits")
    fs.store[full].created = created
    rig.engine.run_due()
    second = rig.engine.get(transfers[1].id)
    assert second.state == "pending" and "no longer holds the bytes" in second.last_error
    rig.engine.cancel(second.id)
    rig.engine.periodic()
    assert_sources_safe(rig.source, {"t.fits": new}, {})
    assert_nothing_lost(rig.engine, {"a": {"t.fits": old}, "b": {}}, stores)


# -- point 4: partial uploads of killed attempts ---------------------------------------------


def _leave_partial(store: Any, name: str) -> str:
    staged = f"{store.root}/.{name}.{TEMP_MARKER}-0123456789ab"
    store.fs.pipe(staged, b"half an upload")
    return staged


def test_partial_of_a_killed_last_attempt_is_cleaned_when_reclaimed(rig: Rig) -> None:
    import socket
    import subprocess
    import sys

    store = rig.add_dest("backup")
    data = rig.add_source("p.fits")
    [queued] = rig.engine.schedule(rig.source_url, "p.fits", ["backup"])
    with rig.ledger.session() as session:
        session.execute(update(TransferRow).values(attempts=rig.engine.max_attempts - 1))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ghost = rig.make_engine(worker_id=f"{socket.gethostname()}:{dead.stdout.strip()}:gone")
    [(tid, _)] = ghost.claim()
    _leave_partial(store, "p.fits")  # the killed worker's staged upload
    assert rig.engine.reclaim() == 1
    assert rig.engine.get(tid).state == "failed" and "last allowed attempt" in rig.engine.get(tid).last_error
    assert partials(store) == []
    rig.engine.retry(queued.id)
    rig.engine.run_due()
    assert partials(store) == []
    assert_nothing_lost(rig.engine, {"backup": {"p.fits": data}}, {"backup": store})


def test_partial_is_cleaned_by_the_first_attempt_after_a_retry(rig: Rig) -> None:
    store = rig.add_dest("backup")
    data = rig.add_source("q.fits")
    FAULTS[store.root] = ["never"]
    [queued] = rig.engine.schedule(rig.source_url, "q.fits", ["backup"])
    rig.engine.run_due()
    _leave_partial(store, "q.fits")  # e.g. left by a killed attempt whose clean-up could not reach the store
    rig.engine.retry(queued.id)  # attempts start again at 1
    rig.engine.run_due()
    assert rig.engine.get(queued.id).attempts == 1
    assert partials(store) == []
    assert_nothing_lost(rig.engine, {"backup": {"q.fits": data}}, {"backup": store})


# -- issue 20: the rollback when deleting a source fails --------------------------------------


def test_failed_source_deletion_rolls_back_and_is_finished_later(rig: Rig) -> None:
    store = rig.add_dest("backup", delete_source=True)
    data = rig.add_source("r.fits")
    failures = [TransientStorageError("delete of 'r.fits' failed: 503")]

    class FlakySource(MemoryStore):
        def delete_file(self, path: str, version_id: str | None = None) -> None:
            if failures:
                raise failures.pop()
            super().delete_file(path, version_id)

    source = get_store(rig.source_url)
    source.__class__ = FlakySource
    engine = rig.make_engine(source_resolver=lambda ref: source)
    [queued] = engine.schedule(rig.source_url, "r.fits", ["backup"])
    engine.run_due()
    assert engine.get(queued.id).state == "completed"
    assert source.exists("r.fits")
    file = engine.source_file(queued.file_id)
    assert file["delete_state"] == "pending" and file["deleted_at"] is None  # rolled back, not left "deleting"
    assert engine.finish_source_deletions() == 1
    assert not source.exists("r.fits") and engine.source_file(queued.file_id)["delete_state"] == "deleted"
    assert_nothing_lost(engine, {"backup": {"r.fits": data}}, {"backup": store})


# -- the final message's hint -------------------------------------------------------------------


class _BrokenSource(MemoryStore):
    """A memory store whose readers fail after the first 64 KiB (a disk error)."""

    def open(self, path: str, version_id: str | None = None) -> Any:
        inner = super().open(path, version_id)

        class Reader(io.RawIOBase):
            given = 0

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                if self.given >= 65536:
                    raise OSError(5, "Input/output error")
                data = inner.read(min(len(buffer), 65536 - self.given))
                buffer[: len(data)] = data
                self.given += len(data)
                return len(data)

        return io.BufferedReader(Reader(), 16 * 1024)


def test_the_dest_edit_hint_is_given_only_where_fixing_the_destination_helps(rig: Rig) -> None:
    stores = {"backup": rig.add_dest("backup"), "denied": rig.add_dest("denied")}
    FAULTS[stores["denied"].root] = ["never"]
    for name in ("changed.fits", "gone.fits", "broken.fits", "refused.fits"):
        rig.add_source(name, 200_000)
    broken = get_store(rig.source_url)
    broken.__class__ = _BrokenSource
    plain = rig.make_engine()
    engine = rig.make_engine(source_resolver=lambda ref: broken)
    [changed] = plain.schedule(rig.source_url, "changed.fits", ["backup"])
    [gone] = plain.schedule(rig.source_url, "gone.fits", ["backup"])
    [refused] = plain.schedule(rig.source_url, "refused.fits", ["denied"])
    rig.source.put(io.BytesIO(data_for("new bytes", 200_000)), "changed.fits")
    rig.source.delete_file("gone.fits")
    for _ in range(6):
        plain.run_due()
        rig.clock.advance(3600)
    [unreadable] = engine.schedule(rig.source_url, "broken.fits", ["backup"])
    for _ in range(6):
        engine.run_due()
        rig.clock.advance(3600)
    final = {t.source_path: plain.get(t.id) for t in (changed, gone, refused, unreadable)}
    assert {t.state for t in final.values()} == {"failed"}
    assert SourceChangedError.__name__ in final["changed.fits"].last_error
    assert "Input/output error" in final["broken.fits"].last_error
    # the source's failures: editing the destination cannot help
    for name in ("changed.fits", "gone.fits", "broken.fits"):
        assert "--refresh" not in final[name].last_error and "dest edit" not in final[name].last_error, name
    assert f"retry {refused.id} --refresh" in final["refused.fits"].last_error  # the destination's: it can
    assert_nothing_lost(plain, {"backup": {}, "denied": {}}, stores)
