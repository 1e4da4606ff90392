"""The streamed zip: readable by zipfile and unzip, the same bytes for the
same members, stored or deflated by name, ZIP64 where asked or needed, and
a member that changes while it is read fails the archive."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from ocs_transfer.storage.zipstream import MemberChangedError, ZipMember, ZipStream
from ocs_transfer.testing.bundles import assert_bundle_holds
from ocs_transfer.testing.data import ShortReader

FILES = {
    "run/a.fits.fz": os.urandom(300_000),
    "run/notes.txt": b"exposure 30 s\n" * 5000,
    "run/ümlaut thumb.jpg": os.urandom(5000),
    "empty.txt": b"",
}


def members(files: dict[str, bytes], **kw: object) -> list[ZipMember]:
    return [ZipMember(name=n, size=len(d), open=lambda d=d: io.BytesIO(d), **kw)  # type: ignore[arg-type]
            for n, d in sorted(files.items())]  # fmt: skip


def read_all(stream: ZipStream, chunk: int = 65536) -> bytes:
    out = bytearray()
    buf = bytearray(chunk)
    while got := stream.readinto(buf):
        out += buf[:got]
    return bytes(out)


@pytest.mark.parametrize("force_zip64", [False, True])
def test_round_trip_and_same_bytes_twice(force_zip64: bool) -> None:
    first = read_all(ZipStream(members(FILES), force_zip64=force_zip64))
    assert_bundle_holds(first, FILES)
    again = ZipStream(members(FILES), force_zip64=force_zip64).read()  # other read sizes, same bytes
    assert again == first


def test_compressed_members_stored_others_deflated_and_fixed_timestamps() -> None:
    with zipfile.ZipFile(io.BytesIO(ZipStream(members(FILES)).read())) as zf:
        methods = {i.filename: i.compress_type for i in zf.infolist()}
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert methods["run/a.fits.fz"] == methods["run/ümlaut thumb.jpg"] == zipfile.ZIP_STORED
    assert methods["run/notes.txt"] == methods["empty.txt"] == zipfile.ZIP_DEFLATED


def test_forced_zip64_is_marked_so() -> None:
    data = ZipStream(members(FILES), force_zip64=True).read()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data  # the ZIP64 end record and its locator
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert all(i.extract_version >= 45 for i in zf.infolist())


@pytest.mark.parametrize("force_zip64", [False, True])
def test_size_is_known_ahead_when_every_member_is_stored(force_zip64: bool) -> None:
    stored = {k: v for k, v in FILES.items() if k.endswith((".fz", ".jpg"))}
    stream = ZipStream(members(stored), force_zip64=force_zip64)
    assert stream.size is not None and stream.size == len(stream.read())
    assert ZipStream(members(FILES)).size is None  # a deflated member: not known ahead


@pytest.mark.parametrize("force_zip64", [False, True])
def test_measure_makes_the_archive_once_more_to_count_it(force_zip64: bool) -> None:
    opened: list[str] = []

    def counted(name: str, data: bytes) -> ZipMember:
        def opener() -> io.BytesIO:
            opened.append(name)
            return io.BytesIO(data)

        return ZipMember(name=name, size=len(data), open=opener)

    stream = ZipStream([counted(n, d) for n, d in sorted(FILES.items())], force_zip64=force_zip64)
    measured = stream.measure()
    assert opened == sorted(FILES)  # each member read once to measure it
    assert measured == len(stream.read())  # and the archive made after is exactly that long


def test_short_reads_from_members() -> None:
    ms = [ZipMember(name=n, size=len(d), open=lambda d=d: ShortReader(d, 777)) for n, d in sorted(FILES.items())]  # type: ignore[misc]
    assert_bundle_holds(ZipStream(ms).read(), FILES)


@pytest.mark.parametrize("name", ["run/a.fits.fz", "run/notes.txt"])
def test_a_member_that_changed_fails_the_archive(name: str) -> None:
    ms = [ZipMember(name=m.name, size=m.size + (m.name == name), open=m.open) for m in members(FILES)]
    with pytest.raises(MemberChangedError, match="changed while it was read"):
        ZipStream(ms).read()


def test_two_members_with_one_name_are_refused() -> None:
    twice = members({"a.txt": b"1"}) + members({"a.txt": b"2"})
    with pytest.raises(ValueError, match=r"'a\.txt'"):
        ZipStream(twice)


class Zeros(io.RawIOBase):
    """``size`` zero bytes, made as they are read (a 4 GiB member costs no disk)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        view = memoryview(buffer).cast("B")  # type: ignore[arg-type]
        n = min(len(view), self.left)
        view[:n] = bytes(n)
        self.left -= n
        return n


def test_a_member_past_4_gib_and_a_member_beyond_it(tmp_path: pytest.TempPathFactory) -> None:
    """The real ZIP64 case: a stored member of 4 GiB + 1 (its sizes and the
    next member's offset do not fit in 32 bits), written sparsely to disk."""
    import shutil
    import subprocess
    import zlib
    from pathlib import Path

    big = (1 << 32) + 1
    tail = b"after the big one\n" * 100
    ms = [ZipMember(name="a.fits.fz", size=big, open=lambda: Zeros(big)),  # type: ignore[arg-type,return-value]
          ZipMember(name="b.txt", size=len(tail), open=lambda: io.BytesIO(tail), store=True)]  # fmt: skip
    stream = ZipStream(ms)
    path = Path(str(tmp_path)) / "big.zip"
    chunk = 8 << 20
    zero = bytes(chunk)
    buf = bytearray(chunk)
    total = 0
    with open(path, "wb") as out:
        while got := stream.readinto(buf):
            if buf[:got] == zero[:got]:
                out.seek(got, os.SEEK_CUR)  # a hole: the zeros take no disk
            else:
                out.write(buf[:got])
            total += got
        out.truncate(total)
    assert stream.size == total  # stored members: the size was known ahead
    with zipfile.ZipFile(path) as zf:
        a, b = zf.infolist()
        assert (a.file_size, a.compress_size) == (big, big) and b.header_offset > 1 << 32
        crc = 0
        for _ in range(big // chunk):
            crc = zlib.crc32(zero, crc)
        assert a.CRC == zlib.crc32(bytes(big % chunk), crc)
        assert zf.read("b.txt") == tail
    unzip = shutil.which("unzip")
    if unzip is not None:
        done = subprocess.run([unzip, "-p", str(path), "b.txt"], capture_output=True, timeout=120)
        assert done.returncode == 0 and done.stdout == tail
