"""When a transfer was last handed to a broker (the Celery executor).

``queued_at`` (nullable) records the last time a transfer was published as a
task. The dispatch pass publishes a due pending transfer that was not
published since it became due, and republishes one whose message was lost
(see :mod:`ocs_transfer.transfer.celery`). The thread-pool worker ignores it.

Revision ID: 0006_queued_at
Revises: 0005_bundles
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_queued_at"
down_revision = "0005_bundles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ocs_transfers") as batch:
        batch.add_column(sa.Column("queued_at", sa.Float, nullable=True))
