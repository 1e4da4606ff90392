"""The ``local`` provider: a directory on disk or on a mounted share.

Uploads stream into a hidden temporary file in the target directory, which is
fsynced and then renamed over the final path with ``os.replace``; the
directory is fsynced after, and only then is the file reported stored.
Readers never see a partial file, and a crash leaves at most a hidden
temporary file that listings skip. Uploads running at once share their
directory fsyncs (:mod:`ocs_transfer_local.durable`).

The copy reads the source straight into page-aligned buffers, which are
hashed (md5 and sha256, MD5 on a second core, see
:mod:`ocs_transfer.storage.hashing`) and written from the same memory, so
what is written is exactly what was hashed. Where the file system allows it
the writes bypass the page cache (``O_DIRECT``), which saves the kernel's
copy and the write-back, and every chunk is read back from the device and
compared: the verification reads what the disk holds, not a cached page.
Elsewhere (file systems without direct I/O) writes are buffered and the
read-back compares what the kernel keeps. Small files (up to
:data:`_SMALL_FILE`) are written through the page cache by the caller's
thread and read back from the disk after their fsync (:class:`_SmallWriter`).

Links: ``link_base_url`` + path (as ocs_archive's FileSystemStore), or, when
the directory is served by ``ocs-transfer local-cloud serve``, signed expiring
links from that server (``server_url`` plus the ``signing_key`` credential).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import posixpath
import stat
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, wait
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import unquote

import attrs

from ocs_transfer.exceptions import ConfigurationError, IntegrityError
from ocs_transfer.redact import Secret
from ocs_transfer.storage.base import ObjectInfo
from ocs_transfer.storage.fsspec_store import FsspecStore
from ocs_transfer.storage.hashing import DEFAULT_CHUNK_SIZE, BufferPool, BufferRing, HashingReader
from ocs_transfer.storage.lanes import Lane, take_lane
from ocs_transfer.storage.options import split_url
from ocs_transfer.storage.paths import join_under

from .durable import DIRECTORIES, DirectorySync, fsync_directory
from .signing import signed_url

if TYPE_CHECKING:
    from ocs_transfer.settings import Settings

__all__ = ["LocalStore", "fsync_directory"]

#: In-progress uploads of the file server (hidden in listings too).
_SERVER_PARTIAL = ".ocs-server-partial"


class LocalStore(FsspecStore):
    """Files in a directory."""

    name: ClassVar[str] = "local"
    schemes: ClassVar[tuple[str, ...]] = ("file",)
    credential_fields: ClassVar[tuple[str, ...]] = ("signing_key",)
    endpoint_options: ClassVar[tuple[str, ...]] = ("server_url", "server")

    @classmethod
    def local_paths(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        root = options.get("root")
        return (str(root),) if root else ()

    @attrs.frozen(kw_only=True)
    class Config:
        root: str  #: the directory (absolute, or relative to the working directory)
        link_base_url: str | None = None  #: links are this + the object path (ocs_archive style)
        server_url: str | None = None  #: the file server that serves ``root``: signed links (needs ``signing_key``)
        server_path: str = ""  #: where ``root`` is inside the server's root, when not at its top
        create_root: bool = True  #: create ``root`` when missing (otherwise a missing root is an error)
        #: verify each chunk by reading it back from the disk (not the page cache, where direct I/O works)
        read_back: bool = True

    def __init__(
        self,
        root: str,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        link_base_url: str | None = None,
        server_url: str | None = None,
        server_path: str = "",
        signing_key: Secret | None = None,
        read_back: bool = True,
    ) -> None:
        # fsspec's LocalFileSystem (for listing and deleting) is made on first use: storing needs only os.
        super().__init__(None, root, chunk_size=chunk_size, link_base_url=link_base_url, secrets=(signing_key,))
        self.root_real = os.path.realpath(root)
        self.server_url = server_url
        self.server_path = server_path.strip("/")
        self._signing_key = signing_key
        self.read_back = read_back
        #: makes renames durable; shared with every local store of the process, so that concurrent
        #: uploads to one folder share its fsyncs (see :mod:`ocs_transfer_local.durable`)
        self.directories: DirectorySync = DIRECTORIES
        #: the copy's buffers, reused from one upload to the next
        self._buffers = BufferPool(_buffer_size(chunk_size), keep=4 * (_BUFFERS + 1))

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
            read_back=config.read_back,
        )

    @classmethod
    def config_from_url(cls, url: str, **options: Any) -> Any:
        """``file:///data``, ``file://localhost/data``, ``./archive``, ``/abs/path``, ``~/x``."""
        if url.startswith("file:"):
            parts = split_url(url)
            if parts.netloc not in ("", "localhost"):
                raise ConfigurationError(f"{url!r}: file URLs name a local path (file:///path), not a host")
            path = unquote(parts.path)
        else:
            path = url
        return cls.config_from_options({"root": os.path.abspath(os.path.expanduser(path)), **options})

    @classmethod
    def config_from_settings(cls, settings: Settings, **options: Any) -> Any:
        """``FILESYSTEM_STORAGE_ROOT_DIR`` and ``FILESYSTEM_STORAGE_BASE_URL``, as ocs_archive."""
        if not settings.filesystem_storage_root_dir:
            raise ConfigurationError("FILESTORE_TYPE=local needs FILESYSTEM_STORAGE_ROOT_DIR")
        options.setdefault("link_base_url", settings.filesystem_storage_base_url or None)
        return cls.Config(root=settings.filesystem_storage_root_dir, **options)

    def __repr__(self) -> str:
        return f"LocalStore(root={self.root!r})"

    def _make_fs(self) -> Any:
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem()

    # -- paths -----------------------------------------------------------------------------

    def _full(self, path: str) -> str:
        # also refuses symbolic links that leave the root
        return str(join_under(self.root, path, real_root=self.root_real))

    @staticmethod
    def is_temporary(path: str) -> bool:
        return FsspecStore.is_temporary(path) or posixpath.basename(path).endswith(_SERVER_PARTIAL)

    # -- upload, verify, publish -------------------------------------------------------------

    def _ensure_parent(self, path: str) -> None:
        parent = os.path.dirname(path)
        if os.path.isdir(parent):
            return
        made: list[str] = []  # the folders this call creates, top first
        folder = parent
        while folder not in (self.root, os.path.dirname(folder)) and not os.path.isdir(folder):
            made.insert(0, folder)
            folder = os.path.dirname(folder)
        os.makedirs(parent, exist_ok=True)
        for folder in made:  # a new folder's name is durable once its parent is synced
            self.directories.sync(os.path.dirname(folder))

    def _upload(
        self,
        reader: HashingReader,
        path: str,
        *,
        size: int | None,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        small = size is not None and size <= _SMALL_FILE
        fd = _open_new(path, direct=not small)
        try:
            with (
                (_SmallWriter(fd, self._buffers, read_back=self.read_back) if small
                 else _Writer(fd, self._buffers, read_back=self.read_back)) as writer,
                BufferRing(1 if small else _BUFFERS, self._buffers) as ring,  # leaves first: waits for every write
            ):  # fmt: skip
                offset = 0
                while True:
                    slot, view = ring.next()
                    count, hashing = reader.fill(view)
                    if not count:
                        break
                    ring.hold(slot, *hashing, writer.submit(view[:count], offset))
                    offset += count
                writer.finish()
        finally:
            os.close(fd)

    def _info_raw(self, full: str, version_id: str | None = None) -> dict[str, Any]:
        # What fsspec's LocalFileSystem.info reports that we use, from one stat (no fsspec needed to store).
        st = os.stat(full)
        kind = "directory" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
        return {"name": full, "size": st.st_size, "type": kind, "mtime": st.st_mtime}

    def _verify(self, full: str, size: int, digests: Mapping[str, str], rel: str) -> dict[str, Any]:
        # What was written is exactly what was hashed (one buffer for both), and with read_back every
        # chunk was read back from the disk and compared; the size says nothing was lost after.
        info = self._info_raw(full)
        if info.get("size") != size:
            raise IntegrityError(f"store of {rel!r}: the file on disk has {info.get('size')} bytes, we wrote {size}")
        return info

    def _publish(self, staging: str, final: str) -> None:
        if os.path.isdir(final):
            raise IsADirectoryError(errno.EISDIR, "a directory is in the way", final)
        os.replace(staging, final)
        # put() reports the file stored only after this: an fsync of its folder that began after the rename.
        self.directories.sync(os.path.dirname(final))

    def _discard(self, full: str) -> None:
        try:
            os.unlink(full)
        except FileNotFoundError:
            pass
        except OSError:
            super()._discard(full)

    def delete_file(self, path: str, version_id: str | None = None) -> None:
        super().delete_file(path, version_id)
        self.directories.sync(os.path.dirname(self._full(path)))

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


#: Files up to this size are written through the page cache (see :class:`_SmallWriter`).
_SMALL_FILE = 256 * 1024
#: Buffers in flight per upload: one being filled and hashed, one or two being written and read back.
_BUFFERS = 4
#: Direct I/O wants offsets, lengths and memory aligned to the device's logical block; 4 KiB covers them all.
_ALIGN = 4096
#: Buffered writes (no O_DIRECT here) are written back this often while the copy goes on.
_WRITEBACK_EVERY = 128 * 1024 * 1024


def _buffer_size(chunk_size: int) -> int:
    """The chunk size rounded up to whole 4 KiB blocks, and at most 4 MiB:
    an upload holds five buffers (four in the ring, one for the read-back),
    20 MiB, so four concurrent uploads stay near 120 MiB of RSS. Larger
    buffers measured no faster."""
    return min(max(_ALIGN, -(-chunk_size // _ALIGN) * _ALIGN), 4 * 1024 * 1024)


def _open_new(path: str, *, direct: bool = True) -> int:
    """Create ``path`` for writing and reading back, with ``O_DIRECT`` where
    the file system supports it (unless ``direct`` is false)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    o_direct = getattr(os, "O_DIRECT", 0) if direct else 0
    if o_direct:
        try:
            return os.open(path, flags | o_direct, 0o644)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: this file system has no direct I/O
                raise
    return os.open(path, flags, 0o644)


class _Writer:
    """Writes buffers to ``fd`` in order on a helper thread and, with
    ``read_back``, reads each one back on a second helper and compares it
    with what was written; :meth:`finish` fsyncs. With ``inline`` (a file
    that fits in one buffer) the caller's thread does both, and
    :meth:`submit` returns when they are done. The helpers are
    :mod:`~ocs_transfer.storage.lanes`, kept alive between uploads.

    With ``O_DIRECT`` (where the file system allows it) the bytes go from the
    hashed buffer to the device without a copy into the page cache, and the
    read-back comes from the device: it checks what the disk really holds.
    Without it (or for an unaligned tail) writes are buffered, and written
    back every :data:`_WRITEBACK_EVERY` bytes so the final fsync is short.
    """

    def __init__(
        self,
        fd: int,
        buffers: BufferPool,
        *,
        read_back: bool,
        writeback_every: int = _WRITEBACK_EVERY,
    ) -> None:
        self.fd = fd
        self.writeback_every = writeback_every
        self.direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0))
        self.writes: Lane | None = take_lane("write")
        self.checks: Lane | None = take_lane("check") if read_back else None
        self.pending: list[Future[None]] = []
        self.failed = False
        self.unsynced = 0
        self.buffers = buffers
        self.back: mmap.mmap | None = None  # the read-back buffer, from ``buffers``

    def submit(self, data: memoryview, offset: int) -> Future[None]:
        """Queue ``data`` for ``offset``; raises the error of an earlier
        write. The future finishes when ``data`` is written (and checked)."""
        assert self.writes is not None, "submit after the writer was closed"
        for future in [f for f in self.pending if f.done()]:
            future.result()
            self.pending.remove(future)
        done: Future[None] = self.writes.submit(self._write, data, offset)
        if self.checks is not None:
            done = self.checks.submit(self._check, done, data, offset)
        self.pending.append(done)
        return done

    def finish(self) -> None:
        """Wait for every write, raise the first error, fsync."""
        for future in self.pending:
            future.result()
        self.pending.clear()
        os.fsync(self.fd)

    def _write(self, data: memoryview, offset: int) -> None:
        if self.failed:
            return  # the upload is over; its error is already on its way
        try:
            if self.direct and (len(data) % _ALIGN or offset % _ALIGN):
                self._buffered()  # the unaligned tail
            try:
                _write_all(self.fd, data, offset)
            except OSError as exc:
                if not (self.direct and exc.errno == errno.EINVAL):
                    raise
                self._buffered()  # the file system took O_DIRECT at open but refuses the I/O
                _write_all(self.fd, data, offset)
            if not self.direct:
                self.unsynced += len(data)
                if self.unsynced >= self.writeback_every:
                    os.fdatasync(self.fd)
                    self.unsynced = 0
        except BaseException:
            self.failed = True
            raise

    def _check(self, written: Future[None], data: memoryview, offset: int) -> None:
        written.result()  # a failed write's error is this check's error
        if self.failed:
            return
        try:
            self._read_back(data, offset)
        except BaseException:
            self.failed = True
            raise

    def _buffered(self) -> None:
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        self.direct = False

    def _read_back(self, data: memoryview, offset: int) -> None:
        if self.back is None:
            self.back = self.buffers.take()  # page-aligned, as direct reads need
        _compare(self.fd, memoryview(self.back), data, offset)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for future in self.pending:
            future.cancel()
        wait(self.pending)  # nothing may touch fd or a buffer after this
        self.pending.clear()
        for lane in (self.writes, self.checks):
            if lane is not None:
                lane.release()
        self.writes = self.checks = None
        if self.back is not None:
            self.buffers.give(self.back)
            self.back = None


class _SmallWriter:
    """The writer of a small file (up to :data:`_SMALL_FILE`), in the
    caller's thread: buffered writes, then :meth:`finish` fsyncs and, with
    ``read_back``, reads what was written back from the disk (``O_DIRECT``,
    where the file system has it) and compares it with a copy of it.

    A direct write waits for the device (~1.7 ms for 4 KiB on this project's
    machines) and its read-back for the device again, before the fsync
    waits for the journal; a buffered one costs nothing until the fsync,
    which concurrent uploads share, and the read-back after the fsync reads
    what the disk holds. Holds a copy of at most one chunk: should the
    source give more than one buffer, an earlier chunk is checked (against
    the page cache) before the next is written.
    """

    def __init__(self, fd: int, buffers: BufferPool, *, read_back: bool) -> None:
        self.fd = fd
        self.buffers = buffers
        self.read_back = read_back
        self.held: tuple[bytearray, int] | None = None  # a copy of the last chunk, and its offset

    def submit(self, data: memoryview, offset: int) -> None:
        """Write ``data`` at ``offset`` now; there is nothing to wait for."""
        if self.held is not None:
            self._check()
        _write_all(self.fd, data, offset)
        if self.read_back:
            self.held = (bytearray(data), offset)

    def finish(self) -> None:
        """fsync, then check the last chunk against the disk."""
        os.fsync(self.fd)
        if self.held is not None:
            _direct_reads(self.fd)
            self._check()

    def _check(self) -> None:
        assert self.held is not None
        copy, offset = self.held
        self.held = None
        back = self.buffers.take()
        try:
            try:
                _compare(self.fd, memoryview(back), memoryview(copy), offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # the file system took O_DIRECT but refuses this read: read through the page cache
                fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
                _compare(self.fd, memoryview(back), memoryview(copy), offset)
        finally:
            self.buffers.give(back)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.held = None


def _direct_reads(fd: int) -> None:
    """Make ``fd``'s reads bypass the page cache where the file system allows it."""
    direct = getattr(os, "O_DIRECT", 0)
    if not direct:
        return
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | direct)
    except OSError:
        pass  # no direct I/O here: the read-back compares what the kernel keeps


def _compare(fd: int, back: memoryview, data: memoryview, offset: int) -> None:
    """Read ``len(data)`` bytes at ``offset`` of ``fd`` into ``back`` (an
    aligned buffer at least that long, rounded up to whole blocks for direct
    reads) and raise :class:`IntegrityError` unless they equal ``data``."""
    want = min(len(back), -(-len(data) // _ALIGN) * _ALIGN)
    got = 0
    while got < len(data) and (n := os.preadv(fd, [back[got:want]], offset + got)):
        got += n
    if got < len(data) or not _equal(back[: len(data)], data):
        raise IntegrityError(
            f"the {len(data)} bytes written at offset {offset} read back differently (a faulty disk or file system?)"
        )


_memcmp = ctypes.CDLL(None).memcmp  # the C library's, already loaded in this process
_memcmp.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_memcmp.restype = ctypes.c_int


def _equal(a: memoryview, b: memoryview) -> bool:
    """``a == b`` for two writable buffers, as a ``memcmp`` that releases
    the GIL. (A memoryview ``==`` compares byte by byte, about 20x slower;
    ``bytes ==`` would need a copy of both.)"""
    if len(a) != len(b):
        return False
    if not a:
        return True
    left, right = (ctypes.c_char * len(a)).from_buffer(a), (ctypes.c_char * len(b)).from_buffer(b)
    try:
        return bool(_memcmp(ctypes.addressof(left), ctypes.addressof(right), len(a)) == 0)
    finally:
        del left, right  # release the buffers' exports at once


def _write_all(out: int, data: memoryview, offset: int) -> None:
    while data:
        offset += (n := os.pwrite(out, data, offset))
        data = data[n:]
