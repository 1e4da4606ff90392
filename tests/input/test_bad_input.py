"""Hostile and broken input: every case is a one-line FileSpecificationError
(a DoNotRetryError), memory stays bounded and nothing is written."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from ocs_transfer.exceptions import DoNotRetryError, FileSpecificationError
from ocs_transfer.input import File, FileFactory, open_datafile

from .conftest import LCO_HEADERS, fits_bytes

BLOCK = 2880


def card(key: str, value: object) -> bytes:
    if isinstance(value, bool):
        text = "T" if value else "F"
        v = f"{text:>20}"
    elif isinstance(value, int):
        v = f"{value:>20}"
    else:
        v = f"'{value}'"
    return f"{key:<8}= {v}".ljust(80).encode()


def header(cards: list[bytes], end: bool = True) -> bytes:
    raw = b"".join(cards) + (b"END".ljust(80) if end else b"")
    return raw + b" " * (-len(raw) % BLOCK)


def primary(**extra: object) -> list[bytes]:
    cards = [card("SIMPLE", True), card("BITPIX", 16), card("NAXIS", 0)]
    return cards + [card(k, v) for k, v in {**LCO_HEADERS, **extra}.items()]


def read(data: bytes, name: str, settings, **meta: object):
    return FileFactory.get_datafile(File(io.BytesIO(data), name, settings=settings), meta, settings=settings)


def assert_rejected(data: bytes, name: str, settings, match: str) -> FileSpecificationError:
    with pytest.raises(FileSpecificationError, match=match) as info:
        read(data, name, settings)
    assert isinstance(info.value, DoNotRetryError)
    assert "\n" not in str(info.value)
    return info.value


def test_a_well_formed_handmade_file_is_accepted(settings) -> None:
    df = read(header(primary()), "ok.fits", settings)
    assert df.get_header_data().get_site_id() == "coj"


@pytest.mark.parametrize("name", ["e.fits", "e.fits.fz", "e.fits.gz", "e.fits.bz2", "e.tar.gz", "e.tar"])
def test_zero_byte_files(settings, name: str) -> None:
    assert_rejected(b"", name, settings, "empty")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(4000), "not a FITS file"),
        (b"hello world\n" * 500, "not a FITS file"),
        (b"SIMPLE  = 'no'".ljust(BLOCK), "not a FITS file"),
        (header(primary())[:1000], "truncated"),
        (header(primary(), end=False), "truncated"),
        (header([card("SIMPLE", True), card("BITPIX", 16), card("NAXIS", 2), card("NAXIS1", 100),
                 card("NAXIS2", 100), *primary()[3:]]) + bytes(BLOCK), "truncated: the data of HDU 0"),
        (header([card("SIMPLE", True), card("BITPIX", 16), card("NAXIS", 100000), *primary()[3:]]),
         "NAXIS=100000 is not a whole number from 0 to 999"),
        (header([card("SIMPLE", True), card("BITPIX", 16), card("NAXIS", 1), card("NAXIS1", -5), *primary()[3:]]),
         "NAXIS1=-5"),
        (header([card("SIMPLE", True), card("BITPIX", 16), card("NAXIS", 2), card("NAXIS1", 10**18),
                 card("NAXIS2", 10**18), *primary()[3:]]), r"more than 2\*\*63 bytes of data"),
        (header([card("SIMPLE", True), card("BITPIX", 12), card("NAXIS", 0), *primary()[3:]]), "BITPIX=12"),
    ],
)
def test_broken_fits(settings, data: bytes, match: str) -> None:
    assert_rejected(data, "bad.fits", settings, match)


def test_extension_without_xtension_and_missing_required(settings) -> None:
    bare = header([card("SIMPLE", True), card("BITPIX", 16), card("NAXIS", 0)])
    assert_rejected(bare + b"GARBAGE".ljust(BLOCK), "x.fits", settings, "does not start with XTENSION")
    assert_rejected(bare, "x.fits", settings, "missing required headers: PROPID")


def test_endless_header_is_bounded(settings) -> None:
    cards = [card("SIMPLE", True)] + [card(f"K{i % 99999}", i) for i in range(40000)]
    assert_rejected(header(cards, end=False), "x.fits", settings, "no END card within 1000 blocks")


def test_fpack_name_without_compressed_hdu_is_read_as_ocs_archive_does(settings) -> None:
    # LCO catalogs (*_cat.fits.fz) are uncompressed tables with the .fits.fz name.
    plain = fits_bytes(LCO_HEADERS)
    assert read(plain, "x.fits.fz", settings).get_header_data().get_site_id() == "coj"


def test_compressed_names_with_wrong_content(settings) -> None:
    plain = fits_bytes(LCO_HEADERS)
    assert_rejected(plain, "x.fits.gz", settings, "not gzip-compressed")
    assert_rejected(plain, "x.fits.bz2", settings, "not bzip2-compressed")
    corrupt = gzip.compress(plain)[:40] + b"\xff" * 200
    assert_rejected(corrupt, "x.fits.gz", settings, "cannot read|truncated")
    assert_rejected(b"not a tar at all" * 100, "x.tar", settings, "not a tar archive|truncated")


def test_gzip_bomb_header_is_bounded(settings) -> None:
    # 256 MiB of blanks after SIMPLE = T: never an END card. A gzip file may be
    # many members back to back, so one compressed MiB repeated makes the bomb.
    blanks = gzip.compress(b" " * (1024 * 1024), 9)
    bomb = gzip.compress(card("SIMPLE", True)) + blanks * 256
    tracemalloc.start()
    try:
        assert_rejected(bomb, "bomb.fits.gz", settings, "no END card")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def _tar(members: list[tarfile.TarInfo], data: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for info in members:
            body = data.get(info.name)
            if body is not None:
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("member", "match"),
    [
        (_member("../evil.fits"), "unsafe tar member name"),
        (_member("a/../../evil.fits"), "unsafe tar member name"),
        (_member("/etc/evil.fits"), "unsafe tar member name"),
        (_member("frame.fits", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
        (_member("frame.fits", tarfile.LNKTYPE, "other"), "is a link"),
        (_member("dev", tarfile.CHRTYPE), "device or FIFO"),
    ],
)
def test_unsafe_tar_members(settings, tmp_path: Path, monkeypatch, member: tarfile.TarInfo, match: str) -> None:
    monkeypatch.chdir(tmp_path)
    body = fits_bytes(LCO_HEADERS)
    data = _tar([member, _member("good.fits")], {member.name: body, "good.fits": body} if member.isreg() else
                {"good.fits": body})
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(data)
    with pytest.raises(FileSpecificationError, match=match):
        with open_datafile(path, settings=settings):
            pass
    assert sorted(os.listdir(tmp_path)) == ["bundle.tar.gz"]  # nothing extracted
    assert not (tmp_path.parent / "evil.fits").exists()


def test_tar_without_fits_member(settings) -> None:
    data = _tar([_member("readme.txt")], {"readme.txt": b"hello"})
    assert_rejected(data, "x.tar.gz", settings, "no .fits or .fits.fz member")


def test_huge_pax_header(settings) -> None:
    # A pax header block claiming 10 GB of records, followed by nothing.
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = 10 * 1024**3
    block = info.tobuf(format=tarfile.GNU_FORMAT)
    assert_rejected(gzip.compress(block + bytes(8192)), "x.tar.gz", settings, "extended header of 10737418240 bytes")


def test_tar_bomb_before_the_fits_member_is_bounded(settings) -> None:
    # A 256 MiB member of zeros (about 250 KB compressed) before the FITS member.
    info = tarfile.TarInfo("zeros.bin")
    info.size = 256 * 1024**2
    zeros = gzip.compress(bytes(1024 * 1024), 9)
    parts = [gzip.compress(info.tobuf(format=tarfile.USTAR_FORMAT))] + [zeros] * 256
    tracemalloc.start()
    try:
        assert_rejected(b"".join(parts), "x.tar.gz", settings, "refusing to decompress further")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def test_big_fits_reads_only_the_header(settings, tmp_path: Path) -> None:
    head = fits_bytes({**LCO_HEADERS, "NAXIS": 2}, shape=(8, 8))[:BLOCK * 2]
    # rewrite the image size: a 16384 x 16384 int16 image = 512 MiB of (sparse) data
    cards = [card("SIMPLE", True), card("BITPIX", 16), card("NAXIS", 2), card("NAXIS1", 16384),
             card("NAXIS2", 16384), *[card(k, v) for k, v in LCO_HEADERS.items()]]
    del head
    path = tmp_path / "big.fits"
    with open(path, "wb") as fp:
        fp.write(header(cards))
        fp.truncate(len(header(cards)) + 16384 * 16384 * 2)
    tracemalloc.start()
    try:
        with open_datafile(path, settings=settings) as df:
            record = df.get_header_data().get_archive_frame_data()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert record["site_id"] == "coj"
    assert peak < 2 * 1024 * 1024
