"""Dropbox storage provider for ocs_transfer: the ``dropbox`` provider
(:class:`ocs_transfer_dropbox.store.DropboxStore`), the ``ocs-transfer
dropbox authorize`` command, and :mod:`ocs_transfer_dropbox.auth` for web
services. Nothing heavy is imported until a store is built."""

from __future__ import annotations

from collections.abc import Callable

from ocs_transfer import hookimpl

__version__ = "0.1.0"


@hookimpl
def ocs_transfer_register_providers(register: Callable[..., None]) -> None:
    register("ocs_transfer_dropbox.store:DropboxStore", name="dropbox", schemes=("dropbox",))


@hookimpl
def ocs_transfer_register_commands(register: Callable[..., None]) -> None:
    register("ocs_transfer_dropbox.cli:dropbox_group", name="dropbox")
