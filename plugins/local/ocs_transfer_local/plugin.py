"""Registers the ``local`` and ``webdav`` providers and the ``local-cloud``
command group through the ocs_transfer plugin hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ocs_transfer.hookspecs import hookimpl


@hookimpl
def ocs_transfer_register_providers(register: Callable[[type[Any]], None]) -> None:
    from .local import LocalStore
    from .webdav import WebdavStore

    register(LocalStore)
    register(WebdavStore)


@hookimpl
def ocs_transfer_register_commands(register: Callable[[Any], None]) -> None:
    from .cli import local_cloud

    register(local_cloud)
