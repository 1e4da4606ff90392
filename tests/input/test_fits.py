"""Metadata of the real LCO example files, checked against astropy reading the
same files independently, and the FITS variants (.fits.gz, .fits.bz2, tar)."""

from __future__ import annotations

import bz2
import datetime
import gzip
import io
import tarfile
from pathlib import Path

import pytest
from astropy.io import fits

from ocs_transfer.input import (
    File,
    FileFactory,
    FitsFile,
    LcoFitsFile,
    TarWithFitsFile,
    open_datafile,
)

from .conftest import LCO_HEADERS, fits_bytes

REQUIRED = ("DATE-OBS", "PROPID")


def astropy_header(path: Path) -> dict:
    """The first header astropy finds with the required keys."""
    with fits.open(path) as hdul:
        for hdu in hdul:
            if all(k in hdu.header for k in REQUIRED):
                return {k: v for k, v in hdu.header.items() if k not in ("COMMENT", "HISTORY", "")}
    raise AssertionError("no header with the required keys")


FITS_EXAMPLES = [
    "coj1m011-kb05-20150219-0125-e90.fits",
    "coj1m011-kb05-20150219-0125-e90.fits.fz",
    "cpt1m010-kb70-20151219-0073-e10.fits.fz",
    "cpt1m012-fl10-20151216-0073-e00.fits.fz",
]


@pytest.mark.parametrize("name", FITS_EXAMPLES)
def test_real_files_match_astropy(examples_dir: Path, settings, name: str) -> None:
    path = examples_dir / name
    expected = astropy_header(path)
    with open_datafile(path, settings=settings) as df:
        headers = df.get_header_data().get_headers()
        record = df.get_header_data().get_archive_frame_data()
        for key, value in expected.items():
            if key in ("BZERO", "BSCALE", "L1PUBDAT") or key.startswith(("TTYPE", "TFORM")):
                continue
            got = headers.get(key)
            if isinstance(value, str) and value in settings.null_header_values:
                assert got in ("", None), key
            elif key in settings.related_frame_keys:
                assert got == value.split(".")[0], key  # stored by basename
            else:
                assert got == value, (key, got, value)
                assert type(got) is type(value), key
        assert "HISTORY" not in headers and "COMMENT" not in headers  # blacklisted
        assert record["site_id"] == expected["SITEID"]
        assert record["instrument_id"] == expected["INSTRUME"]
        assert record["observation_date"] == expected["DATE-OBS"]
        assert record["observation_day"] == expected["DAY-OBS"]
        assert record["proposal_id"] == expected["PROPID"]
        assert record["target_name"] == expected["OBJECT"]
        assert record["telescope_id"] == expected["TELID"]
        assert record["exposure_time"] == expected["EXPTIME"]
        assert record["primary_optical_element"] == expected["FILTER"]
        assert record["configuration_type"] == expected["OBSTYPE"]
        # reduction level: the header's, or (LcoFitsFile, for .fits.fz) the last two digits of the name
        level = expected.get("RLEVEL") or (int(path.name.split(".")[0][-2:]) if name.endswith(".fz") else 0)
        assert record["reduction_level"] == level
        kind = "raw" if level == 0 else "processed"
        prefix = f"{expected['SITEID']}/{expected['INSTRUME']}/{expected['DAY-OBS']}"
        assert df.get_filestore_path() == f"{prefix}/{kind}/{name}"
        assert df.get_filestore_content_type() == "image/fits"
        assert isinstance(df, LcoFitsFile if name.endswith(".fz") else FitsFile)


def test_fits_and_fpack_give_the_same_record(examples_dir: Path, settings) -> None:
    records = []
    for name in ("coj1m011-kb05-20150219-0125-e90.fits", "coj1m011-kb05-20150219-0125-e90.fits.fz"):
        with open(examples_dir / name, "rb") as fp:
            df = FitsFile(File(fp, name), {}, required_headers=REQUIRED, settings=settings)
            records.append(df.get_header_data().get_archive_frame_data())
            footprint = df.get_wcs_corners()
            assert footprint is not None and footprint["type"] == "Polygon"
            ring = footprint["coordinates"][0]
            assert len(ring) == 5 and ring[0] == ring[-1]
    assert records[0] == records[1]


def test_footprint_matches_astropy_wcs(examples_dir: Path, settings) -> None:
    from astropy.wcs import WCS

    path = examples_dir / "coj1m011-kb05-20150219-0125-e90.fits"
    with fits.open(path) as hdul, pytest.warns(Warning):
        h = hdul[0].header
        w = WCS(h)
        expected = [list(map(float, w.all_pix2world(x, y, 1))) for x, y in
                    ((1, 1), (1, h["NAXIS2"]), (h["NAXIS1"], h["NAXIS2"]), (h["NAXIS1"], 1))]
    with open_datafile(path, settings=settings) as df:
        ring = df.get_wcs_corners()["coordinates"][0]  # type: ignore[index]
    assert [c for pt in ring[:4] for c in pt] == pytest.approx([c for pt in expected for c in pt])


