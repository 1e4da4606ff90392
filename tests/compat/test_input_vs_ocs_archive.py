"""Input behaviours that match ocs_archive 0.5.0: each case runs ocs_archive
(in its own environment) and ocs_transfer on the same files, through the same
script written for ocs_archive with only its imports changed, and compares
what an ingester posts to the archive: the record, the headers and the
file-store path (or that both refuse the file)."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

LCO = {
    "PROPID": "LCO2015A-001", "DATE-OBS": "2015-02-19T13:56:05.261", "DAY-OBS": "20150219", "INSTRUME": "kb05",
    "SITEID": "coj", "TELID": "1m0a", "OBSTYPE": "EXPOSE", "BLKUID": 1234, "OBJECT": "M84", "REQNUM": "N/A",
    "L1PUBDAT": "2016-02-19T13:56:05.261",
}  # fmt: skip

#: The ingester's way of reading a file (ocs_ingester.ingester), written for ocs_archive 0.5.
DESCRIBE = r'''
import contextlib, gzip, json, sys
from ocs_archive.input.file import File, EmptyFile, FileSpecificationException
from ocs_archive.input.filefactory import FileFactory
from ocs_archive.input.fitsfile import FitsFile
from ocs_archive.input.lcotarwithfitsfile import LcoTarWithFitsFile
from ocs_archive.input.soarfitsfile import SOARFitsFile
from ocs_archive.input.tarwithfitsfile import TarWithFitsFile


class SidecarFitsFile(FitsFile):
    """Its headers are in a gzipped FITS file beside it (the get_fits() hook)."""

    @contextlib.contextmanager
    def get_fits(self):
        with gzip.open(self.open_file.filename + ".hdr.gz", "rb") as fp:
            yield fp


class LastMemberTarFile(TarWithFitsFile):
    """The metadata is the last FITS member (the _get_meta_file_from_targz() hook)."""

    @staticmethod
    def _get_meta_file_from_targz(tarfileobj):
        members = [m for m in tarfileobj.getmembers() if m.isfile() and ".fits" in m.name]
        return tarfileobj.extractfile(members[-1])


CLASSES = {c.__name__: c for c in (SidecarFitsFile, LastMemberTarFile, SOARFitsFile, LcoTarWithFitsFile)}


out = {}
for case in json.load(sys.stdin):
    fh = None
    try:
        if case.get("path"):
            fh = open(case["path"], "rb")
            open_file = File(fh, case["path"])
        else:
            open_file = EmptyFile(case["name"])
        by_name = FileFactory.get_datafile_class_for_extension
        cls = CLASSES[case["cls"]] if case.get("cls") else by_name(open_file.extension)
        kwargs = {k: tuple(case[k]) for k in ("required_headers", "blacklist_headers") if k in case}
        data_file = cls(open_file, case.get("metadata"), **kwargs)
        header_data = data_file.get_header_data()
        out[case["id"]] = {
            "class": type(data_file).__name__,
            "record": header_data.get_archive_frame_data(),
            "headers": header_data.get_headers(),
            "path": data_file.get_filestore_path(),
        }
    except FileSpecificationException:
        out[case["id"]] = {"error": "FileSpecificationException"}
    finally:
        if fh is not None:
            fh.close()
print(json.dumps(out, default=repr))
'''


def write_fits(path: Path, hdus: list[Any]) -> Path:
    fits.HDUList(hdus).writeto(path)
    return path


def primary(header: dict[str, Any] | None = None, data: Any = None) -> fits.PrimaryHDU:
    hdu = fits.PrimaryHDU(data)
    for k, v in (header or {}).items():
        hdu.header[k] = v
    return hdu


def table(header: dict[str, Any]) -> fits.BinTableHDU:
    hdu = fits.BinTableHDU.from_columns([fits.Column(name="flux", format="E", array=np.arange(5, dtype=np.float32))])
    for k, v in header.items():
        hdu.header[k] = v
    return hdu


def compressed(header: dict[str, Any], dtype: Any = np.float32) -> fits.CompImageHDU:
    hdu = fits.CompImageHDU(np.arange(64, dtype=dtype).reshape(8, 8))
    for k, v in header.items():
        hdu.header[k] = v
    return hdu


def tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def fits_of(*hdus: Any) -> bytes:
    buf = io.BytesIO()
    fits.HDUList(list(hdus)).writeto(buf)
    return buf.getvalue()


def build_cases(d: Path, examples: Path) -> list[dict[str, Any]]:
    import gzip

    cases: list[dict[str, Any]] = []
    for src in sorted(examples.glob("*.fits*")):
        cases.append({"id": f"real:{src.name}", "path": str(shutil.copy(src, d / src.name))})
    fz = (examples / "coj1m011-kb05-20150219-0125-e90.fits.fz").read_bytes()
    cases.append({"id": "tar", "path": str(tarball(d / "nres-e00.tar.gz", {"readme.txt": b"x" * 10,
                                                                         "spec-e00.fits.fz": fz}))})
    # LCO catalogs: uncompressed tables named .fits.fz; the first HDU with the required keys gives the header.
    cat = {**LCO, "OBSTYPE": "EXPOSE", "L1IDCAT": ""}
    cases.append({"id": "catalog", "path": str(write_fits(d / "coj1m011-kb05-20150219-0125-e91_cat.fits.fz",
                                                          [primary({"ORIGIN": "LCO"}), table(cat)]))})
    cases.append({"id": "catalog-primary", "path": str(write_fits(
        d / "coj1m011-kb05-20150219-0126-e91_cat.fits.fz", [primary(LCO), table({"EXTNAME": "CAT"})]))})
    # EmptyFile + metadata: the path and record without the file, for the FITS and tar classes.
    for name in ("coj1m011-kb05-20150219-0125-e91.fits.fz", "coj1m011-kb05-20150219-0125-e00.fits",
                 "nres01-20150219-0125-e00.tar.gz"):
        cases.append({"id": f"empty:{name}", "name": name, "metadata": LCO})
    cases.append({"id": "empty:missing-headers", "name": "x.fits", "metadata": {"PROPID": "P"}})
    # Thumbnails: required_headers ignored (its own metadata is required), nulls normalised, frame_basename as given.
    thumb = {"frame_basename": "coj1m011-kb05-20150219-0125-e91.fits.fz", "size": "small", "DATE-OBS": LCO["DATE-OBS"],
             "DAY-OBS": "20150219", "INSTRUME": "kb05", "SITEID": "coj", "TELID": "1m0a", "OBJECT": "N/A",
             "REQNUM": "UNSPECIFIED", "PROPID": "LCO2015A-001"}
    jpg = str(shutil.copy(examples / "tfn0m419-sq32-20240426-0097-e91-small.jpg", d / "thumb-small.jpg"))
    cases.append({"id": "thumbnail", "path": jpg, "metadata": thumb,
                  "required_headers": ["PROPID", "DATE-OBS", "DAY-OBS", "INSTRUME", "SITEID", "TELID", "OBSTYPE",
                                       "BLKUID"]})
    cases.append({"id": "thumbnail-missing", "path": jpg, "metadata": {k: v for k, v in thumb.items() if k != "size"}})
    # A header RLEVEL wins over the name's reduction part (-e90 with RLEVEL = 0 is raw).
    for level in (0, 91):
        name = f"coj1m011-kb05-20150219-{level:04d}-e90.fits.fz"
        cases.append({"id": f"rlevel:{level}", "path": str(write_fits(
            d / name, [primary(), compressed({**LCO, "RLEVEL": level})]))})
    cases.append({"id": "rlevel:none", "path": str(write_fits(d / "coj1m011-kb05-20150219-0002-e90.fits.fz",
                                                              [primary(), compressed(LCO, np.int16)]))})
    # Default REQUIRED_HEADERS include DAY-OBS.
    no_day = {k: v for k, v in LCO.items() if k != "DAY-OBS"}
    cases.append({"id": "no-day-obs", "path": str(write_fits(d / "nd.fits", [primary(no_day)]))})
    # SOAR: the name's prefix sets the reduction level, over the header's.
    for name, extra in (("cfzst_soar_0001.fits", {"RLEVEL": 0}), ("wecfzst_soar_0002.fits", {}),
                        ("soar_0003.fits", {"RLEVEL": 12}), ("soar_0004.fits", {})):
        cases.append({"id": f"soar:{name}", "cls": "SOARFitsFile",
                      "path": str(write_fits(d / name, [primary({**LCO, **extra})]))})
    # LCO spectra tarballs: the e00/e90/e91 member holds the metadata, with the LCO repairs.
    members = {"x-e92.fits": fits_of(primary({**LCO, "OBJECT": "wrong"})),
               "x-e91.fits": fits_of(primary({**LCO, "OBJECT": "right"})),
               "x-e93.fits": fits_of(primary({**LCO, "OBJECT": "last"}))}
    lco_tar = str(tarball(d / "cptnrs03-fa13-20150219-0001-e91.tar.gz", members))
    cases.append({"id": "lco-tar", "cls": "LcoTarWithFitsFile",
                  "path": lco_tar})
    cases.append({"id": "hook:_get_meta_file_from_targz", "cls": "LastMemberTarFile", "path": lco_tar})
    # get_fits(): the headers come from wherever the subclass says.
    sidecar = d / "sidecar-e00.fits"
    sidecar.write_bytes(b"not read")
    (d / "sidecar-e00.fits.hdr.gz").write_bytes(gzip.compress(fits_of(primary({**LCO, "OBJECT": "sidecar"}))))
    cases.append({"id": "hook:get_fits", "cls": "SidecarFitsFile", "path": str(sidecar)})
    return cases


@pytest.fixture(scope="module")
def results(ocs_archive_05, examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("vs-ocs-archive")
    cases = build_cases(d, examples_dir)
    theirs, ours = ocs_archive_05.both(DESCRIBE, cases, cwd=d)
    return {"theirs": theirs, "ours": ours, "ids": [c["id"] for c in cases]}


def same(results: dict[str, Any], case: str) -> dict[str, Any]:
    theirs, ours = results["theirs"][case], results["ours"][case]
    assert ours == theirs, case
    return ours  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["coj1m011-kb05-20150219-0125-e90.fits", "coj1m011-kb05-20150219-0125-e90.fits.fz",
                                  "cpt1m010-kb70-20151219-0073-e10.fits.fz", "cpt1m012-fl10-20151216-0073-e00.fits.fz"])
def test_real_lco_frames_post_the_same_record_and_headers(results: dict[str, Any], name: str) -> None:
    got = same(results, f"real:{name}")
    assert got["record"]["frame_basename"] is None  # None where ocs_archive gives None
    if name.endswith(".fz"):
        assert "BZERO" not in got["headers"]  # astropy hides BZERO = 0.0; so do we
        assert "ZIMAGE" not in got["headers"] and got["headers"]["NAXIS1"] > 0


def test_tarball_with_fpacked_member(results: dict[str, Any]) -> None:
    assert same(results, "tar")["class"] == "TarWithFitsFile"


@pytest.mark.parametrize("case", ["catalog", "catalog-primary"])
def test_lco_catalog_fits_fz_tables_are_read(results: dict[str, Any], case: str) -> None:
    got = same(results, case)
    assert got["record"]["configuration_type"] == "CATALOG"
    if case == "catalog":
        assert got["headers"]["TTYPE1"] == "flux"  # the table's header, as astropy gives it
        assert got["headers"]["L1IDCAT"] == "coj1m011-kb05-20150219-0125-e91"


@pytest.mark.parametrize("name", ["coj1m011-kb05-20150219-0125-e91.fits.fz", "coj1m011-kb05-20150219-0125-e00.fits",
                                  "nres01-20150219-0125-e00.tar.gz", "missing-headers"])
def test_empty_file_with_metadata_gives_path_and_record(results: dict[str, Any], name: str) -> None:
    got = same(results, f"empty:{name}")
    if name == "missing-headers":
        assert got == {"error": "FileSpecificationException"}
    else:
        assert got["path"].startswith("coj/kb05/20150219/")


def test_thumbnail_ignores_required_headers_normalises_nulls_keeps_frame_basename(results: dict[str, Any]) -> None:
    got = same(results, "thumbnail")
    assert got["record"]["frame_basename"] == "coj1m011-kb05-20150219-0125-e91.fits.fz"
    assert got["headers"]["OBJECT"] == "" and got["headers"]["REQNUM"] is None
    assert got["path"] == "coj/kb05/20150219/thumbnails/thumb-small.jpg"
    assert same(results, "thumbnail-missing") == {"error": "FileSpecificationException"}


@pytest.mark.parametrize("case", ["rlevel:0", "rlevel:91", "rlevel:none"])
def test_header_rlevel_wins_over_the_name(results: dict[str, Any], case: str) -> None:
    got = same(results, case)
    expected = {"rlevel:0": 0, "rlevel:91": 91, "rlevel:none": 90}[case]
    assert got["record"]["reduction_level"] == expected
    assert ("/raw/" in got["path"]) == (expected == 0)


def test_default_required_headers_need_day_obs(results: dict[str, Any]) -> None:
    assert same(results, "no-day-obs") == {"error": "FileSpecificationException"}


@pytest.mark.parametrize("name", ["cfzst_soar_0001.fits", "wecfzst_soar_0002.fits", "soar_0003.fits", "soar_0004.fits"])
def test_soar_fits_file(results: dict[str, Any], name: str) -> None:
    got = same(results, f"soar:{name}")
    assert got["class"] == "SOARFitsFile"
    assert got["record"]["reduction_level"] == {"cfzst_soar_0001.fits": 62, "wecfzst_soar_0002.fits": 64,
                                                "soar_0003.fits": 12, "soar_0004.fits": 0}[name]


def test_lco_tar_with_fits_file_takes_the_e91_member(results: dict[str, Any]) -> None:
    got = same(results, "lco-tar")
    assert got["headers"]["OBJECT"] == "right" and got["record"]["reduction_level"] == 90


@pytest.mark.parametrize(("case", "target"), [("hook:_get_meta_file_from_targz", "last"), ("hook:get_fits", "sidecar")])
def test_subclass_hooks(results: dict[str, Any], case: str, target: str) -> None:
    assert same(results, case)["headers"]["OBJECT"] == target


def test_every_case_was_compared(results: dict[str, Any]) -> None:
    assert set(results["theirs"]) == set(results["ours"]) == set(results["ids"])


def test_thumbnail_frame_basename_key(ocs_archive_05, examples_dir: Path, tmp_path: Path) -> None:
    jpg = str(shutil.copy(examples_dir / "tfn0m419-sq32-20240426-0097-e91-small.jpg", tmp_path / "t.jpg"))
    meta = {"frame_basename": "other", "frame": "tfn0m419-sq32-20240426-0097-e91", "size": "small",
            "DATE-OBS": "2024-04-26T21:12:00", "DAY-OBS": "20240426", "INSTRUME": "sq32", "SITEID": "tfn",
            "TELID": "0m4a"}
    case = [{"id": "t", "path": jpg, "metadata": meta}]
    theirs, ours = ocs_archive_05.both(DESCRIBE, case, env={"THUMBNAIL_FRAME_BASENAME_KEY": "frame"})
    assert ours == theirs
    assert ours["t"]["record"]["frame_basename"] == "tfn0m419-sq32-20240426-0097-e91"
