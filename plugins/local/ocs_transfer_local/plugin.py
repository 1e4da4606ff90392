"""Registers the ``local`` and ``webdav`` providers and the ``local-cloud``
command group through the ocs_transfer plugin hooks."""

from __future__ import annotations

from collections.abc import Callable

from ocs_transfer.hookspecs import hookimpl


@hookimpl
def ocs_transfer_register_providers(register: Callable[..., None]) -> None:
    # By dotted path: a provider's module (and its client library) is imported when it is first used.
    register("ocs_transfer_local.local:LocalStore", name="local", schemes=("file",))
    register("ocs_transfer_local.webdav:WebdavStore", name="webdav", schemes=("webdav+https", "webdav+http"))


@hookimpl
def ocs_transfer_register_commands(register: Callable[..., None]) -> None:
    register("ocs_transfer_local.cli:local_cloud", name="local-cloud")
