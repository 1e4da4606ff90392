"""``TarWithFitsFile``: a tarball (``.tar``, ``.tar.gz``, also bzip2/xz) whose
metadata is the header of its first FITS member.

The archive is read as a stream, member header by member header, up to the
first regular ``.fits``/``.fits.fz`` member, and only that member's header
blocks are read. Nothing is extracted anywhere. Members before it that could
be dangerous if extracted (absolute paths, ``..``, links, devices) make the
file invalid, and extended (pax / GNU long-name) headers are limited in size.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, ClassVar

from ..exceptions import FileSpecificationError
from .fitsfile import FitsFile, fits_storage
from .fitsheader import BinaryReader, Source

__all__ = ["TarWithFitsFile", "first_fits_member"]

TAR_BLOCK = 512
#: The largest pax or GNU long-name header accepted.
MAX_EXTENDED_HEADER = 64 * 1024
_TAR_FITS_SUFFIXES = {".fits.fz": "fpack", ".fits": "plain"}
_META_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
               tarfile.GNUTYPE_LONGLINK)
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)


def _padded(n: int) -> int:
    return -(-n // TAR_BLOCK) * TAR_BLOCK


def _pax_records(data: bytes, where: str) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space]) if space > pos else 0
        except ValueError:
            length = 0
        record = data[pos : pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise FileSpecificationError(f"{where}: malformed pax extended header")
        key, _, value = record[space - pos + 1 : -1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _check_member_name(name: str, where: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise FileSpecificationError(f"{where}: unsafe tar member name {name!r} (absolute or with '..')")


def first_fits_member(source: Source) -> tuple[str, int]:
    """Read tar member headers from ``source`` up to the first regular FITS
    member; return its name and size, with ``source`` at its first byte."""
    where = source.name
    pending: dict[str, str] = {}
    while True:
        block = source.read(TAR_BLOCK)
        if len(block) < TAR_BLOCK:
            if not block and source.offset == 0:
                raise FileSpecificationError(f"{where}: the file is empty (0 bytes)")
            raise FileSpecificationError(f"{where}: truncated tar archive, or one without a FITS member")
        if block.count(0) == TAR_BLOCK:
            raise FileSpecificationError(f"{where}: the tar archive has no .fits or .fits.fz member")
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            first = source.offset == TAR_BLOCK
            reason = "not a tar archive" if first else "corrupt tar member header"
            raise FileSpecificationError(f"{where}: {reason} ({exc})") from None
        if info.type in _META_TYPES:
            if info.size > MAX_EXTENDED_HEADER:
                raise FileSpecificationError(
                    f"{where}: tar extended header of {info.size} bytes is larger than the"
                    f" {MAX_EXTENDED_HEADER // 1024} KiB accepted"
                )
            data = source.read(_padded(info.size))[: info.size]
            if len(data) < info.size:
                raise FileSpecificationError(f"{where}: truncated tar archive (inside an extended header)")
            if info.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
                pending.update(_pax_records(data, where))
            elif info.type == tarfile.GNUTYPE_LONGNAME:
                pending["path"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif info.type == tarfile.GNUTYPE_LONGLINK:
                pending["linkpath"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        name = pending.get("path", info.name)
        size = info.size
        if "size" in pending:
            try:
                size = int(pending["size"])
            except ValueError:
                raise FileSpecificationError(f"{where}: malformed size in a pax extended header") from None
        pending = {}
        _check_member_name(name, where)
        if info.issym() or info.islnk():
            raise FileSpecificationError(f"{where}: tar member {name!r} is a link; links are not accepted")
        if info.ischr() or info.isblk() or info.isfifo():
            raise FileSpecificationError(f"{where}: tar member {name!r} is a device or FIFO; not accepted")
        if info.type in _FILE_TYPES and fits_storage(name, _TAR_FITS_SUFFIXES) is not None:
            return name, size
        source.skip(_padded(size), f"tar member {name!r}")


class _MemberReader:
    """Reads at most ``size`` bytes of a tar member from the archive stream."""

    def __init__(self, source: Source, size: int) -> None:
        self._source = source
        self._left = size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._source.read(n) if n else b""
        self._left -= len(data)
        return data


_DECOMPRESSORS = (
    (b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
    (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
)


class TarWithFitsFile(FitsFile):
    """A tarball whose metadata is its first FITS member's header."""

    content_type: ClassVar[str | None] = "application/x-tar"

    def _check_extension(self) -> str:
        ext = self.open_file.extension.lower()
        if not ext.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
            raise FileSpecificationError(
                f"{self.open_file.name}: a tar file must end with .tar or .tar.gz, not {self.open_file.extension!r}"
            )
        return "tar"

    @staticmethod
    def _get_meta_file_from_targz(tarfileobj: tarfile.TarFile) -> IO[bytes]:
        """ocs_archive's hook: the member of ``tarfileobj`` whose header is the
        metadata. Overriding it changes which member is read: the tarball is
        then opened with :mod:`tarfile` (random access, nothing extracted to
        disk) and the override picks the member. Without an override the
        tarball is read as a stream up to its first ``.fits``/``.fits.fz``."""
        for member in tarfileobj.getmembers():
            if member.isfile() and fits_storage(member.name, _TAR_FITS_SUFFIXES) is not None:
                extracted = tarfileobj.extractfile(member)
                if extracted is not None:
                    return extracted
        raise FileSpecificationError("the tar archive has no .fits or .fits.fz member")

    @contextmanager
    def _open_fits(self) -> Iterator[tuple[BinaryReader, str, int | None]]:
        self._check_extension()
        if type(self)._get_meta_file_from_targz is not TarWithFitsFile._get_meta_file_from_targz:
            with self._member_from_hook() as member:
                yield member, "plain", None
            return
        f = self.open_file
        raw = f.get_from_start()
        magic = raw.read(6)
        raw.seek(0)
        stream: gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile | None = None
        for prefix, opener in _DECOMPRESSORS:
            if magic.startswith(prefix):
                stream = opener(raw)
                break
        try:
            archive = Source(stream or raw, f.name, size=None if stream else f.size, max_skip=self.max_stream_skip)
            _, size = first_fits_member(archive)
            yield _MemberReader(archive, size), "plain", None
        finally:
            if stream is not None:
                stream.close()

    @contextmanager
    def _member_from_hook(self) -> Iterator[BinaryReader]:
        f = self.open_file
        try:
            archive = tarfile.open(fileobj=f.get_from_start(), mode="r:*")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise FileSpecificationError(f"{f.name}: not a readable tar archive ({exc})") from None
        try:
            member = self._get_meta_file_from_targz(archive)
            try:
                yield member
            finally:
                member.close()
        finally:
            archive.close()

    def get_filestore_content_type(self) -> str:
        return self.content_type or ""
