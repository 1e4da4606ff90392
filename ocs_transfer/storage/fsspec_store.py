"""The generic store over any fsspec filesystem.

:class:`FsspecStore` implements the whole :class:`~ocs_transfer.storage.FileStore`
contract once: streaming uploads that hash in the same pass, atomic publishing,
verification, clean-up on failure or cancel, error translation. A provider
subclasses it and supplies only what differs, by overriding these points:

``from_config``
    Build the fsspec filesystem from config and credentials, then call
    ``cls(fs, root, ...)``. Pass config fields to the filesystem as plain
    keyword arguments (fsspec caches instances by their arguments). A store
    whose uploads do not need the filesystem may pass ``fs=None`` and
    override ``_make_fs``: the filesystem (and fsspec) is then imported on
    first use.
``atomic_writes``
    ``True`` when the filesystem's own upload publishes atomically (S3
    multipart, GCS resumable: the object appears only when complete). Then the
    upload goes straight to the final path. Otherwise it goes to a hidden
    temporary name beside the final path and :meth:`_publish` moves it.
``_upload(reader, path, *, size, content_type, metadata, options)``
    Write everything ``reader`` yields to ``path``. The default streams through
    ``fs.open(path, "wb")`` in chunks; providers with a faster or resumable
    upload override it. Read the source only through ``reader`` (that is how
    the hashes are computed in the same pass). ``options`` are the per-call
    provider options given to ``put`` (e.g. S3's ``storage_class``). May
    return a mapping: checksums it computed while sending, by name, which join
    the reader's digests for :meth:`_expected_checksum` (S3 builds its
    composite CRC32C from the parts' CRC32Cs it sent, so they are not
    computed twice), and ``"version_id"``: the version id, file id or revision
    the provider answered, which ``put`` returns when ``_version_id(info)``
    finds none.
``_publish(staging, final)``
    Make the staged object visible at ``final`` atomically. The default never
    expands glob patterns: ``fs.mv`` when neither name holds ``*?[``,
    otherwise ``cp_file`` then ``rm_file``.
``_ensure_parent(path)``
    Create the parent folders (default ``fs.makedirs(exist_ok=True)``; a
    folder another writer created meanwhile is success).
``sweep(older_than)``
    Remove temporary names of crashed uploads (``temporary_markers``).
``_extra_hashers()`` / ``_native_checksum(info)`` / ``_expected_checksum(algorithm, digests)``
    The provider's own checksum: hashers computed while reading (e.g. CRC32C),
    how to read the checksum from ``fs.info`` output, and what we expect it to
    be. When a provider reports no usable checksum, verification re-reads the
    object (``reread_to_verify``).
``_version_id(info)`` / ``_sign(path, version_id, expiration)``
    Version ids and links.
"""

from __future__ import annotations

import builtins
import logging
import posixpath
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Any, ClassVar, NoReturn
from urllib.parse import quote

from ..exceptions import (
    ConfigurationError,
    IntegrityError,
    ObjectNotFoundError,
    OcsTransferError,
)
from ..redact import Secret
from ..retry import translate
from .base import DEFAULT_LINK_EXPIRATION, FileStore, ObjectInfo, Progress, StoredObject
from .hashing import DEFAULT_CHUNK_SIZE, Hasher, HashingReader, iter_chunks
from .paths import safe_path

__all__ = ["DEFAULT_SWEEP_AGE", "FsspecStore", "SERVER_PARTIAL_SUFFIX", "TEMP_MARKER"]

log = logging.getLogger(__name__)

#: Temporary uploads are named ``.<name>.<TEMP_MARKER>-<random>`` beside their
#: final path; listings hide them.
TEMP_MARKER = "ocs-transfer-partial"
#: The suffix of the file server's own partial uploads (ocs-transfer-local's server).
SERVER_PARTIAL_SUFFIX = ".ocs-server-partial"
#: How old a temporary name must be before :meth:`FsspecStore.sweep` removes it.
DEFAULT_SWEEP_AGE = timedelta(hours=24)
_GLOB_CHARS = frozenset("*?[")


