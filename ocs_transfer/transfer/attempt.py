"""One attempt's data-safety steps: what keeps the only copy of a file safe
while its bytes are copied (docs/reliability.md).

- A transfer counts only for its own source's bytes. At run time an object
  already at the path is adopted only when it holds exactly this source's
  bytes (a lost acknowledgement); any other object fails the transfer for good
  (:class:`RemotePathTakenError`) and is left alone, and the source is kept.
- The source's size and modification time are compared with those recorded at
  scheduling before it is read, and again when the read reaches its end (before
  anything is published); a change fails the attempt as retryable
  (:class:`SourceChangedError`).
- Staged uploads a killed attempt left beside its path are removed before the
  next attempt writes there.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable
from typing import Any

from ..exceptions import (
    DoNotRetryError,
    ObjectNotFoundError,
    RetryError,
)
from ..storage.base import FileStore, ObjectInfo, StoredObject

__all__ = ["RemotePathTakenError", "SourceChangedError"]

log = logging.getLogger("ocs_transfer.transfer.engine")  # every engine module logs under one name


class SourceChangedError(RetryError):
    """The source file is not what was scheduled (its size or modification
    time changed before or while it was read). Nothing was published; the
    source is kept."""


class RemotePathTakenError(DoNotRetryError):
    """Another file (different bytes) is at, or is scheduled for, this remote
    path. Nothing was overwritten; the source is kept."""


def _mtime(info: ObjectInfo) -> float | None:
    return info.modified.timestamp() if info.modified is not None else None


def _check_unchanged(path: str, info: ObjectInfo, size: int | None, mtime: float | None, when: str) -> None:
    """Raise :class:`SourceChangedError` when ``info`` differs from the recorded
    size or modification time (``None``: not recorded, not compared)."""
    changes = []
    if size is not None and info.size != size:
        changes.append(f"size {size} -> {info.size}")
    now = _mtime(info)
    if mtime is not None and now is not None and abs(now - mtime) > 1e-6:
        changes.append(f"modification time {mtime:.6f} -> {now:.6f}")
    if changes:
        raise SourceChangedError(
            f"source {path!r} changed {when} ({', '.join(changes)}); it is kept, and nothing was published."
            " The attempt is retried; if the new content is meant to be sent, schedule it again"
        )


def _check_bytes(path: str, stored: StoredObject, expected: str) -> None:
    if expected and stored.sha256 != expected:
        raise SourceChangedError(
            f"source {path!r} no longer holds the bytes this file was scheduled with or first copied as"
            f" (sha256 {stored.sha256[:16]}..., expected {expected[:16]}...); it is kept, and nothing of it was"
            " left at the destination. If the new content is meant to be sent, schedule it again"
        )


class _GuardedReader:
    """Reads the source and, when it reaches the end, checks that the source
    still is what it was when the read began (so a source replaced or cut
    while read fails the upload before anything is published)."""

    def __init__(self, inner: Any, check: Callable[[], None],
                 on_failure: Callable[[BaseException], None] | None = None) -> None:  # fmt: skip
        self._inner = inner
        self._check = check
        self._checked = False
        self._on_failure = on_failure  #: told of every failure of the source (a read, or the check)

    @property
    def checked(self) -> bool:
        """Whether the read reached the end and the check ran (and passed)."""
        return self._checked

    def _at_end(self) -> None:
        if not self._checked:
            self._check()
            self._checked = True

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._inner.read(size)
            if not data:
                self._at_end()
        except Exception as exc:
            self._failed(exc)
            raise
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        try:
            readinto = getattr(self._inner, "readinto", None)
            if readinto is None:
                data = self._inner.read(len(buffer))
                buffer[: len(data)] = data
                got = len(data)
            else:
                got = readinto(buffer) or 0
            if not got:
                self._at_end()
        except Exception as exc:
            self._failed(exc)
            raise
        return int(got)

    def _failed(self, exc: BaseException) -> None:
        if self._on_failure is not None:
            self._on_failure(exc)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._inner.close()


def _info_or_none(store: FileStore, path: str) -> ObjectInfo | None:
    try:
        return store.info(path)
    except ObjectNotFoundError:
        return None


def _adopt(
    store: FileStore, existing: ObjectInfo, reader: _GuardedReader, size: int, remote_path: str, extension: str
) -> StoredObject:
    """An object is already at the transfer's path: the transfer's own upload
    whose acknowledgement was lost, or another file. Adopt it only when it holds
    exactly the source's bytes (size, then sha256 of both read in full);
    otherwise fail for good, leaving it untouched."""
    from ..storage.hashing import HashingReader, iter_chunks

    def taken(why: str) -> RemotePathTakenError:
        return RemotePathTakenError(
            f"{remote_path!r} already holds another file ({why}); it was not overwritten and the source is kept."
            " Remove that object, or schedule this file with a layout that gives it its own path"
        )

    if existing.size != size:
        raise taken(f"{existing.size} bytes, the source has {size}")
    ours = HashingReader(reader, parallel=False)  # type: ignore[arg-type]
    for _ in iter_chunks(ours, 1 << 20):
        pass
    mine = ours.digests()
    with store.get_fileobj(remote_path, existing.version_id) as stored_reader:
        theirs = HashingReader(stored_reader, parallel=False)
        for _ in iter_chunks(theirs, 1 << 20):
            pass
        remote = theirs.digests()
    if ours.bytes_read != size or remote["sha256"] != mine["sha256"] or theirs.bytes_read != size:
        raise taken("its sha256 differs from the source's")
    log.info("%s already holds this source's exact bytes (an earlier attempt's upload); adopted", remote_path)
    return StoredObject(
        path=remote_path, size=size, md5=mine["md5"], sha256=mine["sha256"],
        content_type=existing.content_type or "application/octet-stream", version_id=existing.version_id,
        provider_checksum=existing.provider_checksum, extension=extension,
    )  # fmt: skip


def _discard_stale_partials(store: FileStore, remote_path: str) -> None:
    """Remove staged uploads an earlier attempt of this transfer left beside
    its path when its worker was killed (a live attempt cleans up after itself;
    the lease guarantees no other attempt of this transfer is running)."""
    from ..storage.fsspec_store import FsspecStore

    if not isinstance(store, FsspecStore) or store.atomic_writes:
        return
    full = store._full(remote_path)
    parent, name = posixpath.split(full)
    prefix = store._temp_prefix(name)
    try:
        entries = store.fs.ls(parent or "/", detail=False)
        for entry in entries:
            if posixpath.basename(str(entry)).startswith(prefix):
                log.info("removing a partial upload a killed attempt left: %s", posixpath.basename(str(entry)))
                store.fs.rm(entry)
    except (FileNotFoundError, NotADirectoryError):
        return
    except Exception as exc:
        log.warning("could not check for partial uploads of %s: %s", remote_path, type(exc).__name__)


def _extension(path: str) -> str:
    name = posixpath.basename(path)
    for ext in (".fits.fz", ".fits.gz", ".tar.gz"):
        if name.endswith(ext):
            return ext
    return posixpath.splitext(name)[1]
