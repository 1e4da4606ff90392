"""A minimal directory store for the kill9 tests (a persistent store that
survives the worker process). Uses FsspecStore's staged, atomic publish over
fsspec's local filesystem. Replace with the ``local`` plugin once it lands."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

import attrs

from ocs_transfer.hookspecs import hookimpl
from ocs_transfer.settings import Settings
from ocs_transfer.storage.fsspec_store import FsspecStore


class DirStore(FsspecStore):
    name: ClassVar[str] = "testdir"
    schemes: ClassVar[tuple[str, ...]] = ()

    @attrs.frozen(kw_only=True)
    class Config:
        root: str

    @classmethod
    def from_config(
        cls, config: Any, credentials: Mapping[str, Any] | None = None, *, settings: Settings | None = None
    ) -> Self:
        from fsspec.implementations.local import LocalFileSystem

        chunk = settings.chunk_size if settings is not None else 64 * 1024
        return cls(LocalFileSystem(), config.root, chunk_size=chunk)


class DirPlugin:
    @hookimpl
    def ocs_transfer_register_providers(self, register: Callable[[type[Any]], None]) -> None:
        register(DirStore)
