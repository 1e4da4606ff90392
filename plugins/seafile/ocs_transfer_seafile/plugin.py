"""Registers the ``seafile`` provider and the ``seafile`` command group
through the ocs_transfer plugin hooks."""

from __future__ import annotations

from collections.abc import Callable

from ocs_transfer.hookspecs import hookimpl


@hookimpl
def ocs_transfer_register_providers(register: Callable[..., None]) -> None:
    # By dotted path: httpx and fsspec are imported when the provider is first used.
    register("ocs_transfer_seafile.store:SeafileStore", name="seafile", schemes=("seafile",))


@hookimpl
def ocs_transfer_register_commands(register: Callable[..., None]) -> None:
    register("ocs_transfer_seafile.cli:seafile_group", name="seafile")
