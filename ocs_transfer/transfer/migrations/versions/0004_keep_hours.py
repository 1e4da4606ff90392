"""Retention in hours: a destination keeps files for ``keep_hours`` (any whole
number of hours, e.g. 48) instead of whole days.

Each destination's ``keep_days`` becomes ``keep_hours = keep_days * 24`` and the
``keep_days`` column goes (``Destination.keep_days`` stays readable, computed
from the hours). Snapshots of queued transfers are left as they are: expiry
reads a snapshot's ``keep_hours`` and falls back to its ``keep_days``.

Revision ID: 0004_keep_hours
Revises: 0003_ids_identity_lengths
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004_keep_hours"
down_revision = "0003_ids_identity_lengths"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # SQLite rebuilds the table to drop a column: keep it declared AUTOINCREMENT
    table_kwargs: dict[str, Any] = {"sqlite_autoincrement": True} if sqlite else {}
    with op.batch_alter_table("ocs_destinations") as batch:
        batch.add_column(sa.Column("keep_hours", sa.Integer, nullable=True))
    op.execute("UPDATE ocs_destinations SET keep_hours = keep_days * 24 WHERE keep_days IS NOT NULL")
    with op.batch_alter_table("ocs_destinations", table_kwargs=table_kwargs) as batch:
        batch.drop_column("keep_days")
