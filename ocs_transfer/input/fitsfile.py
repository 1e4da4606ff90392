"""``FitsFile``: metadata from a FITS file's headers, data never read.

Supported: ``.fits`` (and ``.fit``/``.fts``), ``.fits.fz`` (the header of the
tile-compressed image, as the image would have it), and ``.fits.gz`` /
``.fits.bz2`` (decompressed as a stream only as far as the header needed).
"""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from ..exceptions import FileSpecificationError
from ..settings import Settings
from .datafile import DataFile
from .file import EmptyFile, split_name
from .fitsheader import MAX_STREAM_SKIP, BinaryReader, Source, image_header_from_compressed, iter_hdus
from .headerdata import HeaderData

__all__ = ["FITS_SUFFIXES", "FitsFile"]

#: Name suffixes a FitsFile can read, and how the bytes are stored.
FITS_SUFFIXES: dict[str, str] = {
    ".fits.fz": "fpack",
    ".fits.gz": "gzip",
    ".fits.bz2": "bzip2",
    ".fits": "plain",
    ".fit": "plain",
    ".fts": "plain",
}
_MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZh"}
_CONTENT_TYPES = {"gzip": "application/gzip", "bzip2": "application/x-bzip2"}


def fits_storage(name: str, suffixes: dict[str, str] = FITS_SUFFIXES) -> str | None:
    """How a FITS file of this name is stored (``plain``, ``fpack``, ``gzip``, ``bzip2``), or ``None``."""
    lowered = name.lower()
    for suffix, storage in suffixes.items():
        if lowered.endswith(suffix):
            return storage
    return None


class FitsFile(DataFile):
    """Metadata of a FITS file: the first HDU header that, merged with the
    caller's ``file_metadata`` (which wins), has every required header."""

    content_type: ClassVar[str | None] = "image/fits"
    #: Bytes a decompressing reader may skip to reach the header it needs.
    max_stream_skip: ClassVar[int] = MAX_STREAM_SKIP

    @property
    def INTEGER_TYPES(self) -> tuple[str, ...]:
        """Header keys whose null values become ``None`` rather than ``''``."""
        s = self.settings
        return (s.request_id_key, s.requestgroup_id_key, s.observation_id_key, s.configuration_id_key)

    # -- reading ------------------------------------------------------------------------------

    def _check_extension(self) -> str:
        storage = fits_storage(self.open_file.extension)
        if storage is None:
            raise FileSpecificationError(
                f"{self.open_file.name}: a FITS file must end with one of {', '.join(FITS_SUFFIXES)},"
                f" not {self.open_file.extension!r}"
            )
        return storage

    @contextmanager
    def _open_fits(self) -> Iterator[tuple[BinaryReader, str, int | None]]:
        """The FITS bytes of this file (decompressed as a stream where the name
        says so), how the file stores them, and their size when known."""
        storage = self._check_extension()
        f = self.open_file
        with fits_source(f.get_from_start(), f.name, storage, f.size, self.max_stream_skip) as source:
            yield source.fileobj, storage, source.size

    @contextmanager
    def get_fits(self) -> Iterator[BinaryReader]:
        """ocs_archive's hook: the FITS bytes as a file object at their first byte.

        Subclasses may override it (e.g. to fetch or unpack the FITS from
        elsewhere); the headers are then read from what it yields, as a
        stream (gzip or bzip2 content is recognised by its first bytes)."""
        with self._open_fits() as (fileobj, _, _):
            yield fileobj

    @contextmanager
    def _header_source(self) -> Iterator[Source]:
        """A reader positioned at the first FITS header."""
        name = self.open_file.name
        if type(self).get_fits is not FitsFile.get_fits:
            with self.get_fits() as fileobj, _sniffed_source(fileobj, name, self.max_stream_skip) as source:
                yield source
            return
        with self._open_fits() as (fileobj, _, size):
            yield Source(fileobj, name, size=size, max_skip=self.max_stream_skip)

    def _create_header_data(self, file_metadata: dict[str, Any]) -> None:
        if isinstance(self.open_file, EmptyFile):
            # No file, only its name and metadata (as ocs_archive, e.g. to compute a store path).
            super()._create_header_data(file_metadata)
            return
        try:
            with self._header_source() as source:
                headers = self._choose_header(source, file_metadata)
        finally:
            self.open_file.fileobj.seek(0)  # leave the file ready to be copied
        super()._create_header_data(headers)

    def _choose_header(self, source: Source, metadata: dict[str, Any]) -> dict[str, Any]:
        """The first HDU header that, merged with ``metadata``, has every required
        header (a tile-compressed image's header as the image would have it). A
        bare primary header is taken only when no later header qualifies."""
        fallback: dict[str, Any] | None = None
        best_missing: list[str] | None = None
        seen = 0
        for hdu in iter_hdus(source):
            seen += 1
            header = hdu.header
            if hdu.is_compressed_image:
                header = image_header_from_compressed(header, source.name)
            merged = {**header, **metadata}
            missing = self._missing_headers(merged)
            if not missing and hdu.is_bare:
                if fallback is None:
                    fallback = merged  # an empty primary: prefer a later header with content
            elif not missing:
                return merged
            elif best_missing is None or len(missing) < len(best_missing):
                best_missing = missing
        if fallback is not None:
            return fallback
        raise FileSpecificationError(
            f"{source.name}: missing required headers: {', '.join(best_missing or self.required_headers)}"
            f" (not all in any of its {seen} HDUs; supply them as file metadata, or change the required headers)"
        )

    # -- normalising ----------------------------------------------------------------------------

    def _normalise_headers(self) -> None:
        self._remove_blacklist_headers()
        self._normalize_null_values()
        self._normalize_related_frames()

    def _remove_blacklist_headers(self) -> None:
        for header in self.blacklist_headers:
            self.header_data.remove_header(header)

    def _normalize_null_values(self) -> None:
        normalize_null_values(self.header_data, self.settings)

    def _normalize_related_frames(self) -> None:
        """Related frames are stored by basename: drop their extensions."""
        from .filefactory import FileFactory

        known = FileFactory.known_extensions(self.settings)
        headers = self.header_data.get_headers()
        updates = {}
        for key in self.header_data.get_related_frame_keys():
            value = headers.get(key)
            if isinstance(value, str) and value and value not in self.settings.null_header_values:
                basename, extension = split_name(value, known)
                if extension and basename:
                    updates[key] = basename
        self.header_data.update_headers(updates)

    def get_filestore_content_type(self) -> str:
        storage = fits_storage(self.open_file.extension)
        return _CONTENT_TYPES.get(storage or "", super().get_filestore_content_type())


