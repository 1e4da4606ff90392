"""What deleting a source safely needs: the source's size and modification time
when scheduled, the sha256 its transfers read, and how many transfers were
scheduled for it (so purging a record can never make "all completed" true).

Revision ID: 0002_source_identity
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_source_identity"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ocs_source_files") as batch:
        batch.add_column(sa.Column("mtime", sa.Float, nullable=True))
        batch.add_column(sa.Column("sha256", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("transfer_count", sa.Integer, nullable=False, server_default="0"))
    # Existing files: the transfers still recorded are all that is known; the sha256
    # is that of their completed transfers when they agree (otherwise none, and the
    # source is never deleted). A pending deletion that lost records to a purge
    # before this upgrade is stopped.
    op.execute(
        "UPDATE ocs_source_files SET transfer_count ="
        " (SELECT count(*) FROM ocs_transfers t WHERE t.file_id = ocs_source_files.id)"
    )
    op.execute(
        "UPDATE ocs_source_files SET sha256 = (SELECT min(t.sha256) FROM ocs_transfers t"
        " WHERE t.file_id = ocs_source_files.id AND t.state = 'completed')"
        " WHERE (SELECT count(DISTINCT t.sha256) FROM ocs_transfers t"
        "        WHERE t.file_id = ocs_source_files.id AND t.state = 'completed') = 1"
    )
    op.execute(
        "UPDATE ocs_source_files SET delete_state = 'kept'"
        " WHERE delete_state = 'pending' AND transfer_count = 0"
    )
