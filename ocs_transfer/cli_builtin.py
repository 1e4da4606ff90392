"""Core commands that belong to no single area (``plugins``), registered
through the plugin hooks."""

from __future__ import annotations

from collections.abc import Callable

from .hookspecs import hookimpl


@hookimpl
def ocs_transfer_register_commands(register: Callable[..., None]) -> None:
    register("ocs_transfer.cli:plugins_command", name="plugins")
