"""Hypothesis state machine over the transfer lifecycle: random faults,
clock jumps, retries and cancels never delete a source early, and everything
ends in exactly one final state with the destinations holding exactly what
they should."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ocs_transfer import plugins
from ocs_transfer.storage import get_store
from ocs_transfer.storage.memory import MemoryStore
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.ledger import Ledger
from ocs_transfer.transfer.models import FINAL_STATES

from .conftest import FAULTS, FakeClock, Rig, _FaultyPlugin, make_key, manifest

DESTS = ("d0", "d1", "d2")


class CountingSource(MemoryStore):
    """The memory store, counting deletions per path."""

    deletions: dict[str, int]

    def delete_file(self, path: str, version_id: str | None = None) -> None:
        super().delete_file(path, version_id)
        self.deletions[path] = self.deletions.get(path, 0) + 1


class Lifecycle(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.ledger = Ledger(f"sqlite:///{Path(self.tmp.name) / 'l.sqlite3'}")
        self.ledger.migrate()
        self.plugin = plugins.temporary_plugin(_FaultyPlugin(), "faulty-memory")
        self.plugin.__enter__()
        self.rig = Rig(self.ledger, KeyRing.parse(f"k1:{make_key()}"), FakeClock(), retry_delays=(300, 600))
        source = get_store(self.rig.source_url)
        source.__class__ = CountingSource
        assert isinstance(source, CountingSource)
        source.deletions = {}
        self.source = source
        self.rig.engine = self.rig.make_engine(source_resolver=lambda ref: source)
        self.stores = {n: self.rig.add_dest(n, delete_source=(n == "d1")) for n in DESTS}
        self.files: dict[str, bytes] = {}
        self.asked_delete: dict[str, bool] = {}
        self.file_ids: dict[str, int] = {}

    def teardown(self) -> None:
        if hasattr(self, "plugin"):
            self.plugin.__exit__(None, None, None)
            self.ledger.close()
            self.tmp.cleanup()
            for store in self.stores.values():
                FAULTS.pop(store.root, None)

    @rule(dests=st.sets(st.sampled_from(DESTS), min_size=1), size=st.integers(0, 150_000))
    def schedule(self, dests: set[str], size: int) -> None:
        name = f"f{len(self.files)}.fits"
        self.files[name] = self.rig.add_source(name, size)
        self.asked_delete[name] = "d1" in dests
        [first, *_] = self.rig.engine.schedule(self.rig.source_url, name, sorted(dests))
        self.file_ids[name] = first.file_id

    @rule(dest=st.sampled_from(DESTS), fault=st.sampled_from(["", "transient", "never", "always-transient"]))
    def set_fault(self, dest: str, fault: str) -> None:
        FAULTS[self.stores[dest].root] = [fault] if fault else []

    @rule()
    def run_due(self) -> None:
        self.rig.engine.run_due()

    @rule(minutes=st.integers(1, 40))
    def wait(self, minutes: int) -> None:
        self.rig.clock.advance(minutes * 60)

    @precondition(lambda self: bool(getattr(self, "files", None)))
    @rule(data=st.data())
    def retry_or_cancel(self, data: Any) -> None:
        transfers = self.rig.engine.transfers()
        transfer = data.draw(st.sampled_from(transfers))
        if transfer.state in ("failed", "cancelled"):
            self.rig.engine.retry(transfer.id)
        elif transfer.state == "pending":
            self.rig.engine.cancel(transfer.id)

    @invariant()
    def source_never_deleted_early(self) -> None:
        if not hasattr(self, "rig"):
            return
        for name, file_id in self.file_ids.items():
            transfers = self.rig.engine.transfers(file_id=file_id)
            if not self.source.exists(name):
                assert self.asked_delete[name]
                assert all(t.state == "completed" for t in transfers)
            assert self.source.deletions.get(name, 0) <= 1
            for t in transfers:
                assert t.attempts <= self.rig.engine.max_attempts
                if t.state == "completed":
                    data = self.files[name]
                    assert t.sha256 == hashlib.sha256(data).hexdigest() and t.size == len(data)

    def finish(self) -> None:
        """Clear faults, retry what failed, and run until everything is final."""
        for store in self.stores.values():
            FAULTS[store.root] = []
        for _ in range(10):
            for t in self.rig.engine.transfers():
                if t.state in ("failed", "cancelled"):
                    self.rig.engine.retry(t.id)
            self.rig.clock.advance(3600)
            self.rig.engine.run_due()
        for t in self.rig.engine.transfers():
            assert t.state in FINAL_STATES and t.state == "completed"
        expected: dict[str, dict[str, tuple[int, str]]] = {n: {} for n in DESTS}
        for t in self.rig.engine.transfers():
            data = self.files[t.source_path]
            expected[t.destination_name][t.remote_path] = (len(data), hashlib.sha256(data).hexdigest())
        for n in DESTS:
            assert manifest(self.stores[n]) == expected[n]
        for name in self.files:
            assert self.source.exists(name) is not self.asked_delete[name]
            assert self.source.deletions.get(name, 0) == (1 if self.asked_delete[name] else 0)

    @precondition(lambda self: bool(getattr(self, "files", None)))
    @rule()
    def settle_and_check_nothing_lost(self) -> None:
        self.finish()


Lifecycle.TestCase.settings = settings(
    max_examples=20, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_lifecycle(builtin_plugins_only: None) -> None:
    Lifecycle.TestCase().runTest()

