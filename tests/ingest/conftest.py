"""Fixtures for the ingest-queue tests: the machine's RabbitMQ, a uniquely
named queue per test (deleted afterwards, with its retry and dead queues),
and data files: good ones, a truncated one."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocs_transfer.ingest.queue import RETRY_DELAYS, Topology, open_connection
from ocs_transfer.testing.services import require_service

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
GOOD = ("coj1m011-kb05-20150219-0125-e90.fits.fz", "cpt1m010-kb70-20151219-0073-e10.fits.fz")


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


class Rabbit:
    """One test's ingest queue on the real broker."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.delays: set[int] = set(RETRY_DELAYS) | set(range(1, 11))  # the short delays tests use

    def topology(self, delays: tuple[int, ...] = RETRY_DELAYS, limit: int | None = None) -> Topology:
        self.delays.update(delays)
        return Topology(self.name, delays) if limit is None else Topology(self.name, delays, limit)

    def _all(self) -> Topology:
        return Topology(self.name, tuple(sorted(self.delays)))

    def counts(self) -> dict[str, int]:
        """Ready messages: the main queue, all retry queues together, the dead queue."""
        conn = open_connection(self.url)
        try:
            topology = self._all()
            counts = topology.counts(conn)
        finally:
            conn.release()
        retry = sum(n for q, n in counts.items() if q not in (topology.name, topology.dead))
        return {"main": counts[topology.name], "retry": retry, "dead": counts[topology.dead]}

    def take_dead(self) -> list[tuple[bytes, dict[str, Any]]]:
        """Every message of NAME.dead (body, headers), taken off the queue."""
        conn = open_connection(self.url)
        taken = []
        try:
            channel = conn.channel()
            while (message := channel.basic_get(f"{self.name}.dead", no_ack=True)) is not None:
                body = message.body if isinstance(message.body, bytes) else message.body.encode()
                taken.append((body, dict(message.headers or {})))
        finally:
            conn.release()
        return taken

    def publish_raw(self, body: bytes) -> None:
        """A message as any publisher might send it, valid or not."""
        import kombu

        conn = open_connection(self.url)
        try:
            self.topology().declare(conn, retry=False)
            kombu.Producer(conn.channel()).publish(body, routing_key=self.name, exchange="", delivery_mode=2)
        finally:
            conn.release()

    def delete(self) -> None:
        conn = open_connection(self.url)
        try:
            self._all().delete(conn)
        finally:
            conn.release()


@pytest.fixture
def rabbit_url() -> str:
    host, port = require_service("rabbitmq")
    return f"amqp://guest:guest@{host}:{port}//"


@pytest.fixture
def rabbit(rabbit_url: str) -> Iterator[Rabbit]:
    queue = Rabbit(rabbit_url, f"ocs-test-ingest-{uuid.uuid4().hex[:12]}")
    yield queue
    queue.delete()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Copies of real LCO files (``good0``, ``good1``) and a truncated FITS (``bad``)."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    found = {}
    for i, name in enumerate(GOOD):
        found[f"good{i}"] = Path(shutil.copy(EXAMPLES / name, incoming / name))
    bad = incoming / "coj1m011-kb05-20150219-0126-e90.fits"
    bad.write_bytes((EXAMPLES / "coj1m011-kb05-20150219-0125-e90.fits").read_bytes()[:4000])
    found["bad"] = bad
    return found
