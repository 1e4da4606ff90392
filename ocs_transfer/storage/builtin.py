"""Built-in storage providers (memory, and S3/GCS when their extras are
installed), registered through the plugin hooks like any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl


@hookimpl
def ocs_transfer_register_providers(register: Callable[[type[Any]], None]) -> None:
    from .gcs import GCSStore
    from .memory import MemoryStore
    from .s3 import S3Store

    register(MemoryStore)
    register(S3Store)
    register(GCSStore)


@hookimpl
def ocs_transfer_register_commands(register: Callable[[Any], None]) -> None:
    from .cli import send_command

    register(send_command)
