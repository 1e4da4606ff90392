"""The ledger: URLs, SQLite settings, atomic claims (lease_race). Schema
migrations: test_migrations.py."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import update

from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.transfer.ledger import Ledger
from ocs_transfer.transfer.models import TransferRow

from .conftest import FakeClock, Rig, postgres_schema


def test_bad_urls_are_clear() -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        Ledger("")
    with pytest.raises(ConfigurationError, match=r"not usable|not supported"):
        Ledger("nosuchdb://x")


def test_sqlite_uses_wal(sqlite_ledger: Ledger) -> None:
    with sqlite_ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def _race(rig: Rig, ledgers: list[Ledger], rounds: int) -> Counter[int]:
    """Engines on separate connections claim as fast as they can."""
    engines = [rig.make_engine(worker_id=f"racer{i}:{i}:x") for i in range(len(ledgers))]
    for engine, led in zip(engines, ledgers, strict=True):
        engine.ledger = led
    claims: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(len(engines))

    def run(engine: object) -> None:
        start.wait()
        for _ in range(rounds):
            got = engine.claim(3)  # type: ignore[attr-defined]
            with lock:
                claims.update(tid for tid, _ in got)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return claims


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_lease_race(kind: str, tmp_path: Path, keyring: object, clock: FakeClock, faulty_provider: None) -> None:
    """Two workers (separate connections) race for the same due transfers and
    for one stale in-progress record: every transfer is claimed exactly once,
    and a fresh heartbeat is never stolen."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
        _run_race(url, keyring, clock)
    else:
        with postgres_schema() as url:
            _run_race(url, keyring, clock)


def _run_race(url: str, keyring: object, clock: FakeClock) -> None:
    ledgers = [Ledger(url) for _ in range(3)]
    ledgers[0].migrate()
    try:
        rig = Rig(ledgers[0], keyring, clock)  # type: ignore[arg-type]
        rig.add_dest("race")
        for i in range(60):
            rig.add_source(f"r{i}.fits", 10)
        transfers = [t.id for t in rig.engine.schedule(rig.source_url, [f"r{i}.fits" for i in range(60)], ["race"])]
        claims = _race(rig, ledgers[1:], rounds=40)
        assert sorted(claims) == sorted(transfers) and set(claims.values()) == {1}

        # one stale record, two workers reclaiming and claiming at once
        with ledgers[0].session() as session:
            session.execute(update(TransferRow).values(state="completed"))
            session.execute(
                update(TransferRow)
                .where(TransferRow.id == transfers[0])
                .values(state="in_progress", heartbeat_at=clock.now - 10_000, worker="far:1:x", lease="old")
            )
            session.execute(
                update(TransferRow)
                .where(TransferRow.id == transfers[1])
                .values(state="in_progress", heartbeat_at=clock.now, worker="far:2:x", lease="fresh")
            )
        engines = [rig.make_engine(worker_id=f"w{i}:{i}:x") for i in range(2)]
        for engine, led in zip(engines, ledgers[1:], strict=True):
            engine.ledger = led
        won: list[int] = []
        barrier = threading.Barrier(2)

        def go(engine: object) -> None:
            barrier.wait()
            engine.reclaim()  # type: ignore[attr-defined]
            won.extend(tid for tid, _ in engine.claim(5))  # type: ignore[attr-defined]

        threads = [threading.Thread(target=go, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert won == [transfers[0]]
        assert rig.engine.get(transfers[1]).state == "in_progress"  # the fresh one was left alone
    finally:
        for led in ledgers:
            led.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_lease_race_two_workers_run_everything_once(
    kind: str, tmp_path: Path, keyring: object, clock: FakeClock, faulty_provider: None
) -> None:
    """Two embedded workers on separate connections drain one queue together:
    each transfer runs exactly once, and nothing is lost."""
    from ocs_transfer.transfer.engine import Worker

    from .conftest import assert_nothing_lost

    def go(url: str) -> None:
        ledgers = [Ledger(url) for _ in range(2)]
        ledgers[0].migrate()
        try:
            rig = Rig(ledgers[0], keyring, clock)  # type: ignore[arg-type]
            store = rig.add_dest("shared")
            files = {f"w{i}.fits": rig.add_source(f"w{i}.fits", 5_000 + i) for i in range(40)}
            rig.engine.schedule(rig.source_url, sorted(files), ["shared"])
            workers = []
            for i, led in enumerate(ledgers):
                engine = rig.make_engine(worker_id=f"racer{i}:{i}:x")
                engine.ledger = led
                workers.append(Worker(engine, threads=2, poll_interval=0.01))
            ran: list[int] = []
            threads = [threading.Thread(target=lambda w=w: ran.append(w.run(until_idle=True))) for w in workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert sum(ran) == 40
            assert all(t.attempts == 1 and t.state == "completed" for t in rig.engine.transfers())
            assert_nothing_lost(rig.engine, {"shared": files}, {"shared": store})
        finally:
            for led in ledgers:
                led.close()

    if kind == "sqlite":
        go(f"sqlite:///{tmp_path / 'race2.sqlite3'}")
    else:
        with postgres_schema() as url:
            go(url)
