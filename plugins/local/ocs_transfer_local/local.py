"""The ``local`` provider: a directory on disk or on a mounted share.

Uploads stream into a hidden temporary file in the target directory, which is
fsynced, checked (each chunk read back and compared with the bytes that
were hashed; the size) and then renamed over the final path with
``os.replace``; the directory is fsynced after. Readers never see a partial
file, and a crash leaves at most a hidden temporary file that listings skip.

When the source is itself a regular file, the bytes are copied by the kernel
(``os.copy_file_range``) while the same pass reads them for md5, sha256 and
the read-back check (MD5 on a second core, see
:mod:`ocs_transfer.storage.hashing`); dirty pages are written back in the
background during the copy so the closing fsync is short.

Links: ``link_base_url`` + path (as ocs_archive's FileSystemStore), or, when
the directory is served by ``ocs-transfer local-cloud serve``, signed expiring
links from that server (``server_url`` plus the ``signing_key`` credential).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import IO, Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

import attrs

from ocs_transfer.exceptions import ConfigurationError, IntegrityError
from ocs_transfer.redact import Secret
from ocs_transfer.settings import Settings
from ocs_transfer.storage.base import ObjectInfo
from ocs_transfer.storage.fsspec_store import FsspecStore
from ocs_transfer.storage.hashing import DEFAULT_CHUNK_SIZE, HashingReader
from ocs_transfer.storage.paths import join_under

from .signing import signed_url

__all__ = ["LocalStore", "fsync_directory"]

#: In-progress uploads of the file server (hidden in listings too).
_SERVER_PARTIAL = ".ocs-server-partial"


def fsync_directory(directory: str) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _regular_fd(source: Any) -> int | None:
    """The descriptor of ``source`` when it is a plain regular file."""
    try:
        fd = source.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return None
    return fd if stat.S_ISREG(mode) else None


class LocalStore(FsspecStore):
    """Files in a directory."""

    name: ClassVar[str] = "local"
    schemes: ClassVar[tuple[str, ...]] = ("file",)
    credential_fields: ClassVar[tuple[str, ...]] = ("signing_key",)

    @attrs.frozen(kw_only=True)
    class Config:
        root: str  #: the directory (absolute, or relative to the working directory)
        link_base_url: str | None = None  #: links are this + the object path (ocs_archive style)
        server_url: str | None = None  #: the file server that serves ``root``: signed links (needs ``signing_key``)
        server_path: str = ""  #: where ``root`` is inside the server's root, when not at its top
        create_root: bool = True  #: create ``root`` when missing (otherwise a missing root is an error)

    def __init__(
        self,
        root: str,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        link_base_url: str | None = None,
        server_url: str | None = None,
        server_path: str = "",
        signing_key: Secret | None = None,
    ) -> None:
        from fsspec.implementations.local import LocalFileSystem

        super().__init__(
            LocalFileSystem(), root, chunk_size=chunk_size, link_base_url=link_base_url, secrets=(signing_key,)
        )
        self.root_real = os.path.realpath(root)
        self.server_url = server_url
        self.server_path = server_path.strip("/")
        self._signing_key = signing_key

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: Any,
        credentials: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
    ) -> Self:
        if not isinstance(config, cls.Config):
            raise ConfigurationError(f"the local store needs a LocalStore.Config, got {type(config).__name__}")
        if not config.root:
            raise ConfigurationError("the local store needs a root directory, e.g. ./archive or /data/archive")
        root = os.path.abspath(os.path.expanduser(config.root))
        if not os.path.isdir(root):
            if not config.create_root:
                raise ConfigurationError(
                    f"the local store root {root!r} does not exist (create it, or set create_root)"
                )
            try:
                # Several workers may create the same root at once: exist_ok, then look again.
                os.makedirs(root, exist_ok=True)
            except FileExistsError:
                pass
            except OSError as exc:
                raise ConfigurationError(f"cannot create the local store root {root!r}: {exc.strerror}") from None
            if not os.path.isdir(root):
                raise ConfigurationError(f"the local store root {root!r} exists but is not a directory")
        key = (credentials or {}).get("signing_key")
        if key is not None and not isinstance(key, Secret):
            key = Secret(str(key))
        if config.server_url and key is None:
            raise ConfigurationError(
                "server_url is set but the signing_key credential is missing: signed links need the file"
                " server's signing key"
            )
        return cls(
            root,
            chunk_size=settings.chunk_size if settings is not None else DEFAULT_CHUNK_SIZE,
            link_base_url=config.link_base_url,
            server_url=config.server_url,
            server_path=config.server_path,
            signing_key=key,
        )

    @classmethod
    def config_from_url(cls, url: str, **options: Any) -> Any:
        """``file:///data``, ``file://localhost/data``, ``./archive``, ``/abs/path``, ``~/x``."""
        if url.startswith("file:"):
            parts = urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                raise ConfigurationError(f"{url!r}: file URLs name a local path (file:///path), not a host")
            path = unquote(parts.path)
        else:
            path = url
        return cls.Config(root=os.path.abspath(os.path.expanduser(path)), **options)

    @classmethod
    def config_from_settings(cls, settings: Settings, **options: Any) -> Any:
        """``FILESYSTEM_STORAGE_ROOT_DIR`` and ``FILESYSTEM_STORAGE_BASE_URL``, as ocs_archive."""
        if not settings.filesystem_storage_root_dir:
            raise ConfigurationError("FILESTORE_TYPE=local needs FILESYSTEM_STORAGE_ROOT_DIR")
        options.setdefault("link_base_url", settings.filesystem_storage_base_url or None)
        return cls.Config(root=settings.filesystem_storage_root_dir, **options)

    def __repr__(self) -> str:
        return f"LocalStore(root={self.root!r})"

    # -- paths -----------------------------------------------------------------------------

    def _full(self, path: str) -> str:
        return str(join_under(self.root, path))  # also refuses symbolic links that leave the root

    @staticmethod
    def is_temporary(path: str) -> bool:
        return FsspecStore.is_temporary(path) or posixpath.basename(path).endswith(_SERVER_PARTIAL)

    # -- upload, verify, publish -------------------------------------------------------------

    def _ensure_parent(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)

    def _upload(
        self,
        reader: HashingReader,
        path: str,
        *,
        size: int | None,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
    ) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        flusher = _Flusher(fd)
        try:
            self._copy(reader, fd, flusher)
            flusher.finish()
        finally:
            flusher.close()
            os.close(fd)

    def _copy(self, reader: HashingReader, out: int, flusher: _Flusher) -> None:
        """Copy everything ``reader`` yields into descriptor ``out``: the
        kernel copies from a regular source file, we write otherwise. Each
        chunk is read back and compared with the bytes that were hashed, so
        a source that changed under the kernel copy, or a bad write, is
        caught here."""
        src = _regular_fd(reader.source)
        offset = reader.source.tell() if src is not None else 0
        start = offset
        check = bytearray(_CHECK_SIZE)  # the read-back buffer, reused
        while True:
            chunk = reader.read(self.chunk_size)
            if not chunk:
                return
            if src is not None:
                try:
                    _copy_range(src, out, offset, offset - start, len(chunk))
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                        raise
                    src = None  # no kernel copy between these files: write from memory from here on
            if src is None:
                _write_all(out, chunk, offset - start)
            if not _same_on_disk(out, offset - start, chunk, check):
                raise IntegrityError(
                    f"the bytes written at offset {offset - start} differ from the bytes read from the source"
                    " (did the source change during the copy?)"
                )
            offset += len(chunk)
            flusher.wrote(len(chunk))

    def _verify(self, full: str, size: int, digests: Mapping[str, str], rel: str) -> dict[str, Any]:
        # The content was compared chunk by chunk while copying; the size says nothing was lost after.
        info = self._info_raw(full)
        if info.get("size") != size:
            raise IntegrityError(f"store of {rel!r}: the file on disk has {info.get('size')} bytes, we wrote {size}")
        return info

    def _publish(self, staging: str, final: str) -> None:
        if os.path.isdir(final):
            raise IsADirectoryError(errno.EISDIR, "a directory is in the way", final)
        os.replace(staging, final)
        fsync_directory(os.path.dirname(final))

    def _discard(self, full: str) -> None:
        try:
            os.unlink(full)
        except FileNotFoundError:
            pass
        except OSError:
            super()._discard(full)

    def delete_file(self, path: str, version_id: str | None = None) -> None:
        super().delete_file(path, version_id)
        fsync_directory(os.path.dirname(self._full(path)))

    # -- reading -------------------------------------------------------------------------------

    def open(self, path: str, version_id: str | None = None) -> IO[bytes]:
        full = self._full(path)
        try:
            return open(full, "rb")
        except OSError as exc:
            self._raise(exc, f"open of {path!r} failed")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for info in super().list(prefix):
            real = os.path.realpath(os.path.join(self.root, info.path))
            if real.startswith(self.root_real.rstrip("/") + "/"):  # skip what symlinks would pull in
                yield info

    # -- links ---------------------------------------------------------------------------------

    def _sign(self, path: str, version_id: str | None, expiration: timedelta) -> str:
        if not self.server_url or self._signing_key is None:
            raise NotImplementedError
        rel = self._rel(path)
        served = f"{self.server_path}/{rel}" if self.server_path else rel
        return signed_url(self.server_url, self._signing_key, served, expiration)


