"""Bundles: many files as one zip, streamed into a store, with a share link.

::

    from ocs_transfer.storage import get_store
    from ocs_transfer.storage.bundle import bundle_files, plan_members

    with get_store("s3://results/users/42") as store:
        result = bundle_files(store, plan_members(["run-17/"]), "results.zip", keep=timedelta(days=7))
    print(result.link, result.expires)

The archive (:mod:`.zipstream`) is made while the store reads it: no copy of
the bundle on disk or in memory. The store hashes it on the way and verifies
it as any other upload (size and checksum at the destination; nothing is
visible at the name until it is complete). The link lives as long as the
bundle is kept (``keep``) where the provider's links expire; ``expires``
says when it stops working (None: a permanent link, which stops working when
``ocs-transfer expire`` deletes the bundle).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import attrs

from ..exceptions import ConfigurationError
from .base import FileStore, Progress, StoredObject, share_link
from .paths import safe_path
from .zipstream import ZipMember, ZipStream

__all__ = ["BundleResult", "bundle_files", "local_member", "plan_files", "plan_members", "put_archive"]

#: What a bundle is sent as.
CONTENT_TYPE = "application/zip"


@attrs.frozen(kw_only=True)
class BundleResult:
    """A stored, verified bundle."""

    stored: StoredObject
    members: tuple[dict[str, Any], ...]  #: ``{"name", "size"}`` in archive order
    link: str | None = None
    expires: datetime | None = None  #: when ``link`` stops working; None: it does not expire by itself

    def as_dict(self) -> dict[str, Any]:
        s = self.stored
        return {
            "path": s.path, "size": s.size, "md5": s.md5, "sha256": s.sha256, "version_id": s.version_id,
            "provider_checksum": s.provider_checksum, "members": list(self.members), "link": self.link,
            "expires": self.expires.isoformat() if self.expires is not None else None,
        }  # fmt: skip


def local_member(path: Path, name: str) -> ZipMember:
    def opener() -> IO[bytes]:
        return open(path, "rb", buffering=0)

    return ZipMember(name=name, size=path.stat().st_size, open=opener)


def plan_files(
    items: Sequence[str | os.PathLike[str]], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[tuple[Path, str]]:
    """``(file, member name)`` for local files and directories, sorted by
    name: a file is named by its file name, a file in a directory by the
    directory's name and its path below it (``run-17/red/a.fits.fz``).
    ``include``/``exclude`` globs filter directories' files as ``send`` does.
    Two members with one name, a path that is neither a file nor a
    directory, or nothing at all are :class:`ConfigurationError` saying which."""
    from .cli import expand_files

    planned: dict[str, Path] = {}
    for item in items:
        path = Path(item)
        if path.is_dir():
            base = path.resolve().name
            chosen = [(p, f"{base}/{p.relative_to(path).as_posix()}") for p in expand_files([path], include, exclude)]
        elif path.is_file():
            chosen = [(path, path.name)]
        else:
            raise ConfigurationError(f"{path}: no such file or directory; nothing was bundled")
        for file, name in chosen:
            name = safe_path(name)
            if name in planned:
                raise ConfigurationError(
                    f"two files would be {name!r} in the bundle ({planned[name]} and {file}); rename one or"
                    " bundle their directories instead"
                )
            planned[name] = file.resolve()
    if not planned:
        raise ConfigurationError("no files to bundle (the directories hold none that --include/--exclude keep)")
    return [(planned[name], name) for name in sorted(planned)]


def plan_members(
    items: Sequence[str | os.PathLike[str]], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[ZipMember]:
    """The archive members for local files and directories (see :func:`plan_files`)."""
    return [local_member(path, name) for path, name in plan_files(items, include, exclude)]


def put_archive(
    store: FileStore, archive: ZipStream, where: str, *, progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> tuple[StoredObject, tuple[dict[str, Any], ...]]:  # fmt: skip
    """Stream ``archive`` into ``store`` at ``where`` (verified as any
    upload); the stored object and the members written (name, size). A store
    that needs the size first (:attr:`FileStore.needs_size`) gets the
    archive measured by making it twice, never a copy spooled to disk."""
    size = archive.measure() if store.needs_size else archive.size
    try:
        stored = store.put(
            archive, where, size=size, content_type=CONTENT_TYPE, progress=progress,  # type: ignore[arg-type]
            cancel=cancel, extension=".zip",
        )  # fmt: skip
    finally:
        archive.close()
    return stored, tuple({"name": m["name"], "size": m["size"]} for m in archive.members)


def bundle_files(
    store: FileStore,
    members: Sequence[ZipMember],
    name: str,
    *,
    keep: timedelta | None = None,
    prefix: str = "",
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    level: int = 6,
    force_zip64: bool = False,
) -> BundleResult:
    """Zip ``members`` into ``store`` at ``name`` (under ``prefix``, a
    destination's folder), streaming, and make a share link living ``keep``.
    A member that changes while it is read fails the upload
    (:class:`~.zipstream.MemberChangedError`, retryable) and nothing is published."""
    where = safe_path(f"{prefix.strip('/')}/{name}" if prefix.strip("/") else name)
    if not members:
        raise ConfigurationError("a bundle needs at least one file")
    stored, written = put_archive(store, ZipStream(members, level=level, force_zip64=force_zip64), where,
                                  progress=progress, cancel=cancel)  # fmt: skip
    link, expires = share_link(store, stored.path, stored.version_id, keep)
    return BundleResult(stored=stored, members=written, link=link, expires=expires)
