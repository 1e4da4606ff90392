"""Reading FITS headers without reading FITS data.

A FITS file is a sequence of HDUs, each a header of 2880-byte blocks of 80-byte
ASCII cards ending with an ``END`` card, followed by data whose size the header
declares. This module parses headers itself and skips data by seeking (plain
files) or by reading and discarding a bounded number of bytes (decompressed
streams), so memory and time depend on the header sizes only.

Every malformation becomes a :class:`FileSpecificationError` with a one-line
reason. Limits keep hostile input bounded: at most :data:`MAX_HEADER_BLOCKS`
blocks per header, :data:`MAX_HDUS` HDUs, and :data:`MAX_STREAM_SKIP` bytes
decompressed to skip data in a stream.
"""

from __future__ import annotations

import io
import lzma
import math
import re
import zlib
from collections.abc import Iterator
from typing import Any, Protocol

import attrs

from ..exceptions import FileSpecificationError

__all__ = ["BinaryReader", "Hdu", "Source", "image_header_from_compressed", "iter_hdus", "parse_card_value"]

BLOCK = 2880
CARD = 80
MAX_HEADER_BLOCKS = 1000
MAX_HDUS = 1000
MAX_STREAM_SKIP = 64 * 1024 * 1024
#: More data than any file system holds: a header declaring more is malformed.
MAX_DATA_BYTES = 2**63
_SKIP_CHUNK = 256 * 1024
_COMMENTARY = ("COMMENT", "HISTORY", "")
_INT_RE = re.compile(r"[+-]?\d+\Z")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?\Z")
_VALID_BITPIX = (8, 16, 32, 64, -32, -64)


class BinaryReader(Protocol):
    """What :class:`Source` reads from: anything with ``read(n) -> bytes``
    (and ``seek`` when its size is known)."""

    def read(self, size: int = -1, /) -> bytes: ...


