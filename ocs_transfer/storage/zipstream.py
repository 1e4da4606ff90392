"""A zip archive made as it is read: a non-seekable reader whose bytes are
the archive, for streaming a bundle of files into any store's ``put``.

The archive is built while the store reads it, so nothing of it is kept on
disk or in memory beyond one chunk and the central directory (about 100 bytes
per member). Every member is written with a data descriptor (general purpose
flag bit 3), the way a zip is written to a pipe: its CRC-32 and sizes follow
its data. The bytes depend only on the members' names and contents:

- members come in the order given (callers sort them by name);
- every member has the same timestamp (1980-01-01 00:00, the zip epoch), the
  same permissions (``rw-r--r--``) and no extra fields beyond ZIP64's;
- deflated members use one zlib level.

ZIP64 is used where the format needs it: for a member whose size, or whose
offset in the archive, does not fit in 32 bits, and for the end records when
the central directory lies beyond 4 GiB or there are more than 65,535
members (``force_zip64`` uses it for every member, to test readers with small
files). Members that are already compressed (:data:`STORED_EXTENSIONS`:
``.fz``, ``.gz``, ``.jpg``, ...) are stored; the others are deflated. A
stored member is read straight into the caller's buffer (no copy), so a
bundle of compressed FITS files goes at the speed of reading them.

When every member is stored the archive's size is known before the first
byte (:attr:`ZipStream.size`), which providers that need a size up front
(Seafile's upload API) are given.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

import attrs

from ..exceptions import RetryError

__all__ = ["STORED_EXTENSIONS", "MemberChangedError", "ZipMember", "ZipStream", "stored_by_default"]

#: Names ending so are already compressed: stored, not deflated again.
STORED_EXTENSIONS = (
    ".fz", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".zip", ".7z", ".jpg", ".jpeg", ".png", ".gif", ".webp",
    ".mp4", ".pdf",
)  # fmt: skip

_U32 = 0xFFFFFFFF
_U16 = 0xFFFF
#: The zip epoch, 1980-01-01 00:00:00, as DOS date and time.
_DOS_DATE = (0 << 9) | (1 << 5) | 1
_DOS_TIME = 0
_STORED, _DEFLATED = 0, 8
_FLAG_DESCRIPTOR = 0x0008
_FLAG_UTF8 = 0x0800
_VERSION_ZIP64 = 45
_VERSION_DEFLATE = 20
_MADE_BY = (3 << 8) | _VERSION_ZIP64  # Unix, spec 4.5
_EXTERNAL_ATTR = (0o100644 << 16) & _U32
#: How much a deflated member may grow over its size (incompressible data):
#: zlib adds 5 bytes per 16 KiB block plus a few; this is far above that.
_DEFLATE_GROWTH = 1.01
_DEFLATE_SLACK = 1 << 20


class MemberChangedError(RetryError):
    """A member's file gave another number of bytes than it had when the
    bundle was planned: it changed while it was read. Nothing is published
    (the store checks the archive it got); try again."""


def stored_by_default(name: str) -> bool:
    """Whether a member of this name is stored (already compressed) rather than deflated."""
    return name.lower().endswith(STORED_EXTENSIONS)


@attrs.frozen(kw_only=True)
class ZipMember:
    """One file of the archive: its name in it, its size now, and how to open it.

    ``check`` is called with the byte count once the member was read to its
    end (before its data descriptor is written); it raises when the source is
    no longer what was planned. By default the count must equal ``size``.
    """

    name: str
    size: int
    open: Callable[[], IO[bytes]]
    store: bool | None = None  #: None: by the name (:func:`stored_by_default`)
    check: Callable[[int], None] | None = None

    @property
    def stored(self) -> bool:
        return stored_by_default(self.name) if self.store is None else self.store


@attrs.define
class _Entry:
    """What the central directory needs of a written member."""

    name: bytes
    flags: int
    method: int
    offset: int
    zip64: bool
    crc: int = 0
    compressed: int = 0
    size: int = 0


class _Direct:
    """A stored member's data, read straight into the reader's buffer."""

    def __init__(self, source: IO[bytes], member: ZipMember, entry: _Entry) -> None:
        self.source = source
        self.member = member
        self.entry = entry
        self.readinto = getattr(source, "readinto", None)

    def fill(self, buffer: memoryview) -> int:
        want = len(buffer)
        if self.readinto is not None:
            got = self.readinto(buffer) or 0
        else:
            data = self.source.read(want)
            got = len(data)
            buffer[:got] = data
        if got:
            self.entry.crc = zlib.crc32(buffer[:got], self.entry.crc)
            self.entry.size += got
        return int(got)


class ZipStream(io.RawIOBase):
    """The zip archive of ``members`` as a readable, non-seekable stream.

    ``chunk_size`` is how much of a deflated member is read at a time;
    ``level`` is zlib's compression level. Close it to close the member
    being read (if any). ``members`` holds the archive's members (name, size,
    CRC-32) once it was read to the end.
    """

    def __init__(
        self,
        members: Sequence[ZipMember],
        *,
        chunk_size: int = 1 << 20,
        level: int = 6,
        force_zip64: bool = False,
    ) -> None:
        super().__init__()
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"two members of the bundle are named {dup!r}")
        self._members = list(members)
        self._chunk = chunk_size
        self._level = level
        self._force = force_zip64
        self._entries: list[_Entry] = []
        self._offset = 0
        self._pending = memoryview(b"")
        self._direct: _Direct | None = None
        self._open: IO[bytes] | None = None
        self._steps: Iterator[bytes | _Direct] = self._produce()

    # -- the file-object surface ----------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def size(self) -> int | None:
        """The archive's size in bytes when it is known before it is made
        (every member stored), else None."""
        if not all(m.stored for m in self._members):
            return None
        offset = 0
        central = 0
        for member in self._members:
            name = member.name.encode("utf-8")
            zip64 = self._member_zip64(member, offset)
            central += 46 + len(name) + self._central_extra_len(zip64, member.size, member.size, offset)
            offset += 30 + len(name) + (20 if zip64 else 0) + member.size + (24 if zip64 else 16)
        return offset + central + self._end_len(offset, central)

    def measure(self) -> int:
        """The archive's size: :attr:`size` when known ahead, else by making
        a copy of the archive and counting its bytes (it is deterministic,
        so the real one will be as long; each member is read once more)."""
        known = self.size
        if known is not None:
            return known
        twin = ZipStream(self._members, chunk_size=self._chunk, level=self._level, force_zip64=self._force)
        buffer = bytearray(self._chunk)
        total = 0
        try:
            while got := twin.readinto(buffer):
                total += got
        finally:
            twin.close()
        return total

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            if self._pending:
                n = min(len(view), len(self._pending))
                view[:n] = self._pending[:n]
                self._pending = self._pending[n:]
                self._offset += n
                return n
            if self._direct is not None:
                got = self._direct.fill(view)
                if got:
                    self._offset += got
                    return got
                self._direct = None
            step = next(self._steps, None)
            if step is None:
                return 0
            if isinstance(step, _Direct):
                self._direct = step
            else:
                self._pending = memoryview(step)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        buffer = bytearray(size)
        got = self.readinto(buffer)
        del buffer[got:]
        return bytes(buffer)

    def close(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None
        super().close()

    @property
    def members(self) -> list[dict[str, Any]]:
        """``[{"name", "size", "compressed", "crc32"}]`` of the members written so far."""
        return [{"name": e.name.decode("utf-8"), "size": e.size, "compressed": e.compressed, "crc32": f"{e.crc:08x}"}
                for e in self._entries]  # fmt: skip

    # -- the archive ------------------------------------------------------------------

    def _member_zip64(self, member: ZipMember, offset: int) -> bool:
        if self._force or offset >= _U32:
            return True
        if member.stored:
            return member.size >= _U32
        return member.size * _DEFLATE_GROWTH + _DEFLATE_SLACK >= _U32

    @staticmethod
    def _central_extra_len(zip64: bool, size: int, compressed: int, offset: int) -> int:
        if not zip64 and size < _U32 and compressed < _U32 and offset < _U32:
            return 0
        return 4 + 8 + 8 + (8 if offset >= _U32 else 0)

    def _end_len(self, cd_offset: int, cd_size: int) -> int:
        return 22 + (56 + 20 if self._end_zip64(cd_offset, cd_size) else 0)

    def _end_zip64(self, cd_offset: int, cd_size: int) -> bool:
        return self._force or len(self._members) >= _U16 or cd_offset >= _U32 or cd_size >= _U32

    def _produce(self) -> Iterator[bytes | _Direct]:
        for member in self._members:
            yield from self._member(member)
        yield from self._central_directory()

    def _member(self, member: ZipMember) -> Iterator[bytes | _Direct]:
        name = member.name.encode("utf-8")
        flags = _FLAG_DESCRIPTOR | (_FLAG_UTF8 if not member.name.isascii() else 0)
        method = _STORED if member.stored else _DEFLATED
        zip64 = self._member_zip64(member, self._offset + len(self._pending))
        entry = _Entry(name=name, flags=flags, method=method, offset=self._offset, zip64=zip64)
        version = _VERSION_ZIP64 if zip64 else _VERSION_DEFLATE
        extra = struct.pack("<HHQQ", 1, 16, 0, 0) if zip64 else b""
        sizes = (_U32, _U32) if zip64 else (0, 0)
        yield struct.pack("<IHHHHHIIIHH", 0x04034B50, version, flags, method, _DOS_TIME, _DOS_DATE, 0, *sizes,
                          len(name), len(extra)) + name + extra  # fmt: skip
        source = member.open()
        self._open = source
        try:
            if method == _STORED:
                yield _Direct(source, member, entry)
                entry.compressed = entry.size
            else:
                packer = zlib.compressobj(self._level, zlib.DEFLATED, -15)
                while True:
                    data = source.read(self._chunk)
                    if not data:
                        break
                    entry.crc = zlib.crc32(data, entry.crc)
                    entry.size += len(data)
                    out = packer.compress(data)
                    if out:
                        entry.compressed += len(out)
                        yield out
                tail = packer.flush()
                entry.compressed += len(tail)
                yield tail
        finally:
            self._open = None
            source.close()
        if member.check is not None:
            member.check(entry.size)
        elif entry.size != member.size:
            raise MemberChangedError(
                f"bundle member {member.name!r} gave {entry.size} bytes, it had {member.size} when the bundle was"
                " planned: it changed while it was read; nothing was published"
            )
        if not zip64 and (entry.compressed >= _U32 or entry.size >= _U32):
            raise MemberChangedError(f"bundle member {member.name!r} outgrew 4 GiB while it was read")
        if zip64:
            yield struct.pack("<IIQQ", 0x08074B50, entry.crc, entry.compressed, entry.size)
        else:
            yield struct.pack("<IIII", 0x08074B50, entry.crc, entry.compressed, entry.size)
        self._entries.append(entry)

    def _central_directory(self) -> Iterator[bytes]:
        start = self._offset
        size = 0
        for e in self._entries:
            big_offset = e.offset >= _U32
            if self._central_extra_len(e.zip64, e.size, e.compressed, e.offset):
                extra_fields = [e.size, e.compressed] + ([e.offset] if big_offset else [])
                extra = struct.pack(f"<HH{len(extra_fields)}Q", 1, 8 * len(extra_fields), *extra_fields)
                sizes = (_U32, _U32)
                version = _VERSION_ZIP64
            else:
                extra, sizes, version = b"", (e.compressed, e.size), _VERSION_ZIP64 if e.zip64 else _VERSION_DEFLATE
            record = struct.pack(
                "<IHHHHHHIIIHHHHHII", 0x02014B50, _MADE_BY, version, e.flags, e.method, _DOS_TIME, _DOS_DATE, e.crc,
                *sizes, len(e.name), len(extra), 0, 0, 0, _EXTERNAL_ATTR, _U32 if big_offset else e.offset,
            ) + e.name + extra  # fmt: skip
            size += len(record)
            yield record
        count = len(self._entries)
        end_offset = start + size
        if self._end_zip64(start, size):
            yield struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, _MADE_BY, _VERSION_ZIP64, 0, 0, count, count, size, start)
            yield struct.pack("<IIQI", 0x07064B50, 0, end_offset, 1)
        yield struct.pack(
            "<IHHHHIIH", 0x06054B50, 0, 0, min(count, _U16), min(count, _U16), min(size, _U32), min(start, _U32), 0
        )
