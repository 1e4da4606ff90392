"""Fixtures for the transfer tests: key rings, ledgers on SQLite and PostgreSQL,
and a controllable clock."""

from __future__ import annotations

import base64
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocs_transfer.testing.services import require_service
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.ledger import Ledger


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing.parse(f"k1:{make_key()}", "k1")


def postgres_url(schema: str) -> str:
    host, port = require_service("postgresql")
    return f"postgresql+psycopg://postgres@{host}:{port}/test?options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A uniquely named schema on the test PostgreSQL, dropped afterwards;
    yields a ledger URL whose search_path is that schema."""
    import sqlalchemy

    schema = f"ocs_test_{uuid.uuid4().hex[:12]}"
    host, port = require_service("postgresql")
    admin = sqlalchemy.create_engine(f"postgresql+psycopg://postgres@{host}:{port}/test")
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield postgres_url(schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@contextlib.contextmanager
def ledger_for(kind: str, tmp_path: Path) -> Iterator[Ledger]:
    if kind == "sqlite":
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
        ledger.migrate()
        try:
            yield ledger
        finally:
            ledger.close()
        return
    with postgres_schema() as url:
        ledger = Ledger(url)
        ledger.migrate()
        try:
            yield ledger
        finally:
            ledger.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """A migrated, empty ledger on each database."""
    with ledger_for(request.param, tmp_path) as ledger:
        yield ledger


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Ledger]:
    with ledger_for("sqlite", tmp_path) as ledger:
        yield ledger