class FsspecStore(FileStore):
    """A :class:`FileStore` over an fsspec filesystem, rooted at ``root``."""

    atomic_writes: ClassVar[bool] = False
    reread_to_verify: ClassVar[bool] = True

    def __init__(
        self,
        fs: Any | None,
        root: str = "",
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        link_base_url: str | None = None,
        secrets: tuple[Secret | str | None, ...] = (),
    ) -> None:
        self._fs = fs
        self.root = root.rstrip("/")
        self.chunk_size = chunk_size
        self.link_base_url = link_base_url
        self._secrets = secrets

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={self.root!r})"

    @property
    def fs(self) -> Any:
        """The fsspec filesystem (made on first use when none was given)."""
        if self._fs is None:
            self._fs = self._make_fs()
        return self._fs

    def _make_fs(self) -> Any:
        """Make the filesystem, for stores built with ``fs=None``."""
        raise NotImplementedError(f"{type(self).__name__} was built without a filesystem and makes none")

    # -- paths ---------------------------------------------------------------------

    def _full(self, path: str) -> str:
        rel = safe_path(path)
        return f"{self.root}/{rel}" if self.root else rel

    def _rel(self, full: str) -> str:
        full = self.fs._strip_protocol(full) if hasattr(self.fs, "_strip_protocol") else full
        root = self.fs._strip_protocol(self.root) if (self.root and hasattr(self.fs, "_strip_protocol")) else self.root
        if root and full.startswith(root.rstrip("/") + "/"):
            return full[len(root.rstrip("/")) + 1 :]
        return full.lstrip("/")

    @staticmethod
    def _temp_prefix(name: str) -> str:
        """How every temporary name of an upload to ``name`` (a base name) begins."""
        return f".{name[:180]}.{TEMP_MARKER}-"

    @staticmethod
    def _temp_path(final: str) -> str:
        directory, name = posixpath.split(final)
        temp = FsspecStore._temp_prefix(name) + uuid.uuid4().hex[:12]
        return posixpath.join(directory, temp) if directory else temp

    @staticmethod
    def is_temporary(path: str) -> bool:
        """A hidden temporary name: an upload in progress, or one a crash left
        (ours, the file server's, a connection-test probe)."""
        from .probe import PROBE_PREFIX

        name = posixpath.basename(path)
        return f".{TEMP_MARKER}-" in name or name.endswith(SERVER_PARTIAL_SUFFIX) or name.startswith(PROBE_PREFIX)

    def _raise(self, exc: BaseException, message: str) -> NoReturn:
        """Re-raise ``exc`` as one of our errors (ours pass through unchanged)."""
        if isinstance(exc, OcsTransferError):
            raise exc
        raise translate(exc, message, secrets=self._secrets) from exc

    # -- provider override points ------------------------------------------------------

    def _ensure_parent(self, path: str) -> None:
        parent = posixpath.dirname(path)
        if not parent:
            return
        try:
            self.fs.makedirs(parent, exist_ok=True)
        except (FileExistsError, OSError) as exc:
            # Another upload created it between our look and our create:
            # "exists now" is success. Anything else is a real error.
            try:
                exists = bool(self.fs.isdir(parent))
            except Exception:
                exists = False
            if not exists:
                raise exc from None

    def _upload(
        self,
        reader: HashingReader,
        path: str,
        *,
        size: int | None,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        options: Mapping[str, Any] | None = None,
    ) -> Mapping[str, str] | None:
        out = self.fs.open(path, "wb", block_size=self.chunk_size)
        try:
            for chunk in iter_chunks(reader, self.chunk_size):
                out.write(chunk)
        except BaseException:
            _abandon(out, self._secrets)
            raise
        out.close()
        return None

    def _publish(self, staging: str, final: str) -> None:
        if _GLOB_CHARS.isdisjoint(staging) and _GLOB_CHARS.isdisjoint(final):
            self.fs.mv(staging, final)
            return
        # fs.mv expands *, ? and [...] as patterns: a name holding them would
        # move some other file, or none. cp_file and rm_file take names literally.
        self.fs.cp_file(staging, final)
        self.fs.rm_file(staging)

    def _extra_hashers(self) -> dict[str, Hasher]:
        return {}

    def _native_checksum(self, info: Mapping[str, Any]) -> tuple[str, str] | None:
        """``(algorithm, value)`` of the provider's own checksum in ``info``."""
        return None

    def _expected_checksum(self, algorithm: str, digests: Mapping[str, str]) -> str | None:
        """What ``algorithm``'s value should be for the bytes we read."""
        return digests.get(algorithm)

    def _version_id(self, info: Mapping[str, Any]) -> str | None:
        return None

    def _open_for_verify(self, full: str) -> IO[bytes]:
        """A plain sequential reader of the just-uploaded object, for
        verification by re-reading (memory bounded by ``chunk_size``)."""
        return self.fs.open(full, "rb")  # type: ignore[no-any-return]

    def _sign(self, path: str, version_id: str | None, expiration: timedelta) -> str:
        return str(self.fs.sign(path, expiration=int(expiration.total_seconds())))

    def _versioned(self, version_id: str | None) -> str | None:
        """``version_id`` for a store that versions objects; ``None`` for one
        that does not, whose one object is its only version (ocs_archive
        passes its version set's key there, the md5), so the id is not handed
        to a filesystem that takes none."""
        return (version_id or None) if self.supports_versioning else None

    def _info_raw(self, full: str, version_id: str | None = None) -> dict[str, Any]:
        version_id = self._versioned(version_id)
        if version_id is not None:
            return dict(self.fs.info(full, version_id=version_id))
        return dict(self.fs.info(full))

    def _discard(self, full: str) -> None:
        """Remove a staged or bad object, best effort (never raises)."""
        try:
            self.fs.rm_file(full)
        except FileNotFoundError:
            pass
        except Exception as exc:  # clean-up must not hide the real error
            log.warning("could not remove %s after a failed upload: %s", full, type(exc).__name__)

    # -- the contract --------------------------------------------------------------------

    def put(
        self,
        source: IO[bytes],
        path: str,
        *,
        size: int | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        extension: str = "",
        options: Mapping[str, Any] | None = None,
    ) -> StoredObject:
        final = self._full(path)
        rel = safe_path(path)
        staging = final if self.atomic_writes else self._temp_path(final)
        content_type = content_type or "application/octet-stream"
        reader = HashingReader(source, progress=progress, cancel=cancel, extra=self._extra_hashers())
        try:
            try:
                self._ensure_parent(final)
                sent = dict(
                    self._upload(
                        reader, staging, size=size, content_type=content_type, metadata=metadata, options=options
                    )
                    or {}
                )
            finally:
                digests = reader.digests()
            written_version = sent.pop("version_id", None)
            digests.update(sent)
            if size is not None and reader.bytes_read != size:
                raise IntegrityError(
                    f"upload of {rel!r}: the source gave {reader.bytes_read} bytes, expected {size};"
                    f" the source changed or was cut short"
                )
            info = self._verify(staging, reader.bytes_read, digests, rel)
            if staging != final:
                self._publish(staging, final)
                info = self._info_raw(final)
        except BaseException as exc:
            # A staged upload is never visible: remove it. An atomic store
            # published nothing unless the upload completed; a completed but
            # wrong object (IntegrityError) is removed, while a failure before
            # completion leaves any older object at the path untouched.
            if staging != final or isinstance(exc, IntegrityError):
                self._discard(staging)
            if not isinstance(exc, Exception):
                raise
            self._raise(exc, f"upload of {rel!r} failed")
        native = self._native_checksum(info)
        return StoredObject(
            path=rel,
            size=reader.bytes_read,
            md5=digests["md5"],
            sha256=digests["sha256"],
            content_type=content_type,
            version_id=self._version_id(info) or written_version,
            provider_checksum=f"{native[0]}:{native[1]}" if native else None,
            extension=extension,
        )

    def _verify(self, full: str, size: int, digests: Mapping[str, str], rel: str) -> dict[str, Any]:
        """Check what the destination holds against what we read; raise
        :class:`IntegrityError` (after which the caller removes the object)."""
        info = self._info_raw(full)
        remote_size = info.get("size")
        if remote_size is None or int(remote_size) != size:
            raise IntegrityError(f"upload of {rel!r}: the destination holds {remote_size} bytes, we sent {size}")
        native = self._native_checksum(info)
        expected = self._expected_checksum(native[0], digests) if native else None
        if native is not None and expected is not None:
            if native[1] != expected:
                raise IntegrityError(
                    f"upload of {rel!r}: the destination's {native[0]} is {native[1]}, the source's is {expected}"
                )
            return info
        if self.reread_to_verify:
            check = HashingReader(self._open_for_verify(full), parallel=False)
            try:
                for _ in iter_chunks(check, self.chunk_size):
                    pass
            finally:
                check.source.close()
            if check.digests()["sha256"] != digests["sha256"]:
                raise IntegrityError(f"upload of {rel!r}: re-reading the destination gave a different sha256")
        return info

    def delete_file(self, path: str, version_id: str | None = None) -> None:
        full = self._full(path)
        version_id = self._versioned(version_id)
        try:
            self._info_raw(full, version_id)
            if version_id is not None:
                self.fs.rm_file(full, version_id=version_id)
            else:
                self.fs.rm_file(full)
        except Exception as exc:
            self._raise(exc, f"delete of {safe_path(path)!r} failed")

    def open(self, path: str, version_id: str | None = None) -> IO[bytes]:
        full = self._full(path)
        version_id = self._versioned(version_id)
        try:
            if version_id is not None:
                return self.fs.open(full, "rb", version_id=version_id)  # type: ignore[no-any-return]
            self._info_raw(full)  # a clear not-found now, not at first read
            return self.fs.open(full, "rb")  # type: ignore[no-any-return]
        except Exception as exc:
            self._raise(exc, f"open of {safe_path(path)!r} failed")

    def _object_info(self, info: Mapping[str, Any], rel: str) -> ObjectInfo:
        native = self._native_checksum(info)
        return ObjectInfo(
            path=rel,
            size=int(info.get("size") or 0),
            modified=_modified(info),
            version_id=self._version_id(info),
            provider_checksum=f"{native[0]}:{native[1]}" if native else None,
            content_type=info.get("ContentType") or info.get("contentType") or info.get("content_type"),
        )

    def info(self, path: str, version_id: str | None = None) -> ObjectInfo:
        full = self._full(path)
        try:
            raw = self._info_raw(full, version_id)
        except Exception as exc:
            self._raise(exc, f"info of {safe_path(path)!r} failed")
        if raw.get("type") == "directory":
            raise ObjectNotFoundError(f"{safe_path(path)!r} is a directory, not a file")
        return self._object_info(raw, safe_path(path))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self._full(prefix) if prefix else self.root
        try:
            if base and not self.fs.exists(base):
                return
            found = self.fs.find(base, detail=True) if base else self.fs.find("", detail=True)
        except Exception as exc:
            self._raise(exc, f"listing {prefix!r} failed")
        for name, info in sorted(found.items()):
            if info.get("type") == "directory" or self.is_temporary(name):
                continue
            yield self._object_info(info, self._rel(name))

    def sweep(self, older_than: timedelta = DEFAULT_SWEEP_AGE, *, now: datetime | None = None) -> builtins.list[str]:
        """Remove temporary names (see :meth:`is_temporary`) older than
        ``older_than`` that crashed uploads left under the root; return their
        paths. Stores whose uploads are atomic (``atomic_writes``) leave none
        and list nothing. Names whose age the provider does not report are
        kept unless ``older_than`` is zero."""
        if self.atomic_writes:
            return []
        cutoff = (now or datetime.now(UTC)) - older_than
        try:
            if self.root and not self.fs.exists(self.root):
                return []
            found = self.fs.find(self.root or "", detail=True)
        except Exception as exc:
            self._raise(exc, "listing for the sweep failed")
        removed = []
        for name, info in sorted(found.items()):
            if info.get("type") == "directory" or not self.is_temporary(name):
                continue
            modified = _modified(info)
            if (modified is None and older_than) or (modified is not None and modified > cutoff):
                continue
            try:
                self.fs.rm_file(name)
            except FileNotFoundError:
                continue  # its upload finished or another sweep took it
            except Exception as exc:
                self._raise(exc, f"removing the leftover {self._rel(name)!r} failed")
            log.info("swept the leftover temporary %s", self._rel(name))
            removed.append(self._rel(name))
        return removed

    def link_lifetime(self, expiration: timedelta) -> timedelta | None:
        return None if self.link_base_url else expiration

    def get_url(
        self,
        path: str,
        version_id: str | None = None,
        expiration: timedelta = DEFAULT_LINK_EXPIRATION,
    ) -> str:
        rel = safe_path(path)
        if self.link_base_url:
            return self.link_base_url.rstrip("/") + "/" + quote(rel)
        full = self._full(path)
        try:
            return self._sign(full, version_id, expiration)
        except NotImplementedError:
            raise ConfigurationError(
                f"provider {self.name!r} cannot make download links by itself; set its link_base_url option"
                " (get_store(..., link_base_url=URL), --option link_base_url=URL, or FILESYSTEM_STORAGE_BASE_URL)"
            ) from None
        except Exception as exc:
            self._raise(exc, f"making a link to {rel!r} failed")


def _abandon(out: Any, secrets: tuple[Secret | str | None, ...] = ()) -> None:
    """Give up a write handle without committing what it holds.

    ``with fs.open(...)`` would close (and so commit) a half-written file when
    the source fails. fsspec's buffered files abort through ``discard()``
    (s3fs aborts the multipart upload) and are then marked closed, so that
    garbage collection never flushes them later. Other file objects can only
    be closed: the caller removes the staged object, and providers with
    ``atomic_writes`` must use buffered files or override ``_upload``.

    Never raises: the caller re-raises the upload's own error, which a failed
    clean-up (a cancelled FTP transfer answering "550 No such file") must not
    replace; the clean-up failure is logged.
    """
    from fsspec.spec import AbstractBufferedFile

    try:
        if isinstance(out, AbstractBufferedFile):
            try:
                out.discard()
            finally:
                out.closed = True
            return
        out.close()
    except Exception as exc:
        from ..redact import redact

        detail = redact(f"{type(exc).__name__}: {exc}", secrets)
        log.warning("could not abandon a failed upload's write handle: %s", detail)


def _modified(info: Mapping[str, Any]) -> datetime | None:
    for key in ("LastModified", "mtime", "updated", "modified", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
