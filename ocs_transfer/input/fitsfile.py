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
from .datafile import DataFile
from .file import split_name
from .fitsheader import MAX_STREAM_SKIP, BinaryReader, Source, image_header_from_compressed, iter_hdus

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
    def _header_source(self) -> Iterator[tuple[Source, str]]:
        """A reader positioned at the first FITS header, and how the FITS is stored."""
        storage = self._check_extension()
        f = self.open_file
        with fits_source(f.get_from_start(), f.name, storage, f.size, self.max_stream_skip) as source:
            yield source, storage

    def _create_header_data(self, file_metadata: dict[str, Any]) -> None:
        try:
            with self._header_source() as (source, storage):
                headers = self._choose_header(source, file_metadata, storage == "fpack")
        finally:
            self.open_file.fileobj.seek(0)  # leave the file ready to be copied
        super()._create_header_data(headers)

    def _choose_header(self, source: Source, metadata: dict[str, Any], want_compressed: bool) -> dict[str, Any]:
        chosen: dict[str, Any] | None = None
        fallback: dict[str, Any] | None = None
        best_missing: list[str] | None = None
        seen = 0
        saw_compressed = False
        for hdu in iter_hdus(source):
            seen += 1
            header = hdu.header
            if hdu.is_compressed_image:
                saw_compressed = True
                header = image_header_from_compressed(header, source.name)
            if chosen is None:
                merged = {**header, **metadata}
                missing = self._missing_headers(merged)
                if not missing and hdu.is_bare and fallback is None:
                    fallback = merged  # an empty primary: prefer a later header with content
                elif not missing:
                    chosen = merged
                elif best_missing is None or len(missing) < len(best_missing):
                    best_missing = missing
            if chosen is not None and (saw_compressed or not want_compressed):
                break
        if want_compressed and not saw_compressed:
            raise FileSpecificationError(
                f"{source.name}: named .fits.fz but has no tile-compressed image HDU (ZIMAGE = T);"
                " compress it with fpack or rename it .fits"
            )
        result = chosen if chosen is not None else fallback
        if result is None:
            raise FileSpecificationError(
                f"{source.name}: missing required headers: {', '.join(best_missing or self.required_headers)}"
                f" (not all in any of its {seen} HDUs; supply them as file metadata, or change the required headers)"
            )
        return result

    # -- normalising ----------------------------------------------------------------------------

    def _normalise_headers(self) -> None:
        self._remove_blacklist_headers()
        self._normalize_null_values()
        self._normalize_related_frames()

    def _remove_blacklist_headers(self) -> None:
        for header in self.blacklist_headers:
            self.header_data.remove_header(header)

    def _normalize_null_values(self) -> None:
        """Null markers (``NULL_HEADER_VALUES``, e.g. ``N/A``) become ``''``, or
        ``None`` for integer-valued keys, which also turn ``NONE`` into ``None``."""
        integer_keys = self.INTEGER_TYPES
        nulls = self.settings.null_header_values
        updates: dict[str, Any] = {}
        for key, value in self.header_data.get_headers().items():
            if isinstance(value, str) and value in nulls:
                updates[key] = None if key in integer_keys else ""
            elif key in integer_keys and isinstance(value, str) and "NONE" in value.upper():
                updates[key] = None
        self.header_data.update_headers(updates)

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
