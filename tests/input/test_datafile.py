"""DataFile rules: required headers, observation day, public date (with and
without proposal tags), footprint, file-store paths, thumbnails, LCO repairs."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ocs_transfer.exceptions import DoNotRetryError, FileSpecificationError
from ocs_transfer.input import DataFile, EmptyFile, LcoFitsFile, ObservationPortalProposalTags, ThumbnailFile

OBS = "2016-04-01T00:00:00+00:00"


def make(settings, name: str = "test.file", **headers) -> DataFile:
    return DataFile(EmptyFile(name), headers, required_headers=[], settings=settings)


def plus(date: str, days: int) -> str:
    return (datetime.datetime.fromisoformat(date) + datetime.timedelta(days=days)).isoformat()


def test_missing_required_headers_name_them(settings) -> None:
    with pytest.raises(FileSpecificationError, match="missing required headers: PROPID, TELID") as info:
        DataFile(EmptyFile("x.pdf"), {"DATE-OBS": OBS}, required_headers=["PROPID", "DATE-OBS", "TELID"],
                 settings=settings)
    assert isinstance(info.value, DoNotRetryError)


def test_old_positional_call_shape(settings) -> None:
    df = DataFile(EmptyFile("x.pdf"), {"DATE-OBS": OBS, "A": 1}, ("A",), ("DATE-OBS",), settings=settings)
    assert df.blacklist_headers == ("A",) and df.required_headers == ("DATE-OBS",)
    assert df.get_filestore_content_type() == "application/pdf"
    assert make(settings, **{"DATE-OBS": OBS}).get_filestore_content_type() == ""


def test_observation_day_repaired_from_date(settings) -> None:
    df = make(settings, **{"DATE-OBS": "2020-01-31T20:09:56.956"})
    assert df.get_header_data().get_observation_day() == "20200131"
    kept = make(settings, **{"DATE-OBS": "2020-01-31T20:09:56.956", "DAY-OBS": "20200130"})
    assert kept.get_header_data().get_observation_day() == "20200130"


@pytest.mark.parametrize(
    ("headers", "name", "days"),
    [
        ({"PROPID": "EPOTHING", "OBSTYPE": "EXPOSE"}, "test.file", 0),  # public proposal (substring EPO)
        ({"PROPID": "LCO2015", "OBSTYPE": "BIAS"}, "test.file", 0),  # calibration
        ({"PROPID": "LCO2015", "OBSTYPE": "EXPOSE"}, "test.file", 365),  # proprietary
        ({"PROPID": "LCO2015", "OBSTYPE": "EXPOSE"}, "whatever-t00.file", 365 * 999),  # private file type
        ({"PROPID": "LCO2015", "OBSTYPE": "EXPOSE"}, "whatever-x00.file", 365 * 999),
        ({"PROPID": "LCOEngineering", "OBSTYPE": "EXPOSE"}, "test.file", 365 * 999),  # private proposal
    ],
)
def test_public_date_rules(settings, headers: dict, name: str, days: int) -> None:
    df = make(settings, name, **{**headers, "DATE-OBS": OBS})
    want = OBS if days == 0 else plus(OBS, days)
    assert df.get_header_data().get_public_date() == want
    if days == 365 * 999:
        assert want == "3014-08-03T00:00:00+00:00"


def test_public_date_uses_days_until_public_and_keeps_existing(settings) -> None:
    s = settings.evolve(days_until_public=30)
    assert make(s, PROPID="LCO2015", **{"DATE-OBS": OBS}).get_header_data().get_public_date() == plus(OBS, 30)
    existing = make(settings, PROPID="LCO2015", L1PUBDAT="2099-04-01T00:00:00+00:00", **{"DATE-OBS": OBS})
    assert existing.get_header_data().get_public_date() == "2099-04-01T00:00:00+00:00"


def test_public_date_needs_an_observation_date(settings) -> None:
    with pytest.raises(FileSpecificationError, match="DATE-OBS"):
        make(settings, PROPID="LCO2015")
    with pytest.raises(FileSpecificationError, match="not an ISO 8601 date"):
        make(settings, PROPID="LCO2015", **{"DATE-OBS": "19/02/15"})


@pytest.mark.parametrize(
    ("proposal", "tags", "days"),
    [
        ("EPOTHING", ["private"], 365 * 999),  # tag overrides the public-proposals setting
        ("MyProposal", ["public"], 0),
        ("MyProposal", ["private", "other"], 365 * 999),
        ("EPOTHING", ["foo"], 0),  # no privacy tag: settings' rules
        ("MYPROP", None, 365),
    ],
)
def test_proposal_tags_from_an_injected_lookup(settings, proposal: str, tags, days: int) -> None:
    asked: list[str] = []

    def lookup(pid: str):
        asked.append(pid)
        return tags

    df = DataFile(EmptyFile("t.file"), {"PROPID": proposal, "DATE-OBS": OBS}, required_headers=[],
                  settings=settings, proposal_tag_lookup=lookup)
    assert df.get_header_data().get_public_date() == (OBS if days == 0 else plus(OBS, days))
    assert asked == [proposal]
    _ = df.data_privacy_tags
    assert asked == [proposal]  # asked once


def test_a_slow_or_failing_lookup_falls_back_to_the_settings(settings, caplog) -> None:
    release = threading.Event()
    answered = threading.Event()

    def slow(pid: str):
        release.wait(30)
        answered.set()
        return ["private"]

    def broken(pid: str):
        raise RuntimeError("portal down")

    s = settings.evolve(observation_portal_timeout=0.2)  # type: ignore[arg-type]
    df = DataFile(EmptyFile("t.file"), {"PROPID": "EPO1", "DATE-OBS": OBS}, required_headers=[], settings=s,
                  proposal_tag_lookup=slow)
    assert not answered.is_set()  # built without waiting for the lookup, which is still blocked
    release.set()
    assert df.get_header_data().get_public_date() == OBS
    df = DataFile(EmptyFile("t.file"), {"PROPID": "EPO1", "DATE-OBS": OBS}, required_headers=[], settings=s,
                  proposal_tag_lookup=broken)
    assert df.get_header_data().get_public_date() == OBS
    assert "portal down" in caplog.text


class _Portal(BaseHTTPRequestHandler):
    tags: dict[str, list[str]] = {"SECRET1": ["private"], "OPEN1": ["public"]}
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        pid = self.path.rstrip("/").rsplit("/", 1)[-1]
        if pid == "BROKEN":
            self.send_response(500)
            self.end_headers()
            return
        body = json.dumps({"id": pid, "tags": self.tags.get(pid, [])}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def portal() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Portal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_observation_portal_lookup_over_http(settings, portal: str) -> None:
    s = settings.evolve(observation_portal_base_url=portal, observation_portal_api_token="tok123")
    lookup = ObservationPortalProposalTags.from_settings(s)
    assert lookup is not None and "tok123" not in repr(lookup)
    assert ObservationPortalProposalTags.from_settings(settings) is None
    for pid, days in (("SECRET1", 365 * 999), ("OPEN1", 0), ("BROKEN", 365), ("OTHER", 365)):
        df = DataFile(EmptyFile("t.file"), {"PROPID": pid, "DATE-OBS": OBS}, required_headers=[], settings=s)
        assert df.get_header_data().get_public_date() == (OBS if days == 0 else plus(OBS, days)), pid
    assert ("/api/proposals/SECRET1/", "Token tok123") in _Portal.seen


def test_wcs_corners_from_headers(settings) -> None:
    ccd = {"CD1_1": 6, "CD1_2": 2, "CD2_1": 3, "CD2_2": 4, "NAXIS1": 1000, "NAXIS2": 1100, "DATE-OBS": OBS}
    poly = make(settings, **ccd).get_wcs_corners()
    assert poly is not None and poly["type"] == "Polygon" and len(poly["coordinates"][0]) == 5
    assert make(settings, **{**ccd, "NAXIS3": 2000}).get_wcs_corners() is None
    del ccd["CD2_2"]
    assert make(settings, **ccd).get_wcs_corners() is None
    circle = make(settings, RADIUS=5, RA="11:45:44.212", DEC="-80:01:44.56", **{"DATE-OBS": OBS}).get_wcs_corners()
    assert circle is not None
    ra = (11 + 45 / 60 + 44.212 / 3600) * 15
    dec = -(80 + 1 / 60 + 44.56 / 3600)
    r = 5 / 3600
    assert circle["coordinates"][0][0] == pytest.approx([ra - r, dec + r])
    assert circle["coordinates"][0][2] == pytest.approx([ra + r, dec - r])
    assert make(settings, RADIUS=5, RA="", DEC="", **{"DATE-OBS": OBS}).get_wcs_corners() is None


def test_filestore_path(settings) -> None:
    headers = {"SITEID": "cpt", "INSTRUME": "nres03", "DATE-OBS": "2015-02-19T13:56:05.261", "OBSTYPE": "EXPOSE"}
    df = make(settings, "cptnrs03-fa13-20150219-0001-e92-summary.pdf", RLEVEL=92, **headers)
    assert df.get_filestore_path() == "cpt/nres03/20150219/processed/cptnrs03-fa13-20150219-0001-e92-summary.pdf"
    assert make(settings, "a.pdf", RLEVEL=0, **headers).get_filestore_path() == "cpt/nres03/20150219/raw/a.pdf"
    for bad in ("../..", "", "a/b"):
        with pytest.raises(FileSpecificationError, match="file-store path"):
            make(settings, "a.pdf", **{**headers, "SITEID": bad}).get_filestore_path()


def test_thumbnail(settings) -> None:
    meta = {"SITEID": "cpt", "INSTRUME": "nres03", "DATE-OBS": "2015-02-19T13:56:05.261", "size": "small",
            "frame_basename": "test.fits.fz", "DAY-OBS": "20150219", "TELID": "1m0a"}
    t = ThumbnailFile(EmptyFile("test.jpg"), meta, settings=settings)
    assert t.get_filestore_path() == "cpt/nres03/20150219/thumbnails/test.jpg"
    assert t.get_filestore_content_type() == "image/jpeg"
    record = t.get_header_data().get_archive_frame_data()
    assert record["frame_basename"] == "test.fits.fz" and record["size"] == "small"  # as given, as ocs_archive
    with pytest.raises(FileSpecificationError, match="frame_basename"):
        del meta["frame_basename"]
        ThumbnailFile(EmptyFile("test.jpg"), meta, settings=settings)


@pytest.mark.parametrize(
    ("name", "headers", "conftype"),
    [
        ("tst1m005-en20-20150511-1234-e00.fits.fz", {}, "SPECTRUM"),
        ("tst1m005-en20-20150511-bias-bin1x1.fits.fz", {}, "BIAS"),
        ("tstnrs1m005-fa20-20150511-1234-e00.fits.fz", {"ENCID": "igla"}, "TARGET"),
        ("tst1m005-fa10-20150511-1234-e00.fits.fz", {}, "EXPOSE"),
        ("tst1m005-fa10-20150511-1234-f00.fits.fz", {}, "SKYFLAT"),
        ("tst1m005-fa10-20150511-1234-a00.fits.fz", {}, "ARC"),
        ("trace-fa10-20150511.fits.fz", {}, "TRACE"),
    ],
)
def test_lco_configuration_type_repair(settings, name: str, headers: dict, conftype: str) -> None:
    meta = {"OBSTYPE": "UNKNOWN", "PROPID": "Test Proposal", "DATE-OBS": "2015-05-11T13:56:05.261", **headers}
    df = _lco(settings, name, meta)
    assert df.get_header_data().get_configuration_type() == conftype


def _lco(settings, name: str, meta: dict) -> LcoFitsFile:
    """An LcoFitsFile over a minimal real FITS header carrying ``meta``'s keys."""
    import io

    from ocs_transfer.input import File

    from .conftest import fits_bytes

    data = fits_bytes({k: v for k, v in meta.items() if len(k) <= 8})
    return LcoFitsFile(File(io.BytesIO(data), name.replace(".fits.fz", ".fits")), {**meta},
                       required_headers=[], settings=settings)


