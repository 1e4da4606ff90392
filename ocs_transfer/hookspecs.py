"""Plugin hook specifications.

A plugin is a module (or object) with functions marked ``@hookimpl`` whose names
match the specifications below, made known to ocs_transfer through an entry point
in the ``ocs_transfer`` group::

    # pyproject.toml of the plugin
    [project.entry-points.ocs_transfer]
    myprovider = "ocs_transfer_myprovider"

Every hook takes a ``register`` callback, so one plugin can register many
things. Registering a name that another plugin already registered raises
:class:`~ocs_transfer.exceptions.PluginError`. The hooks are documented with
examples in ``docs/plugins.md``; a test keeps that page in step with this file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "ocs_transfer"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ocs_transfer_register_providers(register: Callable[[type[Any]], None]) -> None:
    """Register storage providers.

    Call ``register(StoreClass)`` once per provider. ``StoreClass`` is a
    subclass of :class:`ocs_transfer.storage.FileStore` with a ``name`` class
    variable (the provider name users type), a frozen attrs ``Config`` and a
    ``from_config`` class method.

    Or register it by dotted path, ``register("pkg.module:StoreClass",
    name="myprovider", schemes=("myp",))``: the module is imported only when
    the provider is first used, so a program that uses another provider never
    pays for its imports. ``name`` and ``schemes`` must match the class's.
    """


@hookspec
def ocs_transfer_register_datafile_types(register: Callable[[str, type[Any] | str], None]) -> None:
    """Register data-file classes for file extensions.

    Call ``register(".ext", DataFileSubclass)`` (or a dotted path to one, which
    is imported only when a file of that type is opened). Extensions include the
    leading dot and may be compound (``".fits.fz"``); the longest match wins.
    """


@hookspec
def ocs_transfer_register_commands(register: Callable[[Any], None]) -> None:
    """Register ``ocs-transfer`` subcommands.

    Call ``register("pkg.module:command", name="name")`` with the dotted path
    of a :class:`click.Command` or :class:`click.Group` and its name, which
    becomes the subcommand name: the module is imported only when the command
    runs (or ``--help`` lists it). ``register(command)`` with the object also
    works, at the price of importing its module whenever any command starts.
    """


@hookspec
def ocs_transfer_transfer_finished(transfer: Any) -> None:
    """A transfer reached a final state: completed (with its ``link``),
    failed for good (``last_error`` says why) or cancelled.

    ``transfer`` is an :class:`ocs_transfer.transfer.engine.Transfer` (a frozen
    record, no credentials). Use it to notify users. It runs in the worker
    thread that finished the transfer, so keep it short; exceptions it raises
    are logged and ignored.
    """


@hookspec
def ocs_transfer_file_ingested(ingested: Any) -> None:
    """A file was ingested from the ingest queue (or by
    :meth:`ocs_transfer.ingest.Ingester.ingest`): stored in the file store
    and/or scheduled to its destinations.

    ``ingested`` is an :class:`ocs_transfer.ingest.Ingested`: the file's path,
    the archive record and headers, where it is in the store and its version
    set, the transfers scheduled. This is where a site adds its own step, such
    as posting the record to its science archive. It runs before the message
    is acknowledged, and again when a message is delivered again (then
    ``already_stored`` may be true), so make it idempotent. An exception it
    raises is classified as any other: a ``RetryError`` retries the message
    later, a ``DoNotRetryError`` moves it to the dead-letter queue.
    """
