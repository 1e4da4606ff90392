"""The ledger as first released (before Alembic: "schema version 1").

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocs_destinations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("layout", sa.String(32), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("delete_source", sa.Boolean, nullable=False),
        sa.Column("keep_days", sa.Integer, nullable=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("owner_id", sa.String(200), nullable=False),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("credentials", sa.Text, nullable=False),
        sa.Column("last_test_ok", sa.Boolean, nullable=True),
        sa.Column("last_test_message", sa.Text, nullable=False),
        sa.Column("last_test_at", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ocs_destinations_scope_owner", "ocs_destinations", ["scope", "owner_id"])
    op.create_table(
        "ocs_source_files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("store", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("delete_source", sa.Boolean, nullable=False),
        sa.Column("delete_state", sa.String(16), nullable=False),
        sa.Column("deleted_at", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ocs_transfers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("file_id", sa.Integer, sa.ForeignKey("ocs_source_files.id", ondelete="CASCADE"), nullable=False),
        sa.Column("destination_id", sa.Integer, nullable=False),
        sa.Column("destination_name", sa.String(200), nullable=False),
        sa.Column("snapshot", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("lease", sa.String(64), nullable=True),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("bytes_done", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("provider_checksum", sa.Text, nullable=False),
        sa.Column("remote_path", sa.Text, nullable=False),
        sa.Column("remote_version", sa.Text, nullable=False),
        sa.Column("link", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("expired_at", sa.Float, nullable=True),
    )
    op.create_index("ix_ocs_transfers_due", "ocs_transfers", ["state", "next_attempt_at"])
    op.create_index("ix_ocs_transfers_file", "ocs_transfers", ["file_id"])