def test_lco_unknown_configuration_type_is_a_clear_error(settings) -> None:
    with pytest.raises(FileSpecificationError, match="OBSTYPE is missing or UNKNOWN and could not be inferred"):
        _lco(settings, "weird.fits", {"OBSTYPE": "UNKNOWN", "DATE-OBS": OBS})


def test_lco_catalog_and_bpm(settings) -> None:
    df = _lco(settings, "something-e90_cat.fits", {"PROPID": "P", "DATE-OBS": OBS, "OBSTYPE": "EXPOSE"})
    h = df.get_header_data()
    assert h.get_headers()["L1IDCAT"] == "something-e90" and h.get_configuration_type() == "CATALOG"
    assert h.get_reduction_level() == 90
    meta = {"SITEID": "coj", "INSTRUME": "kb05", "DATE-OBS": OBS, "OBSTYPE": "BPM", "PROPID": "P"}
    assert _lco(settings, "coj1m011-kb05-20150219-0125-e90.fits", meta).get_filestore_path() == \
        "coj/kb05/bpm/coj1m011-kb05-20150219-0125-e90.fits"
    meta["OBSTYPE"] = "EXPOSE"
    df = _lco(settings, "coj1m011-kb05-20150219-0125-bpm.fits", meta)
    assert df.get_filestore_path() == "coj/kb05/bpm/coj1m011-kb05-20150219-0125-bpm.fits"
    assert df.open_file.basename == "coj1m011-kb05-20150219-0125-bpm"  # not mutated


def test_lookup_not_asked_when_the_public_date_is_known(settings) -> None:
    asked: list[str] = []

    def lookup(pid: str):
        asked.append(pid)
        return ["private"]

    df = DataFile(EmptyFile("t.file"), {"PROPID": "P1", "DATE-OBS": OBS, "L1PUBDAT": OBS}, required_headers=[],
                  settings=settings, proposal_tag_lookup=lookup)
    assert df.data_privacy_tags is None and df.get_header_data().get_public_date() == OBS
    assert asked == []


def test_file_is_left_at_its_start(examples_dir, settings) -> None:
    from ocs_transfer.input import File, FitsFile

    with open(examples_dir / "coj1m011-kb05-20150219-0125-e90.fits.fz", "rb") as fp:
        FitsFile(File(fp, settings=settings), settings=settings)
        assert fp.tell() == 0
