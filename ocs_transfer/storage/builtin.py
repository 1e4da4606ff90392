"""Built-in storage providers (memory, and S3/GCS when their extras are
installed), registered through the plugin hooks like any third-party plugin,
by dotted path: a provider's module is imported when it is first used."""

from __future__ import annotations

from collections.abc import Callable

from ..hookspecs import hookimpl


@hookimpl
def ocs_transfer_register_providers(register: Callable[..., None]) -> None:
    register("ocs_transfer.storage.memory:MemoryStore", name="memory", schemes=("memory",))
    register("ocs_transfer.storage.s3:S3Store", name="s3", schemes=("s3", "s3a"))
    register("ocs_transfer.storage.gcs:GCSStore", name="gcs", schemes=("gs", "gcs"))


@hookimpl
def ocs_transfer_register_commands(register: Callable[..., None]) -> None:
    register("ocs_transfer.storage.cli:send_command", name="send")
    register("ocs_transfer.storage.bundle_cli:bundle_command", name="bundle")
