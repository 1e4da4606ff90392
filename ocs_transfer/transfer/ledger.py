"""The ledger: where destinations and transfers are recorded.

SQLAlchemy 2 over a SQLite file by default (``settings.ledger_url``, default
``sqlite:///ocs_transfer.sqlite3``: zero set-up, several processes on one
machine) or PostgreSQL through psycopg (``postgresql+psycopg://...``: many
workers on many machines).

SQLite runs in WAL mode with a busy timeout, and every transaction starts with
``BEGIN IMMEDIATE`` so that a read-then-write (claiming a transfer) cannot be
interleaved with another writer. PostgreSQL claims with ``FOR UPDATE SKIP
LOCKED`` (see :mod:`ocs_transfer.transfer.core`).

The schema is managed by Alembic (:mod:`.migrations`). :meth:`Ledger.migrate`
runs whenever a ledger is opened through :meth:`Ledger.from_settings` (and by
``ocs-transfer ledger upgrade``): a fresh database gets today's tables and is
stamped with the latest revision; an existing one gets each missing revision
in order, in one transaction, under a lock (PostgreSQL: an advisory lock;
SQLite: ``BEGIN IMMEDIATE``), so several processes may open it at once. A
ledger made before Alembic (it has only the ``ocs_transfer_schema_version``
table, version 1) is taken as the first revision and upgraded in place. That
old table is kept at version 2, so that an older ocs-transfer refuses the
upgraded ledger instead of writing rows it no longer understands.

Database errors leave here as :class:`LedgerError` (with what the database
said, not a traceback of SQL).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
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
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..exceptions import ConfigurationError, DoNotRetryError, RetryError
from ..settings import Settings
from .models import Base

__all__ = ["HEAD_REVISION", "Ledger", "LedgerError", "LedgerUnavailableError"]

log = logging.getLogger(__name__)

#: The latest revision in :mod:`.migrations` (a test checks it is Alembic's head).
HEAD_REVISION = "0006_queued_at"
#: What a ledger made before Alembic counts as.
BASELINE_REVISION = "0001_baseline"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")

_VERSION_TABLE = "ocs_transfer_schema_version"
_version = Table(_VERSION_TABLE, MetaData(), Column("version", Integer, nullable=False))
#: What the pre-Alembic version table says from now on: older releases know only
#: version 1 and refuse a ledger that says more.
_LEGACY_GUARD_VERSION = 2


class LedgerError(DoNotRetryError):
    """The ledger database refused a change (a value it cannot store, a
    constraint); what it said is in the message."""


class LedgerUnavailableError(RetryError):
    """The ledger database could not be reached or was busy; retry later."""


def _database_said(exc: DBAPIError) -> str:
    """The first line of what the database said (no SQL, no parameters)."""
    text = str(exc.orig) if exc.orig is not None else type(exc).__name__
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__


def _driver(conn: Connection) -> Any:
    """The DBAPI connection under ``conn`` (for pragmas outside a transaction)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    return config


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return {rev.revision for rev in script.walk_revisions()}


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


#: A pooled PostgreSQL connection unused this many seconds is checked (a
#: round trip) before it is handed out; one in steady use is not.
PING_AFTER_IDLE = 2.0


