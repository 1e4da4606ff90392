"""What object stores with buckets (S3, GCS) share on top of
:class:`~ocs_transfer.storage.fsspec_store.FsspecStore`: ``scheme://bucket/prefix``
URLs, a root of ``bucket/prefix``, no directories, uploads that bypass the
filesystem's listing cache, a provider-specific error translation, and the
``Content-Disposition`` objects are stored with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, NoReturn
from urllib.parse import quote

from ..exceptions import ConfigurationError, OcsTransferError
from ..retry import translate
from .base import ObjectInfo
from .fsspec_store import FsspecStore
from .options import split_url

__all__ = ["BucketStore", "content_disposition"]


def content_disposition(filename: str) -> str:
    """``attachment`` with the file name, ASCII-safe (RFC 6266 / RFC 5987)."""
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_").replace("\\", "_")
    header = f'attachment; filename="{ascii_name}"'
    if ascii_name != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header


class BucketStore(FsspecStore):
    """Base of the bucket providers. Subclasses set ``translator`` (foreign
    error -> ours) and build ``root`` with :meth:`bucket_root`."""

    atomic_writes: ClassVar[bool] = True
    #: ``translator(exc, message, secrets=...)``: the provider's error translation.
    translator: ClassVar[Callable[..., OcsTransferError]] = staticmethod(translate)

    @staticmethod
    def bucket_root(bucket: str, prefix: str) -> str:
        return "/".join(p for p in (bucket, prefix.strip("/")) if p)

    @classmethod
    def config_from_url(cls, url: str, **options: Any) -> Any:
        """``scheme://bucket/prefix`` plus config options."""
        parts = split_url(url)
        if not parts.netloc:
            raise ConfigurationError(f"a {cls.name} URL names a bucket: {parts.scheme}://bucket/prefix, got {url!r}")
        return cls.config_from_options({"bucket": parts.netloc, "prefix": parts.path.strip("/"), **options})

    def _raise(self, exc: BaseException, message: str) -> NoReturn:
        if isinstance(exc, OcsTransferError) or not isinstance(exc, Exception):
            raise exc
        raise type(self).translator(exc, message, secrets=self._secrets) from exc

    def _ensure_parent(self, path: str) -> None:
        pass  # buckets have no directories

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.fs.invalidate_cache()  # uploads bypass the filesystem's listing cache
        return super().list(prefix)
