"""The ledger's Alembic migrations (run by :meth:`ocs_transfer.transfer.ledger.Ledger.migrate`).

``versions/`` holds one file per schema change, oldest first; ``env.py`` runs
them on the connection the ledger hands over (in its transaction, under its
lock). SQLite changes tables through Alembic's batch mode (copy and rename).

To change the schema: change :mod:`ocs_transfer.transfer.models`, add a file in
``versions/`` whose ``down_revision`` is the current head, set
:data:`ocs_transfer.transfer.ledger.HEAD_REVISION` to it, and run
``tests/transfer/test_migrations.py`` (it checks that a ledger upgraded step by
step has exactly the tables a fresh one gets from the models).
"""
