"""Registers the ``gdrive`` provider and the ``gdrive`` command group."""

from __future__ import annotations

from collections.abc import Callable

from ocs_transfer.hookspecs import hookimpl


@hookimpl
def ocs_transfer_register_providers(register: Callable[..., None]) -> None:
    register("ocs_transfer_gdrive.store:GdriveStore", name="gdrive", schemes=("gdrive",))


@hookimpl
def ocs_transfer_register_commands(register: Callable[..., None]) -> None:
    register("ocs_transfer_gdrive.cli:gdrive", name="gdrive")
