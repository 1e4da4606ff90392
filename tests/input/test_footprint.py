"""The footprint computed without astropy agrees with astropy's.

Tolerance: every corner within 1e-9 degrees of arc (great-circle distance) of
what ``astropy.wcs.WCS(header).all_pix2world`` gives; angles within 1e-9
degrees of ``astropy.coordinates.Angle``. Headers our own maths does not
cover go to astropy, so for them the results are astropy's exactly.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from astropy import units
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.wcs import WCS, WcsError
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ocs_transfer.input import open_datafile
from ocs_transfer.input.footprint import _plain_wcs, angle_degrees, image_corners

TOLERANCE_DEG = 1e-9


def _separation(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in degrees (haversine: accurate for tiny angles)."""
    (l1, b1), (l2, b2) = (tuple(map(math.radians, p)) for p in (a, b))
    h = math.sin((b2 - b1) / 2) ** 2 + math.cos(b1) * math.cos(b2) * math.sin((l2 - l1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def _astropy(header: dict[str, Any]) -> list[tuple[float, float]] | None:
    h = fits.Header()
    for key, value in header.items():
        h[key] = value
    nx, ny = float(header["NAXIS1"]), float(header["NAXIS2"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = WCS(h)
            return [tuple(map(float, w.all_pix2world(x, y, 1))) for x, y in ((1, 1), (1, ny), (nx, ny), (nx, 1))]
    except (ValueError, WcsError):  # what astropy refuses, ours must refuse too
        return None


def _assert_close(ours: list[tuple[float, float]] | None, theirs: list[tuple[float, float]] | None) -> None:
    assert (ours is None) == (theirs is None), (ours, theirs)
    if ours is None or theirs is None:
        return
    for got, want in zip(ours, theirs, strict=True):
        if any(math.isnan(c) for c in want):  # a pixel outside the projection
            assert [math.isnan(c) for c in got] == [math.isnan(c) for c in want], (got, want)
            continue
        assert _separation(got, want) <= TOLERANCE_DEG, (got, want)
        if abs(want[1]) < 89.9:  # the longitude itself in wcslib's range, not just the same point
            assert abs(got[0] - want[0]) <= TOLERANCE_DEG / math.cos(math.radians(want[1])) + 1e-12, (got, want)


def _real_files(examples_dir: Path) -> list[Path]:
    return sorted(p for p in examples_dir.iterdir() if ".fits" in p.name)


def test_real_files_match_astropy_without_importing_it(examples_dir: Path) -> None:
    """Each example file's footprint from a fresh process that never imports
    astropy, against astropy's WCS of the file's own header."""
    files = _real_files(examples_dir)
    probe = (
        "import json, sys\n"
        "from ocs_transfer.input import open_datafile\n"
        "out = []\n"
        "for path in sys.argv[1:]:\n"
        "    with open_datafile(path) as df:\n"
        "        out.append(df.get_wcs_corners())\n"
        "print(json.dumps({'footprints': out, 'astropy': sorted(m for m in sys.modules if m.startswith('astropy'))}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *map(str, files)], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result["astropy"] == []
    compared = 0
    for path, footprint in zip(files, result["footprints"], strict=True):
        with fits.open(path) as hdul:
            hdu = hdul[1] if path.name.endswith(".fz") else hdul[0]
            header = dict(hdu.header)
        if "NAXIS3" in header:
            assert footprint is None
            continue
        ring = footprint["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) == 5
        plain = {k: v for k, v in header.items() if k not in ("COMMENT", "HISTORY", "")}
        _assert_close([tuple(p) for p in ring[:4]], _astropy(plain))
        compared += 1
    assert compared >= 3


_CELESTIAL = [("RA---", "DEC--"), ("GLON-", "GLAT-"), ("ELON-", "ELAT-")]


@st.composite
def plain_headers(draw: st.DrawFn) -> dict[str, Any]:
    lon, lat = draw(st.sampled_from(_CELESTIAL))
    projection = draw(st.sampled_from(["TAN", "SIN"]))
    nx, ny = draw(st.integers(1, 8000)), draw(st.integers(1, 8000))
    # pixel scale up to 0.05 deg, any rotation, a little skew, either parity
    scale = draw(st.floats(1e-6, 0.05 if projection == "TAN" else 5e-3))
    rotation = math.radians(draw(st.floats(-180, 180)))
    skew = draw(st.floats(0.9, 1.1))
    flip = draw(st.sampled_from([-1.0, 1.0]))
    # keywords that do not change the transformation, sometimes present
    extra: dict[str, Any] = draw(st.sampled_from([
        {}, {"CUNIT1": "deg", "CUNIT2": "deg"}, {"CUNIT1": "DEG", "CUNIT2": "deg"}, {"WCSAXES": 2},
        {"RADESYS": "FK5", "EQUINOX": 2000.0}, {"CTYPE1A": "RA---ZEA", "CRVAL1A": 1.0, "WCSNAME": "sky"},
    ]))
    return {**extra,
        "NAXIS": 2, "NAXIS1": nx, "NAXIS2": ny,
        "CTYPE1": lon + projection, "CTYPE2": lat + projection,
        "CRPIX1": draw(st.floats(-nx, 2.0 * nx)), "CRPIX2": draw(st.floats(-ny, 2.0 * ny)),
        "CRVAL1": draw(st.one_of(st.floats(-360, 720), st.sampled_from([0.0, 180.0, 359.9999]))),
        "CRVAL2": draw(st.one_of(st.floats(-90, 90), st.sampled_from([-90.0, 0.0, 89.9999, 90.0]))),
        "CD1_1": flip * scale * math.cos(rotation), "CD1_2": -scale * skew * math.sin(rotation),
        "CD2_1": flip * scale * math.sin(rotation), "CD2_2": scale * skew * math.cos(rotation),
    }


@hsettings(max_examples=400, deadline=None)
@given(plain_headers())
def test_plain_wcs_matches_astropy(header: dict[str, Any]) -> None:
    assert _plain_wcs(header) is not None  # these are computed by our own maths
    _assert_close(image_corners(header), _astropy(header))


@hsettings(max_examples=100, deadline=None)
@given(plain_headers(), st.sampled_from([
    {"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "A_ORDER": 2, "B_ORDER": 2, "A_2_0": 1e-5, "B_0_2": -2e-5},
    {"PC1_1": 0.5, "CDELT1": 1e-4, "CDELT2": 1e-4},
    {"CTYPE1": "RA---ZEA", "CTYPE2": "DEC--ZEA"},
    {"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN", "PV2_1": 0.01, "PV2_2": -0.02},
    {"LONPOLE": 170.0},
    {"CUNIT1": "arcsec", "CUNIT2": "arcsec"},
    {"CTYPE1": "RA---TAN", "CTYPE2": "GLAT-TAN"},  # RA with galactic latitude: astropy refuses it
]))
def test_other_wcs_goes_to_astropy(header: dict[str, Any], extra: dict[str, Any]) -> None:
    header = {**header, **extra}
    assert _plain_wcs(header) is None
    _assert_close(image_corners(header), _astropy(header))


def test_singular_cd_matrix_is_what_astropy_makes_of_it() -> None:
    header = {"NAXIS": 2, "NAXIS1": 100, "NAXIS2": 100, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 50.0,
              "CRPIX2": 50.0, "CRVAL1": 10.0, "CRVAL2": 20.0, "CD1_1": 1e-4, "CD1_2": 2e-4, "CD2_1": 1e-4,
              "CD2_2": 2e-4}
    assert _plain_wcs(header) is not None
    _assert_close(image_corners(header), _astropy(header))


_SEXAGESIMAL = st.tuples(st.sampled_from(["", "+", "-"]), st.integers(0, 359), st.integers(0, 59),
                         st.floats(0, 59.999, allow_nan=False))


@hsettings(max_examples=300, deadline=None)
@given(st.one_of(
    st.floats(-1e4, 1e4), st.integers(-10**6, 10**6),
    _SEXAGESIMAL.map(lambda t: f"{t[0]}{t[1]:02d}:{t[2]:02d}:{t[3]:06.3f}"),
    _SEXAGESIMAL.map(lambda t: f"{t[0]}{t[1]}:{t[2]}"),
    _SEXAGESIMAL.map(lambda t: f" {t[0]}{t[1] + t[3] / 60:.6f} "),
), st.sampled_from(["hourangle", "deg", "arcsec"]))
def test_angles_match_astropy(value: Any, unit: str) -> None:
    want = _astropy_angle(value, unit)
    got = angle_degrees(value, unit)  # type: ignore[arg-type]
    if want is None:  # e.g. 25 hours in sexagesimal
        assert got is None
    else:
        assert got is not None and abs(got - want) <= TOLERANCE_DEG * max(1.0, abs(want) / 360), (value, got, want)


def _astropy_angle(value: Any, unit: str) -> float | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(Angle(value, getattr(units, unit)).deg)
    except (ValueError, TypeError, units.UnitsError):
        return None


@pytest.mark.parametrize("value", ["12h25m03.8s", "not an angle", "", "12:75:00", "25:00:00", True])
def test_unusual_angles_are_astropy_s(value: Any) -> None:
    assert angle_degrees(value, "hourangle") == _astropy_angle(value, "hourangle")


def test_radius_footprint_from_sexagesimal_headers(examples_dir: Path) -> None:
    """RADIUS + RA/DEC (what spectrographs write): the square around the
    circle, from the real file's own RA and DEC strings."""
    path = examples_dir / "coj1m011-kb05-20150219-0125-e90.fits"
    with open_datafile(path, {"RADIUS": 30.0}) as df:
        headers = df.get_header_data().get_headers()
        ring = df.get_wcs_corners()["coordinates"][0]  # type: ignore[index]
    ra = Angle(headers["RA"], units.hourangle).deg
    dec = Angle(headers["DEC"], units.deg).deg
    r = Angle(30.0, units.arcsec).deg
    want = [(ra - r, dec + r), (ra + r, dec + r), (ra + r, dec - r), (ra - r, dec - r)]
    assert [c for p in ring[:4] for c in p] == pytest.approx([c for p in want for c in p], abs=TOLERANCE_DEG)