def normalize_null_values(header_data: HeaderData, settings: Settings) -> None:
    """Null markers (``NULL_HEADER_VALUES``, e.g. ``N/A``) become ``''``, or
    ``None`` for integer-valued keys, which also turn ``NONE`` into ``None``."""
    integer_keys = (settings.request_id_key, settings.requestgroup_id_key, settings.observation_id_key,
                    settings.configuration_id_key)
    nulls = settings.null_header_values
    updates: dict[str, Any] = {}
    for key, value in header_data.get_headers().items():
        if isinstance(value, str) and value in nulls:
            updates[key] = None if key in integer_keys else ""
        elif key in integer_keys and isinstance(value, str) and "NONE" in value.upper():
            updates[key] = None
    header_data.update_headers(updates)


@contextmanager
def fits_source(fileobj: BinaryReader, name: str, storage: str, size: int | None, max_skip: int) -> Iterator[Source]:
    """Yield a :class:`Source` reading the FITS bytes of ``fileobj`` (decompressing
    when ``storage`` says so); ``size`` is the size of a plain, seekable file."""
    if storage in _MAGIC:
        magic = _MAGIC[storage]
        start = fileobj.read(len(magic))
        if start != magic:
            what = "empty (0 bytes)" if not start else f"not {storage}-compressed"
            raise FileSpecificationError(f"{name}: named as {storage}-compressed FITS but the file is {what}")
        fileobj.seek(-len(start), 1)  # type: ignore[attr-defined]
        stream: BinaryReader
        raw: Any = fileobj
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if storage == "gzip" else bz2.BZ2File(raw)
        try:
            yield Source(stream, name, size=None, max_skip=max_skip)
        finally:
            stream.close()  # type: ignore[attr-defined]
    else:
        yield Source(fileobj, name, size=size, max_skip=max_skip)


@contextmanager
def _sniffed_source(fileobj: BinaryReader, name: str, max_skip: int) -> Iterator[Source]:
    """A :class:`Source` over what a subclass's ``get_fits()`` gave: gzip or
    bzip2 content (recognised by its first bytes) is decompressed as a
    stream; a plain seekable file is read by seeking, like our own files."""
    raw: Any = fileobj
    seekable = bool(getattr(raw, "seekable", lambda: False)())
    start = fileobj.read(3)
    storage = next((s for s, magic in _MAGIC.items() if start.startswith(magic)), "plain")
    if seekable:
        raw.seek(-len(start), 1)
        rest: Any = raw
    else:
        rest = _Prefixed(start, fileobj)
    if storage == "plain":
        size = None
        if seekable:
            pos = raw.tell()
            size = raw.seek(0, 2) - pos
            raw.seek(pos)
        yield Source(rest, name, size=size, max_skip=max_skip)
        return
    stream: Any = gzip.GzipFile(fileobj=rest, mode="rb") if storage == "gzip" else bz2.BZ2File(rest)
    try:
        yield Source(stream, name, size=None, max_skip=max_skip)
    finally:
        stream.close()


class _Prefixed:
    """``prefix`` then the rest of ``fileobj``, read forward only."""

    def __init__(self, prefix: bytes, fileobj: BinaryReader) -> None:
        self._prefix = prefix
        self._fileobj = fileobj

    def read(self, size: int = -1, /) -> bytes:
        if not self._prefix:
            return self._fileobj.read(size)
        if size < 0:
            data, self._prefix = self._prefix + self._fileobj.read(), b""
            return data
        data, self._prefix = self._prefix[:size], self._prefix[size:]
        if len(data) < size:
            data += self._fileobj.read(size - len(data))
        return data
