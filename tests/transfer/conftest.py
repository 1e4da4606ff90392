"""Fixtures for the transfer tests: key rings, ledgers on SQLite and PostgreSQL,
and a controllable clock."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, ClassVar, Self

import pytest

from ocs_transfer import plugins
from ocs_transfer.exceptions import PermissionDeniedError, TransientStorageError
from ocs_transfer.hookspecs import hookimpl
from ocs_transfer.redact import Secret
from ocs_transfer.settings import Settings
from ocs_transfer.storage import get_store
from ocs_transfer.storage.base import FileStore, StoredObject
from ocs_transfer.storage.memory import MemoryStore
from ocs_transfer.testing.services import require_service
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine, Transfer
from ocs_transfer.transfer.ledger import Ledger
from ocs_transfer.transfer.models import FINAL_STATES


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


# -- a memory store with fault switches ------------------------------------------------

#: store root -> faults the next puts raise, in order ("transient", "never",
#: "leak"); "always-transient" stays at the head and fails every put.
FAULTS: dict[str, list[str]] = {}


class FaultyMemoryStore(MemoryStore):
    """The memory provider with fault switches, for failure paths. It keeps
    its ``token`` credential so a fault can echo it (as careless providers do)."""

    name: ClassVar[str] = "faulty-memory"
    schemes: ClassVar[tuple[str, ...]] = ()
    credential_fields: ClassVar[tuple[str, ...]] = ("token",)
    token: Any = None
    rotated_credentials: Any = None

    @classmethod
    def from_config(
        cls, config: Any, credentials: Mapping[str, Any] | None = None, *, settings: Settings | None = None
    ) -> Self:
        store = super().from_config(config, credentials, settings=settings)
        store.token = (credentials or {}).get("token")
        return store

    def put(self, source: IO[bytes], path: str, **kwargs: Any) -> StoredObject:
        queue = FAULTS.get(self.root)
        if queue:
            fault = queue[0] if queue[0] == "always-transient" else queue.pop(0)
            if fault in ("transient", "always-transient"):
                raise TransientStorageError(f"upload of {path} failed: 503 Service Unavailable")
            if fault == "never":
                raise PermissionDeniedError(f"upload of {path} refused: 403 Forbidden")
            if fault == "rotate":  # the provider handed out a new refresh token while working
                self.rotated_credentials = {"refresh_token": Secret(f"rotated-{uuid.uuid4().hex}")}
                FAULTS.setdefault("rotated", []).append(self.rotated_credentials["refresh_token"].reveal())
            if fault == "leak":
                token = self.token.reveal() if self.token is not None else ""
                encoded = base64.b64encode(token.encode()).decode()
                raise TransientStorageError(f"server said: token {token} ({encoded}) rejected")
        return super().put(source, path, **kwargs)


class _FaultyPlugin:
    @hookimpl
    def ocs_transfer_register_providers(self, register: Callable[[type[Any]], None]) -> None:
        register(FaultyMemoryStore)


@pytest.fixture
def faulty_provider(builtin_plugins_only: None) -> Iterator[None]:
    with plugins.temporary_plugin(_FaultyPlugin(), "faulty-memory"):
        yield
    FAULTS.clear()


def unique_root(prefix: str) -> str:
    return f"/{prefix}-{uuid.uuid4().hex[:10]}"


def manifest(store: FileStore, prefix: str = "") -> dict[str, tuple[int, str]]:
    """``{path: (size, sha256)}`` of everything in a store, hashed by reading it back."""
    result = {}
    for info in store.list(prefix):
        digest = hashlib.sha256()
        with store.get_fileobj(info.path) as reader:
            for chunk in iter(lambda: reader.read(65536), b""):
                digest.update(chunk)
        result[info.path] = (info.size, digest.hexdigest())
    return result


def data_for(name: str, size: int) -> bytes:
    """Deterministic content from a pattern (different per name)."""
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def assert_nothing_lost(
    engine: Engine, expected: Mapping[str, Mapping[str, bytes]], stores: Mapping[str, FileStore]
) -> None:
    """RELIABILITY.md's closing check: per destination, the listing equals the
    manifest of what should be there (name, size, hash), with no extra or
    partial objects, and every transfer is in exactly one final state."""
    for dest, files in expected.items():
        want = {path: (len(data), hashlib.sha256(data).hexdigest()) for path, data in files.items()}
        assert manifest(stores[dest]) == want, f"destination {dest} holds something else"
    for transfer in engine.transfers():
        assert transfer.state in FINAL_STATES, f"transfer {transfer.id} is {transfer.state}"


class Rig:
    """A ledger, key ring, destinations and engine on a fake clock, with a
    memory source store."""

    def __init__(self, ledger: Ledger, keyring: KeyRing, clock: FakeClock, **settings: Any) -> None:
        settings.setdefault("chunk_size", 64 * 1024)
        self.settings = Settings(**settings)
        self.ledger, self.keyring, self.clock = ledger, keyring, clock
        self.destinations = Destinations(ledger, keyring, settings=self.settings, clock=clock)
        self.finished: list[Transfer] = []
        self.engine = self.make_engine()
        self.source_url = "memory:/" + unique_root("src")
        self.source = get_store(self.source_url, settings=self.settings)

    def make_engine(self, **kwargs: Any) -> Engine:
        kwargs.setdefault("on_finished", self.finished.append)
        return Engine(self.ledger, self.destinations, settings=self.settings, clock=self.clock, **kwargs)

    def add_dest(self, name: str, *, provider: str = "faulty-memory", **fields: Any) -> FileStore:
        root = unique_root(name)
        fields.setdefault("credentials", {"token": f"tok-{name}-{uuid.uuid4().hex}"})
        self.destinations.add(name, provider, options={"root": root}, **fields)
        return get_store("memory", root=root)

    def add_source(self, path: str, size: int = 200_000) -> bytes:
        data = data_for(path, size)
        self.source.put(io.BytesIO(data), path)
        return data


@pytest.fixture
def rig(ledger: Ledger, keyring: KeyRing, clock: FakeClock, faulty_provider: None) -> Rig:
    return Rig(ledger, keyring, clock)


@pytest.fixture
def sqlite_rig(sqlite_ledger: Ledger, keyring: KeyRing, clock: FakeClock, faulty_provider: None) -> Rig:
    return Rig(sqlite_ledger, keyring, clock)


def assert_sources_safe(
    source: FileStore, files: Mapping[str, bytes], copies: Mapping[str, list[tuple[FileStore, str]]]
) -> None:
    """The other half of the nothing-lost check: every source is still present
    with its bytes, or byte-identical at every destination it was scheduled to."""
    for path, data in files.items():
        if source.exists(path):
            with source.get_fileobj(path) as reader:
                if reader.read() == data:
                    continue
        for store, remote in copies.get(path, []):
            assert store.exists(remote), f"{path} is gone and {remote} is not at its destination"
            with store.get_fileobj(remote) as reader:
                assert reader.read() == data, f"{path} is gone and {remote} holds other bytes"
        assert copies.get(path), f"{path} is gone and was scheduled nowhere"


def partials(store: FileStore) -> list[str]:
    """Staged upload files anywhere under a memory store's root (listings hide them)."""
    from ocs_transfer.storage.fsspec_store import FsspecStore

    assert isinstance(store, FsspecStore)
    return [p for p in store.fs.find(store.root) if FsspecStore.is_temporary(p)]