def test_compressed_streams_read_only_the_header(examples_dir: Path, settings) -> None:
    raw = (examples_dir / "coj1m011-kb05-20150219-0125-e90.fits").read_bytes()
    with open_datafile(examples_dir / "coj1m011-kb05-20150219-0125-e90.fits", settings=settings) as df:
        want = df.get_header_data().get_archive_frame_data()
    for ext, packed, ctype in ((".fits.gz", gzip.compress(raw), "application/gzip"),
                               (".fits.bz2", bz2.compress(raw), "application/x-bzip2")):
        f = File(io.BytesIO(packed), "coj1m011-kb05-20150219-0125-e90" + ext)
        df = FileFactory.get_datafile(f, settings=settings)
        assert type(df) is FitsFile
        got = df.get_header_data().get_archive_frame_data()
        assert got == {**want, "reduction_level": got["reduction_level"]}
        assert df.get_filestore_content_type() == ctype


def _tar(members: list[tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["w:gz", "w", "w:bz2", "w:xz"])
def test_tar_with_fits_takes_first_fits_member(examples_dir: Path, settings, mode: str) -> None:
    fz = (examples_dir / "cpt1m010-kb70-20151219-0073-e10.fits.fz").read_bytes()
    other = fits_bytes({**LCO_HEADERS, "OBJECT": "second"})
    data = _tar([("bundle/summary.pdf", b"%PDF-1.4 " * 1000), ("bundle/frame.fits.fz", fz),
                 ("bundle/other.fits", other)], mode)
    name = "lscnrs01-fl09-20171109-0049-e91" + (".tar.gz" if mode == "w:gz" else ".tar")
    if mode in ("w:bz2", "w:xz"):
        name = name[:-4] + ".tar"
    df = FileFactory.get_datafile(File(io.BytesIO(data), name), {}, settings=settings)
    assert isinstance(df, TarWithFitsFile)
    expected = astropy_header(examples_dir / "cpt1m010-kb70-20151219-0073-e10.fits.fz")
    hd = df.get_header_data()
    assert hd.get_target_name() == expected["OBJECT"]
    assert hd.get_observation_date() == expected["DATE-OBS"]
    assert df.get_filestore_content_type() == "application/x-tar"
    assert df.get_filestore_path().startswith(f"{expected['SITEID']}/{expected['INSTRUME']}/{expected['DAY-OBS']}/")


def test_null_values_blacklist_and_related_frames(examples_dir: Path, settings) -> None:
    metadata = {
        "OBJECT": "UNKNOWN", "PROPID": "N/A", "BLKUID": "N/A", "INSTRUME": "fl03", "REQNUM": "UNSPECIFIED",
        "MOLUID": "None", "FOO": "BAR", "BAZ": "BAM",
        "L1IDBIAS": "bias_kb78_20151110_bin2x2", "TARFILE": "KEY2014A-002_0000476040_ftn_20160108_57396.tar.gz",
        "L1IDFLAT": "flat.fits.fz", "GUIDETAR": "N/A",
    }
    name = "coj1m011-kb05-20150219-0125-e90.fits.fz"
    with open(examples_dir / name, "rb") as fp:
        df = FitsFile(File(fp, name), metadata, ["FOO"], REQUIRED, settings=settings)
    hd = df.get_header_data()
    h = hd.get_headers()
    assert hd.get_target_name() == "" and hd.get_proposal_id() == ""
    assert hd.get_observation_id() is None and hd.get_request_id() is None and hd.get_configuration_id() is None
    assert hd.get_instrument_id() == "fl03"
    assert "FOO" not in h and h["BAZ"] == "BAM"
    assert h["L1IDBIAS"] == "bias_kb78_20151110_bin2x2"
    assert h["TARFILE"] == "KEY2014A-002_0000476040_ftn_20160108_57396"
    assert h["L1IDFLAT"] == "flat"
    assert h["GUIDETAR"] == ""


def test_lco_reduction_level_and_configuration_type(examples_dir: Path, settings) -> None:
    for name, level in (("coj1m011-kb05-20150219-0125-e90.fits.fz", 90),
                        ("cpt1m012-fl10-20151216-0073-e00.fits.fz", 0),
                        ("cpt1m010-kb70-20151219-0073-e10.fits.fz", 10)):
        with open(examples_dir / name, "rb") as fp:
            df = LcoFitsFile(File(fp, name), {}, required_headers=REQUIRED, settings=settings)
        assert df.get_header_data().get_reduction_level() == level
    with open(examples_dir / "coj1m011-kb05-20150219-0125-e90.fits.fz", "rb") as fp:
        df = LcoFitsFile(File(fp, "coj1m011-kb05-20150219-0125-e90.fits.fz"), {"RLEVEL": 91}, settings=settings)
    assert df.get_header_data().get_reduction_level() == 91


def test_public_date_follows_the_header_or_the_rules(examples_dir: Path, settings) -> None:
    name = "cpt1m012-fl10-20151216-0073-e00.fits.fz"
    expected = astropy_header(examples_dir / name)
    with open_datafile(examples_dir / name, {"L1PUBDAT": "N/A", "PROPID": "LCO2015B-001"}, settings=settings) as df:
        got = df.get_header_data().get_public_date()
    obs = datetime.datetime.fromisoformat(expected["DATE-OBS"])
    assert got == (obs + datetime.timedelta(days=settings.days_until_public)).isoformat()
