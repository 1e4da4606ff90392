"""The ingest queue's commands, registered through the plugin hooks by
dotted path: :mod:`ocs_transfer.ingest.cli` is imported when one runs."""

from __future__ import annotations

from collections.abc import Callable

from ..hookspecs import hookimpl


@hookimpl
def ocs_transfer_register_commands(register: Callable[..., None]) -> None:
    register("ocs_transfer.ingest.cli:ingest_command", name="ingest")
    register("ocs_transfer.ingest.cli:enqueue_command", name="enqueue")
