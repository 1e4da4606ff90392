"""Bundles: a scheduled source can be a zip of many files made when it is sent.

``ocs_source_files.kind`` says what a row is (``file`` for every row so far,
or ``bundle``); ``ocs_bundle_members`` lists a bundle's files; transfers
record when their link stops working (``link_expires_at``). Existing rows are
files and keep everything they had.

Revision ID: 0005_bundles
Revises: 0004_keep_hours
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_bundles"
down_revision = "0004_keep_hours"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ocs_source_files") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="file"))
    with op.batch_alter_table("ocs_transfers") as batch:
        batch.add_column(sa.Column("link_expires_at", sa.Float, nullable=True))
    op.create_table(
        "ocs_bundle_members",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("file_id", sa.Integer, sa.ForeignKey("ocs_source_files.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("store", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime", sa.Float, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_ocs_bundle_members_file", "ocs_bundle_members", ["file_id", "position"])
