"""Messages that name destinations: the transfers are in the ledger before
the message is acknowledged, a repeated message schedules nothing twice, and
the worker then carries them out."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocs_transfer.ingest import Ingester, consume, enqueue
from ocs_transfer.settings import Settings
from ocs_transfer.storage import get_store
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine
from ocs_transfer.transfer.ledger import Ledger

from .conftest import Rabbit, md5_of

pytestmark = pytest.mark.services


@pytest.fixture
def engine(tmp_path: Path, all_plugins: None) -> Iterator[Engine]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    ledger.migrate()
    settings = Settings()
    yield Engine(ledger, Destinations(ledger, None, settings=settings), settings=settings)
    ledger.close()


def test_destinations_are_scheduled_once_then_copied(rabbit: Rabbit, files: dict[str, Path], engine: Engine) -> None:
    root = f"copies-{uuid.uuid4().hex[:8]}"
    engine.destinations.add("copies", "memory", options={"root": root}, layout="flat")
    enqueue(rabbit.url, rabbit.name, [files["good0"], files["good0"]], destinations=["copies"])  # the 2nd: a repeat
    enqueue(rabbit.url, rabbit.name, [files["good1"]], destinations=["no-such-dest"])
    stats = consume(rabbit.url, rabbit.name, Ingester(None, engine=engine), until_idle=True, idle_seconds=0.5)
    assert (stats.received, stats.stored, stats.already, stats.dead) == (3, 1, 1, 1)

    [transfer] = engine.transfers()  # in the ledger, once
    assert (transfer.destination_name, transfer.state) == ("copies", "pending")
    assert Path(transfer.source_store, transfer.source_path) == files["good0"]
    [(body, headers)] = rabbit.take_dead()
    assert json.loads(body)["filepath"] == str(files["good1"])
    assert "no-such-dest" in headers["x-ocs-reason"]

    assert engine.run_due() == 1
    copies = get_store("memory", root=root)
    with copies.get_fileobj(files["good0"].name) as held:
        import hashlib

        assert hashlib.md5(held.read(), usedforsecurity=False).hexdigest() == md5_of(files["good0"])