def _ping_when_idle(engine: Engine) -> None:
    """Check pooled connections that sat idle, before use: the server may
    have closed them (a restart, ``pg_terminate_backend``, an idle timeout).
    A failed check makes the pool open a new connection. Connections in
    steady use skip the round trip (SQLAlchemy's ``pool_pre_ping`` pays it on
    every checkout, twice per transfer); a server that drops one of those
    fails that one transaction, which the engine recovers from as from any
    ledger outage."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["ocs_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("ocs_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:
            alive = False
        if not alive:
            raise DisconnectionError("the ledger connection was closed while idle")


class Ledger:
    """A connection to the ledger database. Thread-safe; share one per process."""

    def __init__(self, url: str, *, echo: bool = False, connect_timeout: int = 10) -> None:
        if not url:
            raise ConfigurationError("OCS_TRANSFER_LEDGER_URL is empty; use e.g. sqlite:///ocs_transfer.sqlite3")
        remote = url.startswith("postgresql")
        try:
            connect_args = {"connect_timeout": connect_timeout} if remote else {}
            self.engine = create_engine(url, echo=echo, connect_args=connect_args)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise ConfigurationError(
                f"OCS_TRANSFER_LEDGER_URL is not usable ({type(exc).__name__}); expected sqlite:///FILE or"
                " postgresql+psycopg://USER@HOST:PORT/DB (install ocs-transfer[postgres] for PostgreSQL)"
            ) from exc
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine)
        elif self.dialect == "postgresql":
            _ping_when_idle(self.engine)
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
        with self._translated(), self._sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A plain (Core) connection in one transaction, committed on success
        and rolled back on error, with the errors :meth:`session` raises: for
        the engine's per-transfer statements, without an ORM session's cost."""
        with self._translated(), self.engine.begin() as conn:
            yield conn

    @staticmethod
    @contextlib.contextmanager
    def _translated() -> Iterator[None]:
        """The database's errors as :class:`LedgerUnavailableError` (it could
        not be reached) or :class:`LedgerError` (it refused)."""
        try:
            yield
        except OperationalError as exc:
            raise LedgerUnavailableError(f"the ledger database failed: {_database_said(exc)}") from exc
        except DBAPIError as exc:
            raise LedgerError(
                f"the ledger database refused the change: {_database_said(exc)}"
            ) from exc

    def schema_revision(self) -> str | None:
        """The Alembic revision recorded in the database (``None`` when it has
        none: a new database, or one made before Alembic)."""
        with self.engine.connect() as conn:
            return self._revision(conn)

    @staticmethod
    def _revision(conn: Connection) -> str | None:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()

    def migrate(self) -> str:
        """Bring the schema to :data:`HEAD_REVISION`; returns the revision.
        Idempotent, and safe to call from several processes at once."""
        with self.engine.connect() as conn:
            if self._revision(conn) == HEAD_REVISION:  # the usual case: nothing to load
                conn.rollback()
                return HEAD_REVISION
            conn.rollback()
            if self.dialect == "sqlite":
                # Rebuilding a table (batch mode) drops the old one; with foreign keys
                # on, that would cascade-delete every transfer of the dropped files.
                # The pragma only works outside a transaction, on this connection.
                _driver(conn).execute("PRAGMA foreign_keys = OFF")
            try:
                with conn.begin():
                    revision = self._migrate(conn)
                    if self.dialect == "sqlite":  # checked before committing: a bad upgrade rolls back
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise LedgerError(
                                f"the ledger upgrade would leave {len(broken)} row(s) with a broken reference;"
                                " nothing was changed"
                            )
            finally:
                if self.dialect == "sqlite":
                    _driver(conn).execute("PRAGMA foreign_keys = ON")
        return revision

    def _migrate(self, conn: Connection) -> str:
        from alembic import command

        if self.dialect == "postgresql":
            conn.execute(sql_text("SELECT pg_advisory_xact_lock(7263518)"))
        current = self._revision(conn)  # again, under the lock
        if current == HEAD_REVISION:
            return current
        config = _alembic_config(conn)
        inspector = inspect(conn)
        if current is None:
            legacy = inspector.has_table(_VERSION_TABLE)
            old = int(conn.execute(select(_version.c.version)).scalar() or 0) if legacy else 0
            if old > _LEGACY_GUARD_VERSION or (old == _LEGACY_GUARD_VERSION and inspector.has_table("ocs_transfers")):
                raise ConfigurationError(
                    f"the ledger says schema version {old} but records no Alembic revision; it was not made by"
                    " this ocs-transfer: upgrade ocs-transfer, or check OCS_TRANSFER_LEDGER_URL"
                )
            if old >= 1 and inspector.has_table("ocs_transfers"):
                log.info("ledger: taking the pre-Alembic schema (version 1) as %s", BASELINE_REVISION)
                command.stamp(config, BASELINE_REVISION)
            else:  # a new ledger: today's tables, stamped as the latest revision
                Base.metadata.create_all(conn)
                command.stamp(config, HEAD_REVISION)
                self._guard_legacy(conn, legacy)
                log.info("ledger: created schema %s", HEAD_REVISION)
                return HEAD_REVISION
        elif current not in _known_revisions():
            raise ConfigurationError(
                f"the ledger's schema is at revision {current!r}, newer than this ocs-transfer knows"
                f" ({HEAD_REVISION}); upgrade ocs-transfer"
            )
        log.info("ledger: upgrading the schema from %s to %s", current or BASELINE_REVISION, HEAD_REVISION)
        command.upgrade(config, HEAD_REVISION)
        self._guard_legacy(conn, inspect(conn).has_table(_VERSION_TABLE))
        return HEAD_REVISION

    @staticmethod
    def _guard_legacy(conn: Connection, exists: bool) -> None:
        if not exists:
            _version.create(conn)
            conn.execute(insert(_version).values(version=_LEGACY_GUARD_VERSION))
        else:
            conn.execute(sql_update(_version).values(version=_LEGACY_GUARD_VERSION))

    def close(self) -> None:
        self.engine.dispose()
