"""Ids are never reused; destinations get a uuid that transfers keep; columns
holding what users type are unbounded text.

SQLite reuses the largest rowid after a delete unless a table is declared
``AUTOINCREMENT``, so a transfer queued for a removed destination A could run
against a new destination B with A's id. The tables are rebuilt with
``AUTOINCREMENT`` (batch mode copies every row) and each destination gets a
uuid; each transfer's snapshot gets the uuid of the destination that has its
destination id now. The ``layout`` (templates are long), ``display_name``,
``owner_id``, ``provider`` and ``worker`` columns become ``TEXT``
(``VARCHAR(32)`` refused the documented template layout on PostgreSQL).

Revision ID: 0003_ids_identity_lengths
Revises: 0002_source_identity
"""

from __future__ import annotations

import json
import uuid
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision = "0003_ids_identity_lengths"
down_revision = "0002_source_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    # SQLite: rebuild to declare AUTOINCREMENT; PostgreSQL's sequences never reuse ids
    recreate: Literal["always", "auto"] = "always" if sqlite else "auto"
    autoinc = {"sqlite_autoincrement": True}
    with op.batch_alter_table("ocs_destinations", recreate=recreate, table_kwargs=autoinc) as batch:
        batch.add_column(sa.Column("uuid", sa.String(36), nullable=True))
        for name in ("display_name", "provider", "layout", "owner_id"):
            batch.alter_column(name, type_=sa.Text, existing_nullable=False)
    destinations = sa.table("ocs_destinations", sa.column("id", sa.Integer), sa.column("uuid", sa.String))
    by_id: dict[int, str] = {}
    for (dest_id,) in bind.execute(sa.select(destinations.c.id)):
        by_id[dest_id] = str(uuid.uuid4())
        bind.execute(sa.update(destinations).where(destinations.c.id == dest_id).values(uuid=by_id[dest_id]))
    with op.batch_alter_table("ocs_destinations", recreate="auto") as batch:
        batch.alter_column("uuid", existing_type=sa.String(36), nullable=False)
        batch.create_unique_constraint("uq_ocs_destinations_uuid", ["uuid"])

    with op.batch_alter_table("ocs_source_files", recreate=recreate, table_kwargs=autoinc):
        pass
    with op.batch_alter_table("ocs_transfers", recreate=recreate, table_kwargs=autoinc) as batch:
        batch.alter_column("worker", type_=sa.Text, existing_nullable=False)
    transfers = sa.table("ocs_transfers", sa.column("id", sa.Integer), sa.column("snapshot", sa.Text))
    for transfer_id, text in bind.execute(sa.select(transfers.c.id, transfers.c.snapshot)):
        snap = json.loads(text)
        # the destination that has this id now; "" (matches none) when it was removed
        snap["uuid"] = by_id.get(snap.get("id"), "")
        bind.execute(
            sa.update(transfers).where(transfers.c.id == transfer_id).values(snapshot=json.dumps(snap, sort_keys=True))
        )
