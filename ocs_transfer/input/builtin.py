"""Built-in data-file types and the ``inspect`` command, registered through the
plugin hooks like any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl


@hookimpl
def ocs_transfer_register_datafile_types(register: Callable[[str, Any], None]) -> None:
    from .filefactory import BUILTIN_TYPES

    for extension, class_path in BUILTIN_TYPES.items():
        register(extension, class_path)


@hookimpl
def ocs_transfer_register_commands(register: Callable[..., None]) -> None:
    register("ocs_transfer.input.cli:inspect_command", name="inspect")
