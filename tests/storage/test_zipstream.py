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
