"""The ledger's Alembic migrations: a ledger made before Alembic upgrades in
place with its data (SQLite from the old code's own DDL; PostgreSQL from the
baseline revision), every revision together yields exactly the models' schema,
and migrating is idempotent and refuses a newer ledger."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.storage import get_store
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine
from ocs_transfer.transfer.ledger import (
    BASELINE_REVISION,
    HEAD_REVISION,
    MIGRATIONS_DIR,
    Ledger,
    LedgerError,
    _alembic_config,
)
from ocs_transfer.transfer.models import Base

from .conftest import FakeClock, postgres_schema, unique_root

V1_DDL = Path(__file__).with_name("ledger_v1_sqlite.sql")


def test_head_revision_is_alembics_head() -> None:
    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head() == HEAD_REVISION


def _diff(ledger: Ledger) -> list[object]:
    """What differs between the database and the models (the pre-Alembic version
    table is kept on purpose, as a guard against older releases)."""
    with ledger.engine.connect() as conn:
        found = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    return [d for d in found if not (d[0] == "remove_table" and d[1].name == "ocs_transfer_schema_version")]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_revisions_step_by_step_equal_the_models(kind: str, tmp_path: Path) -> None:
    def check(url: str) -> None:
        ledger = Ledger(url)
        try:
            with ledger.engine.begin() as conn:
                command.upgrade(_alembic_config(conn), HEAD_REVISION)
            assert _diff(ledger) == []
            fresh = Ledger(url.replace("steps", "fresh")) if kind == "sqlite" else None
            if fresh is not None:
                assert fresh.migrate() == HEAD_REVISION and _diff(fresh) == []
                fresh.close()
        finally:
            ledger.close()

    if kind == "sqlite":
        check(f"sqlite:///{tmp_path / 'steps.sqlite3'}")
    else:
        with postgres_schema() as url:
            check(url)


def _v1_rows(execute: object) -> None:
    """One destination (keeping files 2 days), a file whose deletion is pending,
    two transfers (one failed), as the old code wrote them."""
    run = execute  # type: ignore[assignment]
    run("INSERT INTO ocs_destinations (id, name, display_name, provider, path, layout, comment, description, enabled,"
        " active, delete_source, keep_days, scope, owner_id, options, credentials, last_test_ok, last_test_message,"
        " last_test_at, created_at, updated_at) VALUES (7, 'backup', 'Backup', 'memory', '', 'flat', '', '', true,"
        " true, true, 2, 'personal', 'u1', '{}', '{}', NULL, '', NULL, 1.0, 1.0)")  # type: ignore[operator]
    run("INSERT INTO ocs_source_files (id, store, path, size, context, delete_source, delete_state, deleted_at,"
        " created_at) VALUES (3, 'memory://src', 'a.fits', NULL, '{}', true, 'pending', NULL, 1.0)")  # type: ignore[operator]
    for tid, state, sha in ((11, "completed", "ab" * 32), (12, "failed", "")):
        snap = json.dumps({"id": 7, "name": "backup", "provider": "memory", "path": "", "layout": "flat",
                           "delete_source": True, "keep_days": 2, "options": {}})
        run("INSERT INTO ocs_transfers (id, file_id, destination_id, destination_name, snapshot, state, attempts,"
            " next_attempt_at, last_error, lease, worker, heartbeat_at, cancel_requested, bytes_done, size, md5,"
            f" sha256, provider_checksum, remote_path, remote_version, link, created_at, updated_at) VALUES ({tid}, 3,"
            f" 7, 'backup', '{snap}', '{state}', 1, 1.0, '', NULL, 'w', NULL, false, 0, 5, '', '{sha}', '',"
            " 'a.fits', '', '', 1.0, 1.0)")  # type: ignore[operator]


def _check_upgraded(ledger: Ledger) -> None:
    with ledger.engine.connect() as conn:
        dest = conn.execute(text("SELECT id, name, layout, uuid FROM ocs_destinations")).one()
        assert dest[:3] == (7, "backup", "flat") and len(dest[3]) == 36
        assert conn.execute(text("SELECT keep_hours FROM ocs_destinations")).scalar() == 48  # 2 days
        file = conn.execute(text("SELECT transfer_count, sha256, delete_state FROM ocs_source_files")).one()
        assert tuple(file) == (2, "ab" * 32, "pending")
        rows = conn.execute(text("SELECT id, state, snapshot FROM ocs_transfers ORDER BY id")).all()
        assert [(r[0], r[1]) for r in rows] == [(11, "completed"), (12, "failed")]  # nothing cascaded away
        assert {json.loads(r[2])["uuid"] for r in rows} == {dest[3]}
        assert conn.execute(text("SELECT version FROM ocs_transfer_schema_version")).scalar() == 2
        # 0005: the old rows are files (not bundles), their links of unknown expiry; no bundle members
        assert conn.execute(text("SELECT kind FROM ocs_source_files")).scalar() == "file"
        assert conn.execute(text("SELECT count(*) FROM ocs_transfers WHERE link_expires_at IS NULL")).scalar() == 2
        assert conn.execute(text("SELECT count(*) FROM ocs_bundle_members")).scalar() == 0
    assert _diff(ledger) == []
    assert ledger.migrate() == HEAD_REVISION  # again: nothing to do


def test_pre_alembic_sqlite_ledger_upgrades_in_place(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(db)
    raw.executescript(V1_DDL.read_text())
    _v1_rows(raw.execute)
    raw.commit()
    raw.close()
    ledger = Ledger(f"sqlite:///{db}")
    try:
        assert ledger.schema_revision() is None
        assert ledger.migrate() == HEAD_REVISION
        _check_upgraded(ledger)
        with ledger.engine.connect() as conn:  # ids are never reused from now on
            for table in ("ocs_transfers", "ocs_destinations"):
                sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}).scalar()
                assert "AUTOINCREMENT" in sql, table
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        ledger.close()


def test_pre_alembic_postgresql_ledger_upgrades_in_place() -> None:
    with postgres_schema() as url:
        ledger = Ledger(url)
        try:
            with ledger.engine.begin() as conn:  # the baseline tables, as the old code made them
                command.upgrade(_alembic_config(conn), BASELINE_REVISION)
                conn.exec_driver_sql("DROP TABLE alembic_version")
                conn.exec_driver_sql("CREATE TABLE ocs_transfer_schema_version (version INTEGER NOT NULL)")
                conn.exec_driver_sql("INSERT INTO ocs_transfer_schema_version VALUES (1)")
                _v1_rows(conn.exec_driver_sql)
            assert ledger.migrate() == HEAD_REVISION
            _check_upgraded(ledger)
        finally:
            ledger.close()


def test_newer_or_foreign_ledgers_are_refused(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'n.sqlite3'}")
    try:
        ledger.migrate()
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
        with pytest.raises(ConfigurationError, match="newer than this ocs-transfer knows"):
            ledger.migrate()
    finally:
        ledger.close()


def test_ledger_upgrade_command(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ocs_transfer.cli import main

    db = tmp_path / "cli.sqlite3"
    raw = sqlite3.connect(db)
    raw.executescript(V1_DDL.read_text())
    raw.close()
    env = {"OCS_TRANSFER_LEDGER_URL": f"sqlite:///{db}"}
    first = CliRunner().invoke(main, ["ledger", "upgrade"], env=env)
    assert first.exit_code == 0 and f"upgraded from none to {HEAD_REVISION}" in first.output
    again = CliRunner().invoke(main, ["ledger", "upgrade"], env=env)
    assert again.exit_code == 0 and "up to date" in again.output


def test_database_errors_are_clear_messages(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'e.sqlite3'}")
    try:
        ledger.migrate()
        with pytest.raises(LedgerError, match=r"the ledger database refused the change: NOT NULL constraint") as err:
            with ledger.session() as session:
                session.execute(text("INSERT INTO ocs_source_files (store) VALUES ('x')"))
        assert "INSERT" not in str(err.value)
    finally:
        ledger.close()


def test_an_upgrade_that_would_break_references_changes_nothing(tmp_path: Path) -> None:
    """A pre-Alembic SQLite ledger with a transfer whose file row is missing
    (possible where foreign keys were off): the upgrade refuses and rolls back."""
    db = tmp_path / "broken.sqlite3"
    raw = sqlite3.connect(db)  # Python's sqlite3 leaves foreign keys off
    raw.executescript(V1_DDL.read_text())
    _v1_rows(raw.execute)
    raw.execute("DELETE FROM ocs_source_files")
    raw.commit()
    raw.close()
    ledger = Ledger(f"sqlite:///{db}")
    try:
        with pytest.raises(LedgerError, match="broken reference; nothing was changed"):
            ledger.migrate()
        assert ledger.schema_revision() is None
        with ledger.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM ocs_transfers")).scalar() == 2
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        ledger.close()


def test_retention_in_days_is_kept_in_hours_after_upgrade(tmp_path: Path) -> None:
    """An old ledger's destination with keep_days 2 keeps its files 48 hours
    after the upgrade, for the transfers queued before it too (their snapshots
    still say keep_days)."""
    root = unique_root("oldkeep")
    get_store("memory", root=root).put(io.BytesIO(b"old data"), "a.fits")
    db = tmp_path / "old-keep.sqlite3"
    raw = sqlite3.connect(db)
    raw.executescript(V1_DDL.read_text())
    _v1_rows(raw.execute)
    options = json.dumps({"root": root})
    raw.execute("UPDATE ocs_destinations SET options = ?", (options,))
    for tid, snapshot in list(raw.execute("SELECT id, snapshot FROM ocs_transfers")):
        snap = json.loads(snapshot) | {"options": {"root": root}}
        raw.execute("UPDATE ocs_transfers SET snapshot = ?, finished_at = 1000.0 WHERE id = ?", (json.dumps(snap), tid))
    raw.commit()
    raw.close()
    ledger = Ledger(f"sqlite:///{db}")
    try:
        assert ledger.migrate() == HEAD_REVISION
        dests = Destinations(ledger, None)
        dest = dests.get("backup")
        assert (dest.keep_hours, dest.keep_days) == (48, 2)
        clock = FakeClock(1000.0 + 47 * 3600)
        engine = Engine(ledger, dests, clock=clock)
        assert engine.expire() == 0 and get_store("memory", root=root).exists("a.fits")
        clock.advance(2 * 3600)
        assert engine.expire() == 1 and not get_store("memory", root=root).exists("a.fits")
        assert engine.get(11).expired_at == clock.now
    finally:
        ledger.close()
