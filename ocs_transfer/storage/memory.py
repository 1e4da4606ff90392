"""The ``memory`` provider: fsspec's in-process memory filesystem, indexed.

For tests, demos and dry runs. Objects live as long as the process and are
shared by every memory store in it, so give each use its own root
(``memory://run-42``).

The filesystem is :class:`~ocs_transfer.storage.memoryfs.IndexedMemoryFileSystem`:
fsspec's, with an index, so that storing thousands of objects does not slow
each next one down.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any, ClassVar, Self

import attrs

from ..exceptions import ConfigurationError
from .fsspec_store import FsspecStore
from .options import split_url

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["MemoryStore"]


class MemoryStore(FsspecStore):
    """Objects in this process's memory."""

    name: ClassVar[str] = "memory"
    schemes: ClassVar[tuple[str, ...]] = ("memory",)

    @attrs.frozen(kw_only=True)
    class Config:
        root: str = "/ocs-transfer"  #: a folder in the process-wide memory filesystem
        link_base_url: str | None = None  #: where get_url points; memory objects have no links otherwise

    @classmethod
    def from_config(
        cls,
        config: Any,
        credentials: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
    ) -> Self:
        from .memoryfs import IndexedMemoryFileSystem

        if not isinstance(config, cls.Config):
            raise ConfigurationError(f"memory store needs a MemoryStore.Config, got {type(config).__name__}")
        root = "/" + config.root.strip("/")
        if root == "/":
            raise ConfigurationError("memory store root must name a folder, e.g. memory://my-run")
        chunk = settings.chunk_size if settings is not None else 1024 * 1024
        return cls(IndexedMemoryFileSystem(), root, chunk_size=chunk, link_base_url=config.link_base_url)

    @classmethod
    def config_from_url(cls, url: str, **options: Any) -> Any:
        parts = split_url(url)
        return cls.config_from_options({"root": (parts.netloc + parts.path) or "ocs-transfer", **options})

    def open(self, path: str, version_id: str | None = None) -> IO[bytes]:
        # fsspec's memory filesystem hands every reader of a path the same
        # BytesIO (one shared position), so two concurrent readers corrupt each
        # other's reads. Give each reader its own view of the bytes.
        shared = super().open(path, version_id)
        if not isinstance(shared, io.BytesIO):
            return shared
        with shared.getbuffer() as view:
            return io.BytesIO(view.tobytes())

    def _info_raw(self, full: str, version_id: str | None = None) -> dict[str, Any]:
        # fsspec's memory info looks at every key for children before it looks
        # the path up (O(objects) per call). Every caller asks about a file:
        # the object's own key answers, and without one it is not a file (a
        # folder or nothing), which is all they need to know.
        from fsspec.implementations.memory import MemoryFileSystem

        if version_id is not None or type(self.fs).info is not MemoryFileSystem.info:  # a file system of its own
            return super()._info_raw(full, version_id)
        path = self.fs._strip_protocol(full)
        found = self.fs.store.get(path)
        if found is not None:
            return {"name": path, "size": found.size, "type": "file", "created": getattr(found, "created", None)}
        if path in self.fs.pseudo_dirs:
            return {"name": path, "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def _sign(self, path: str, version_id: str | None, expiration: timedelta) -> str:
        return f"memory://{path.lstrip('/')}"

    def _publish(self, staging: str, final: str) -> None:
        # Not fs.mv: fsspec's generic mv/copy expand glob characters ("?",
        # "[", "*") in names, which mangles legal names such as "hello?".
        # Renaming the dict entry is atomic and keeps names as they are.
        src, dst = self.fs._strip_protocol(staging), self.fs._strip_protocol(final)
        memfile = self.fs.store.pop(src)
        memfile.path = dst
        self.fs.store[dst] = memfile