_CHECK_SIZE = 1024 * 1024


def _same_on_disk(fd: int, offset: int, data: bytes, buffer: bytearray) -> bool:
    """Whether ``fd`` holds ``data`` at ``offset``, read back through
    ``buffer`` a piece at a time (bytearray == buffer is a memcmp)."""
    view = memoryview(data)
    for at in range(0, len(data), len(buffer)):
        piece = view[at : at + len(buffer)]
        target = buffer if len(piece) == len(buffer) else bytearray(len(piece))
        if os.preadv(fd, [target], offset + at) != len(piece) or target != piece:
            return False
    return True


class _Flusher:
    """Writes dirty pages back in the background while the copy goes on, so
    the final fsync has little left to do."""

    EVERY = 128 * 1024 * 1024

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.unflushed = 0
        self.pending: Future[None] | None = None
        self.pool: ThreadPoolExecutor | None = None

    def wrote(self, n: int) -> None:
        self.unflushed += n
        if self.unflushed < self.EVERY or (self.pending is not None and not self.pending.done()):
            return
        if self.pending is not None:
            self.pending.result()
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocs-transfer-flush")
        self.pending = self.pool.submit(os.fdatasync, self.fd)
        self.unflushed = 0

    def finish(self) -> None:
        if self.pending is not None:
            self.pending.result()
        os.fsync(self.fd)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def _copy_range(src: int, out: int, src_offset: int, out_offset: int, length: int) -> None:
    done = 0
    while done < length:
        n = os.copy_file_range(src, out, length - done, src_offset + done, out_offset + done)
        if n == 0:
            raise OSError(errno.EINVAL, "the source file ended early during the kernel copy")
        done += n


def _write_all(out: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        offset += (n := os.pwrite(out, view, offset))
        view = view[n:]
