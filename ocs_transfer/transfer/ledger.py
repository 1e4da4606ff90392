"""The ledger: where destinations and transfers are recorded.

SQLAlchemy 2 over a SQLite file by default (``settings.ledger_url``, default
``sqlite:///ocs_transfer.sqlite3``: zero set-up, several processes on one
machine) or PostgreSQL through psycopg (``postgresql+psycopg://...``: many
workers on many machines).

SQLite runs in WAL mode with a busy timeout, and every transaction starts with
``BEGIN IMMEDIATE`` so that a read-then-write (claiming a transfer) cannot be
interleaved with another writer. PostgreSQL claims with ``FOR UPDATE SKIP
LOCKED`` (see :mod:`ocs_transfer.transfer.engine`).

The schema is versioned: a fresh database gets today's tables and the latest
version number; an older one gets each missing step of :data:`MIGRATIONS` in
order, in one transaction, under a lock.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    create_engine,
    event,
    insert,
    inspect,
    select,
)
from sqlalchemy import text as sql_text
from sqlalchemy import update as sql_update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..exceptions import ConfigurationError
from ..settings import Settings
from .models import Base

__all__ = ["Ledger", "MIGRATIONS", "SCHEMA_VERSION"]

log = logging.getLogger(__name__)

_VERSION_TABLE = "ocs_transfer_schema_version"
_version = Table(_VERSION_TABLE, MetaData(), Column("version", Integer, nullable=False))

#: Ordered schema steps after version 1: ``(version, description, step(connection))``.
#: Version 1 is the tables of :mod:`.models` as first released. To change the
#: schema, change the models AND append a step that changes an existing database
#: the same way (a fresh database is created from the models and stamped).
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = []

SCHEMA_VERSION = max([1, *(version for version, _, _ in MIGRATIONS)])


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own
        # transaction handling would start a deferred transaction).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Ledger:
    """A connection to the ledger database. Thread-safe; share one per process."""

    def __init__(self, url: str, *, echo: bool = False, connect_timeout: int = 10) -> None:
        if not url:
            raise ConfigurationError("OCS_TRANSFER_LEDGER_URL is empty; use e.g. sqlite:///ocs_transfer.sqlite3")
        remote = url.startswith("postgresql")
        try:
            connect_args = {"connect_timeout": connect_timeout} if remote else {}
            self.engine = create_engine(url, echo=echo, pool_pre_ping=remote, connect_args=connect_args)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise ConfigurationError(
                f"OCS_TRANSFER_LEDGER_URL is not usable ({type(exc).__name__}); expected sqlite:///FILE or"
                " postgresql+psycopg://USER@HOST:PORT/DB (install ocs-transfer[postgres] for PostgreSQL)"
            ) from exc
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine)
        elif self.dialect != "postgresql":
            raise ConfigurationError(f"ledger database {self.dialect!r} is not supported: use SQLite or PostgreSQL")
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True) -> Ledger:
        ledger = cls(settings.ledger_url, connect_timeout=settings.connect_timeout)
        if migrate:
            ledger.migrate()
        return ledger

    def __repr__(self) -> str:
        return f"Ledger({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as session:
            yield session

    def schema_version(self) -> int:
        """The version recorded in the database (0 when it has no tables yet)."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(_VERSION_TABLE):
                return 0
            return int(conn.execute(select(_version.c.version)).scalar() or 0)

    def migrate(self) -> int:
        """Bring the schema to :data:`SCHEMA_VERSION`; returns the version. Safe
        to call from several processes at once."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sql_text("SELECT pg_advisory_xact_lock(7263518)"))
            if not inspect(conn).has_table(_VERSION_TABLE):
                _version.create(conn)
                conn.execute(insert(_version).values(version=0))
            current = int(conn.execute(select(_version.c.version)).scalar() or 0)
            if current == 0:
                Base.metadata.create_all(conn)
                current = SCHEMA_VERSION
                log.info("ledger: created schema version %d", current)
            elif current > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"the ledger's schema is version {current}, newer than this ocs-transfer knows"
                    f" ({SCHEMA_VERSION}); upgrade ocs-transfer"
                )
            for version, description, step in MIGRATIONS:
                if version > current:
                    log.info("ledger: migrating to version %d: %s", version, description)
                    step(conn)
                    current = version
            conn.execute(sql_update(_version).values(version=current))
        return current

    def close(self) -> None:
        self.engine.dispose()
