"""The worker's periodic pass purges and expires; bytes_done is saved at
least every second while a transfer runs."""

from __future__ import annotations

import io
from typing import IO, Any, ClassVar

from ocs_transfer import plugins
from ocs_transfer.exceptions import ObjectNotFoundError
from ocs_transfer.hookspecs import hookimpl
from ocs_transfer.storage.base import StoredObject
from ocs_transfer.storage.memory import MemoryStore
from ocs_transfer.transfer.engine import Worker
from ocs_transfer.transfer.models import TransferRow

from .conftest import FakeClock, Rig, data_for, unique_root


def test_periodic_pass_expires_then_purges(sqlite_rig: Rig) -> None:
    rig = sqlite_rig
    kept = rig.add_dest("short", keep_days=7)
    data = rig.add_source("e.fits")
    [t] = rig.engine.schedule(rig.source_url, ["e.fits"], ["short"])
    rig.engine.run_due()
    assert kept.get_file_size(t.remote_path) == len(data)
    rig.clock.advance(8 * 86400)
    Worker(rig.engine, threads=1).run(until_idle=True)  # the start-up pass is not the periodic one
    rig.engine.periodic()
    try:
        kept.get_file_size(t.remote_path)
        raise AssertionError("the file past keep_days is still there")
    except ObjectNotFoundError:
        pass
    assert rig.engine.get(t.id).expired_at is not None
    rig.clock.advance(rig.settings.purge_after_days * 86400)
    rig.engine.periodic()
    assert rig.engine.transfers() == []
    assert rig.source.get_file_size("e.fits") == len(data)  # the source was never asked to go


class _SlowClockStore(MemoryStore):
    """Memory store whose put moves the fake clock 0.4 s per chunk and records
    what the ledger says of bytes_done after each chunk."""

    name: ClassVar[str] = "slow-clock-memory"
    schemes: ClassVar[tuple[str, ...]] = ()
    clock: ClassVar[Any] = None
    ledger: ClassVar[Any] = None
    seen: ClassVar[list[int]] = []

    def put(self, source: IO[bytes], path: str, **kwargs: Any) -> StoredObject:
        progress = kwargs.pop("progress")

        def step(n: int) -> None:
            progress(n)
            type(self).clock.advance(0.4)
            with type(self).ledger.session() as session:
                type(self).seen.append(session.get(TransferRow, 1).bytes_done)

        return super().put(source, path, progress=step, **kwargs)


class _Plugin:
    @hookimpl
    def ocs_transfer_register_providers(self, register: Any) -> None:
        register(_SlowClockStore)


def test_bytes_done_is_saved_every_second(sqlite_rig: Rig, clock: FakeClock) -> None:
    rig = sqlite_rig
    _SlowClockStore.clock, _SlowClockStore.ledger, _SlowClockStore.seen = clock, rig.ledger, []
    with plugins.temporary_plugin(_Plugin(), "slow-clock"):
        rig.destinations.add("slow", "slow-clock-memory", options={"root": unique_root("slow")})
        rig.source.put(io.BytesIO(data_for("s.fits", 64 * 1024 * 12)), "s.fits")
        rig.engine.schedule(rig.source_url, ["s.fits"], ["slow"])
        rig.engine.run_due()
    seen = _SlowClockStore.seen
    assert len(seen) >= 10
    # the heartbeat is 15 s away: without the per-second save the ledger would say 0 throughout
    assert seen[-1] >= 64 * 1024 * (len(seen) - 3)
    assert all(b > a for a, b in zip(seen[2::3], seen[5::3]))
