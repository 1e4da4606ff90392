"""Alembic's environment for the ledger: runs on the connection the ledger
passes in ``config.attributes["connection"]`` (never opens its own)."""

from __future__ import annotations

from alembic import context

from ocs_transfer.transfer.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():  # a no-op inside the ledger's own transaction
    context.run_migrations()
