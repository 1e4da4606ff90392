from __future__ import annotations

import datetime
import hashlib
import io
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocs_transfer.input import EmptyFile, File, FileFactory, LcoName, PhotonRanchName, split_name

KNOWN = FileFactory.known_extensions()


@pytest.mark.parametrize(
    ("name", "basename", "extension"),
    [
        ("coj1m011-kb05-20150219-0125-e90.fits.fz", "coj1m011-kb05-20150219-0125-e90", ".fits.fz"),
        ("/data/raw/x.fits", "x", ".fits"),
        ("M31.v2.fits.gz", "M31.v2", ".fits.gz"),
        ("a.FITS.FZ", "a", ".FITS.FZ"),
        ("bundle.tar.gz", "bundle", ".tar.gz"),
        ("notes.txt", "notes", ".txt"),
        ("a.b.unknownext", "a.b", ".unknownext"),
        ("README", "README", ""),
        (".fits", ".fits", ""),
        ("C:\\data\\x.fits.bz2", "x", ".fits.bz2"),
    ],
)
def test_split_name_takes_longest_known_suffix(name: str, basename: str, extension: str) -> None:
    assert split_name(name, KNOWN) == (basename, extension)


@given(
    stem=st.text(st.characters(blacklist_characters="/\\", blacklist_categories=("Cs",)), min_size=1, max_size=30),
    ext=st.sampled_from(KNOWN),
)
def test_split_name_property_known(stem: str, ext: str) -> None:
    basename, extension = split_name(stem + ext, KNOWN)
    assert basename + extension == stem + ext
    assert extension.lower() in KNOWN
    # no longer known suffix could have matched
    assert not any(len(k) > len(extension) and (stem + ext).lower().endswith(k) and len(k) < len(stem + ext)
                   for k in KNOWN)


@given(st.text(st.characters(blacklist_characters="/\\", blacklist_categories=("Cs",)), max_size=40))
def test_split_name_property_any(name: str) -> None:
    basename, extension = split_name(name, KNOWN)
    assert basename + extension == name
    assert basename or not name
    assert extension == "" or extension.startswith(".")


def test_size_and_hashes_stream_and_keep_position() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    buf = io.BytesIO(data)
    f = File(buf, "x.fits", known_extensions=KNOWN)
    buf.seek(123)
    assert f.size == len(data) == len(f)
    assert buf.tell() == 123
    hashes = f.hashes(chunk_size=64 * 1024)
    assert hashes == {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}
    assert f.get_md5() == hashlib.md5(data).hexdigest()
    assert f.get_sha256() == hashlib.sha256(data).hexdigest()
    assert buf.tell() == 123


def test_name_comes_from_path_or_fileobj(tmp_path) -> None:
    p = tmp_path / "a-b.fits.fz"
    p.write_bytes(b"x")
    with open(p, "rb") as fp:
        f = File(fp)
        assert (f.basename, f.extension, f.name) == ("a-b", ".fits.fz", "a-b.fits.fz")
        assert File(fp, "other.pdf").extension == ".pdf"
    assert EmptyFile("test.jpg").size == 0
    assert EmptyFile("x.fits").get_md5() == hashlib.md5(b"").hexdigest()


def test_known_extensions_include_overrides(settings) -> None:
    s = settings.evolve(filetype_mapping_overrides={".fake.fits": "ocs_transfer.input.fitsfile.FitsFile"})
    f = File(io.BytesIO(), "thing.fake.fits", settings=s)
    assert f.extension == ".fake.fits"
    assert File(io.BytesIO(), "thing.fake.fits", settings=settings).extension == ".fits"


def test_photon_ranch_name() -> None:
    f = EmptyFile("sro-kb001ms-20220629-00010442-EX10.jpg")
    assert f.photon_ranch_name == PhotonRanchName("sro", "kb001ms", "20220629", "00010442", "EX", 10, None)
    assert f.lco_name is None
    assert PhotonRanchName.parse("sro-kb001ms-20220629-00010442-EX10-small").suffix == "small"
    assert PhotonRanchName.parse("sro-kb001ms-20221399-00010442-EX10") is None  # no month 13
    assert PhotonRanchName.parse("sro-kb001ms-20220629-0001044-EX10") is None  # 7-digit sequence


def test_lco_name() -> None:
    assert LcoName.parse("coj1m011-kb05-20150219-0125-e90") == LcoName(
        "coj", "1m011", "kb05", "20150219", "0125", "e", 90, None
    )
    assert LcoName.parse("cptnrs03-fa13-20150219-0001-e92-summary").suffix == "summary"
    assert LcoName.parse("something-e90_cat") is None
    assert EmptyFile("sro-kb001ms-20220629-00010442-EX10.jpg").lco_name is None


@given(
    site=st.from_regex(r"[a-z0-9]{2,5}", fullmatch=True),
    inst=st.from_regex(r"[a-z0-9]{2,8}", fullmatch=True),
    day=st.dates(min_value=datetime.date(1990, 1, 1), max_value=datetime.date(2099, 12, 31)),
    seq=st.integers(0, 99_999_999),
    dtype=st.from_regex(r"[A-Z]{2}", fullmatch=True),
    red=st.integers(0, 99),
)
def test_photon_ranch_round_trip(site: str, inst: str, day, seq: int, dtype: str, red: int) -> None:
    name = f"{site}-{inst}-{day:%Y%m%d}-{seq:08d}-{dtype}{red:02d}"
    parsed = PhotonRanchName.parse(name)
    assert parsed == PhotonRanchName(site, inst, f"{day:%Y%m%d}", f"{seq:08d}", dtype, red, None)


def test_unseekable_size_is_a_clear_error() -> None:
    class Pipe(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def seek(self, *a):  # type: ignore[no-untyped-def]
            raise io.UnsupportedOperation("not seekable")

        def tell(self) -> int:
            raise io.UnsupportedOperation("not seekable")

    from ocs_transfer.exceptions import FileSpecificationError

    with pytest.raises(FileSpecificationError, match="not seekable"):
        _ = File(Pipe(), "x.fits", known_extensions=KNOWN).size  # type: ignore[arg-type]