class Source:
    """A forward-only reader of a file or of a decompressed stream.

    ``size`` is the total size when known (plain seekable files): then data is
    skipped by seeking and a skip past the end is reported as truncation.
    Otherwise skipped bytes are read and discarded, at most ``max_skip`` in all.
    """

    def __init__(self, fileobj: BinaryReader, name: str, *, size: int | None = None, max_skip: int = MAX_STREAM_SKIP):
        self.fileobj = fileobj
        self.name = name
        self.size = size
        self.max_skip = max_skip
        self.offset = 0
        self._skipped = 0

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end)."""
        parts: list[bytes] = []
        want = n
        while want > 0:
            try:
                chunk = self.fileobj.read(want)
            except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
                raise FileSpecificationError(f"{self.name}: cannot read: {exc}") from exc
            if not chunk:
                break
            parts.append(chunk)
            want -= len(chunk)
        data = b"".join(parts)
        self.offset += len(data)
        return data

    def skip(self, n: int, what: str) -> None:
        """Move ``n`` bytes forward; ``what`` names the bytes for error messages."""
        if n <= 0:
            return
        if self.size is not None:
            if self.offset + n > self.size:
                raise FileSpecificationError(
                    f"{self.name}: truncated: {what} needs {n} bytes but only {self.size - self.offset} remain"
                )
            self.fileobj.seek(n, io.SEEK_CUR)  # type: ignore[attr-defined]
            self.offset += n
            return
        if self._skipped + n > self.max_skip:
            raise FileSpecificationError(
                f"{self.name}: {what} would need more than {self.max_skip // (1024 * 1024)} MiB decompressed"
                " to reach the header wanted; refusing to decompress further"
            )
        left = n
        while left > 0:
            got = len(self.read(min(left, _SKIP_CHUNK)))
            if got == 0:
                raise FileSpecificationError(f"{self.name}: truncated: the stream ended inside {what}")
            left -= got
        self._skipped += n

    def check_available(self, n: int, what: str) -> None:
        """Raise if a plain file is too short to hold ``n`` more bytes."""
        if self.size is not None and self.offset + n > self.size:
            raise FileSpecificationError(
                f"{self.name}: truncated: {what} is {n} bytes but only {self.size - self.offset} remain"
            )


@attrs.frozen
class Hdu:
    """One HDU's header (keyword -> value, in file order) and its data size in
    bytes (padding not included)."""

    index: int
    header: dict[str, Any]
    data_size: int

    @property
    def is_compressed_image(self) -> bool:
        return self.header.get("ZIMAGE") is True

    @property
    def is_bare(self) -> bool:
        """Only structural keywords (a typical empty primary HDU of a multi-extension file)."""
        structural = {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "CHECKSUM", "DATASUM"}
        return all(k in structural or k in _COMMENTARY or k.startswith("NAXIS") for k in self.header)


def parse_card_value(text: str) -> Any:
    """The value of a card's value field (the text after ``= ``), comment dropped.

    Strings lose trailing blanks and have ``''`` unescaped; ``T``/``F`` become
    booleans; integers and reals (``D`` exponents too) become numbers; an empty
    value is ``None``. Anything else is kept as its stripped text.
    """
    s = text.lstrip()
    if s.startswith("'"):
        out: list[str] = []
        i = 1
        n = len(s)
        while i < n:
            c = s[i]
            if c == "'":
                if i + 1 < n and s[i + 1] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(c)
            i += 1
        return "".join(out).rstrip()
    word = s.split("/", 1)[0].strip()
    if not word:
        return None
    if word in ("T", "F"):
        return word == "T"
    if _INT_RE.match(word):
        return int(word)
    if _FLOAT_RE.match(word):
        return float(word.replace("D", "E").replace("d", "e"))
    if word.startswith("(") and word.endswith(")"):
        parts = word[1:-1].split(",")
        if len(parts) == 2:
            try:
                return complex(float(parts[0].replace("D", "E")), float(parts[1].replace("D", "E")))
            except ValueError:
                pass
    return word


def _read_header(source: Source, first: bool) -> dict[str, Any] | None:
    """Parse the next header; ``None`` at a clean end of the file."""
    header: dict[str, Any] = {}
    continuing: str | None = None
    for block_no in range(MAX_HEADER_BLOCKS):
        block = source.read(BLOCK)
        if len(block) < BLOCK:
            if block_no == 0 and not first and not block.strip(b"\0 "):
                return None  # the clean end of the file (or trailing padding)
            if first and block_no == 0 and not block:
                raise FileSpecificationError(f"{source.name}: the file is empty (0 bytes)")
            if not (first and block_no == 0 and not block.startswith(b"SIMPLE  =")):
                raise FileSpecificationError(f"{source.name}: truncated: the header ends before its END card")
        text = block.decode("latin-1")
        if block_no == 0:
            head = text[:CARD]
            if first:
                if head[:9] != "SIMPLE  =" or parse_card_value(head[10:]) not in (True, False):
                    raise FileSpecificationError(f"{source.name}: not a FITS file: it does not start with SIMPLE = T")
            elif head[:9] != "XTENSION=":
                raise FileSpecificationError(
                    f"{source.name}: malformed FITS: extension {len(header)} does not start with XTENSION"
                )
        for pos in range(0, len(text), CARD):
            card = text[pos : pos + CARD]
            key = card[:8].rstrip()
            if key == "END" and not card[8:].strip():
                return header
            if key == "CONTINUE" and continuing is not None:
                more = parse_card_value(card[8:])
                prev: str = header[continuing]
                if isinstance(more, str):
                    header[continuing] = prev[:-1] + more
                    continuing = continuing if more.endswith("&") else None
                    continue
                continuing = None
            continuing = None  # a trailing '&' without a CONTINUE card is part of the value
            if key in _COMMENTARY or key == "CONTINUE":
                if key:
                    text_value = card[8:].rstrip()
                    header[key] = f"{header[key]}\n{text_value}" if key in header else text_value
                continue
            if key == "HIERARCH":
                rest = card[8:]
                eq = rest.find("=")
                if eq < 0:
                    continue
                key = rest[:eq].strip()
                value = parse_card_value(rest[eq + 1 :])
            elif card[8:10] == "= ":
                value = parse_card_value(card[10:])
            else:
                continue  # a keyword without a value indicator carries no value
            header[key] = value
            if isinstance(value, str) and value.endswith("&"):
                continuing = key
    raise FileSpecificationError(
        f"{source.name}: the header has no END card within {MAX_HEADER_BLOCKS} blocks"
        f" ({MAX_HEADER_BLOCKS * BLOCK // 1024} KiB); not a usable FITS file"
    )


def _data_size(header: dict[str, Any], name: str, index: int) -> int:
    """Bytes of data after this header (without the padding to whole blocks)."""
    where = f"{name}: HDU {index}"
    bitpix = header.get("BITPIX")
    naxis = header.get("NAXIS")
    if bitpix not in _VALID_BITPIX:
        raise FileSpecificationError(f"{where}: BITPIX={bitpix!r} is not one of {_VALID_BITPIX}")
    if not isinstance(naxis, int) or isinstance(naxis, bool) or not 0 <= naxis <= 999:
        raise FileSpecificationError(f"{where}: NAXIS={naxis!r} is not a whole number from 0 to 999")
    if naxis == 0:
        return 0
    axes = []
    for i in range(1, naxis + 1):
        n = header.get(f"NAXIS{i}")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise FileSpecificationError(f"{where}: NAXIS{i}={n!r} is not a whole number >= 0")
        axes.append(n)
    if header.get("GROUPS") is True and axes[0] == 0:
        axes = axes[1:]
    pcount = header.get("PCOUNT", 0)
    gcount = header.get("GCOUNT", 1)
    if not isinstance(pcount, int) or not isinstance(gcount, int) or pcount < 0 or gcount < 0:
        raise FileSpecificationError(f"{where}: PCOUNT={pcount!r}/GCOUNT={gcount!r} are not whole numbers >= 0")
    nbytes: int = abs(bitpix) // 8 * gcount * (pcount + math.prod(axes))
    if nbytes > MAX_DATA_BYTES:  # also keeps the number printable: Python refuses str() of huge ints
        raise FileSpecificationError(
            f"{where}: NAXISn, PCOUNT and GCOUNT declare more than 2**63 bytes of data; not a usable FITS file"
        )
    return nbytes


def iter_hdus(source: Source) -> Iterator[Hdu]:
    """The HDUs of ``source`` one by one; the data of an HDU is skipped only
    when the next one is asked for."""
    for index in range(MAX_HDUS):
        header = _read_header(source, first=index == 0)
        if header is None:
            return
        size = _data_size(header, source.name, index)
        source.check_available(size, f"the data of HDU {index}")
        yield Hdu(index, header, size)
        source.skip(size, f"the data of HDU {index}")
        padding = -size % BLOCK
        if source.size is not None and source.offset + padding > source.size:
            return  # the last HDU without its final padding: tolerated, as astropy does
        if len(source.read(padding)) < padding:
            return
    raise FileSpecificationError(f"{source.name}: more than {MAX_HDUS} HDUs; not a usable FITS file")


# Keywords of the binary table that carries a tile-compressed image; they
# describe the table, not the image, and are not in the image header. The
# lists are astropy's (``_bintable_header_to_image_header``), so the header is
# the one astropy (and so ocs_archive) shows, key for key and in its order.
_STRUCTURAL = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "GROUPS", "BSCALE", "BZERO",
               "TFIELDS")
_TABLE_COLUMN_KEYS = re.compile(
    r"^T(?:TYPE|FORM|UNIT|NULL|SCAL|ZERO|DISP|BCOL|DIM|CTYP|CUNI|CRPX|CRVL|CDLT|RPOS)[1-9][0-9 ]*$"
)
_COMPRESSION_KEYS = frozenset((
    "ZSIMPLE", "ZTENSION", "ZBITPIX", "ZNAXIS", "ZEXTEND", "ZBLOCKED", "ZPCOUNT", "ZGCOUNT", "ZHECKSUM", "ZDATASUM",
    "ZIMAGE", "ZCMPTYPE", "ZMASKCMP", "ZQUANTIZ", "ZDITHER0", "ZBLANK", "ZSCALE", "ZZERO",
))  # fmt: skip
_INDEXED_COMPRESSION_KEYS = re.compile(r"^(?:ZNAXIS|ZTILE|ZNAME|ZVAL)[1-9][0-9 ]*$", re.IGNORECASE)


def _is_table_or_compression_key(key: str) -> bool:
    return (
        key in ("TFIELDS", "THEAP", "CHECKSUM", "DATASUM")
        or key in _COMPRESSION_KEYS
        or bool(_TABLE_COLUMN_KEYS.match(key))
        or bool(_INDEXED_COMPRESSION_KEYS.match(key))
    )


def image_header_from_compressed(header: dict[str, Any], name: str) -> dict[str, Any]:
    """The header of the image a tile-compressed (``ZIMAGE = T``) table holds,
    as astropy gives it: ``Z`` keywords become their image counterparts, the
    table's own keywords go, ``BSCALE``/``BZERO`` stay only when not 0 (and
    move to the end, as ``EXTEND``, ``BLOCKED``, ``CHECKSUM`` and ``DATASUM``
    do)."""
    zbitpix = header.get("ZBITPIX")
    znaxis = header.get("ZNAXIS")
    if zbitpix not in _VALID_BITPIX or not isinstance(znaxis, int) or not 0 <= znaxis <= 999:
        raise FileSpecificationError(
            f"{name}: malformed compressed image header: ZBITPIX={zbitpix!r}, ZNAXIS={znaxis!r}"
        )
    axes: list[tuple[str, Any]] = []
    for i in range(1, znaxis + 1):
        n = header.get(f"ZNAXIS{i}")
        if not isinstance(n, int) or n < 0:
            raise FileSpecificationError(f"{name}: malformed compressed image header: ZNAXIS{i}={n!r}")
        axes.append((f"NAXIS{i}", n))
    table_naxis = header.get("NAXIS", 0) if isinstance(header.get("NAXIS"), int) else 0
    table_fields = header.get("TFIELDS", 0) if isinstance(header.get("TFIELDS"), int) else 0
    stripped = {f"NAXIS{i}" for i in range(1, table_naxis + 1)} | set(_STRUCTURAL)
    stripped |= {f"{k}{i}" for k in ("TFORM", "TSCAL", "TZERO", "TNULL", "TTYPE", "TUNIT", "TDISP", "TDIM", "THEAP",
                                     "TBCOL") for i in range(1, table_fields + 1)}
    rest = {k: v for k, v in header.items() if k not in stripped and not _is_table_or_compression_key(k)}
    for key in ("BSCALE", "BZERO"):
        if header.get(key):  # astropy keeps them only when not 0 (BZERO = 0.0 goes), at the end
            rest[key] = header[key]
    for key in [k for k in rest if k.startswith("NAXIS") and k[5:].isdigit() and int(k[5:]) > znaxis]:
        del rest[key]
    image: dict[str, Any] = {}
    if "ZSIMPLE" in header:
        image["SIMPLE"] = header["ZSIMPLE"]
    else:
        image["XTENSION"] = "IMAGE"
    image["BITPIX"] = zbitpix
    image["NAXIS"] = znaxis
    image.update(axes)
    if "ZSIMPLE" not in header:
        image["PCOUNT"] = header.get("ZPCOUNT", 0)
        image["GCOUNT"] = header.get("ZGCOUNT", 1)
    for key, value in rest.items():
        if key not in image:
            image[key] = value
    for zkey, key in (("ZEXTEND", "EXTEND"), ("ZBLOCKED", "BLOCKED"), ("ZHECKSUM", "CHECKSUM"),
                      ("ZDATASUM", "DATASUM")):
        if zkey in header:
            image.pop(key, None)
            image[key] = header[zkey]
    if image.get("EXTNAME") == "COMPRESSED_IMAGE":  # the table's default name, not the image's
        del image["EXTNAME"]
    if zbitpix > 0 and "BLANK" not in image:
        if "ZBLANK" in header:
            image["BLANK"] = header["ZBLANK"]
        elif any(header.get(f"TTYPE{i}") == "ZBLANK" for i in range(1, table_fields + 1)):
            image["BLANK"] = -(1 << (zbitpix - 1))
    return image
