"""The ingest queue's commands, registered through the plugin hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl


@hookimpl
def ocs_transfer_register_commands(register: Callable[[Any], None]) -> None:
    from .cli import COMMANDS

    for command in COMMANDS:
        register(command)
