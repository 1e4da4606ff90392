"""Built-in storage providers (memory, and S3/GCS when their extras are
installed), registered through the plugin hooks like any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl


@hookimpl
def ocs_transfer_register_providers(register: Callable[[type[Any]], None]) -> None:
    from .memory import MemoryStore

    register(MemoryStore)
