"""Built-in transfer commands, registered through the plugin hooks."""

from __future__ import annotations

from collections.abc import Callable

from ..hookspecs import hookimpl

#: Command name -> its object in :mod:`ocs_transfer.transfer.cli`, imported when the command runs.
COMMANDS: dict[str, str] = {
    "dest": "dest_group", "schedule": "schedule_command", "worker": "worker_command", "beat": "beat_command",
    "status": "status_command",
    "retry": "retry_command", "cancel": "cancel_command", "purge": "purge_command", "expire": "expire_command",
    "ledger": "ledger_group", "keys": "keys_group", "sweep": "sweep_command",
}  # fmt: skip


@hookimpl
def ocs_transfer_register_commands(register: Callable[..., None]) -> None:
    for name, attribute in COMMANDS.items():
        register(f"ocs_transfer.transfer.cli:{attribute}", name=name)
