"""Sky footprints from headers, without importing astropy for the usual cases.

Importing astropy's coordinates and WCS machinery costs more than half a
second; the headers observatories write almost always describe something
much simpler. Two cases are computed here in plain Python:

- an angle that is a number, or a sexagesimal string such as ``12:25:03.844``
  or ``-32:22:57.38`` (:func:`angle_degrees`);
- the image corners of a plain celestial WCS (:func:`image_corners`): two
  axes, a ``TAN`` or ``SIN`` (without ``PV`` parameters) projection of
  RA/Dec, galactic or ecliptic coordinates, a ``CD`` matrix, no distortion
  and no keyword that would change the transformation (``PC``, ``CDELT``,
  ``LONPOLE``, ``PV``, SIP, ...). The maths is the FITS WCS standard's
  (Calabretta & Greisen 2002, A&A 395, 1077: sections 2-5, zenithal
  projections with their default native pole), and the longitude is put in
  the range wcslib gives.

Anything else goes to astropy (:class:`astropy.coordinates.Angle`,
:class:`astropy.wcs.WCS`), imported only then, so results never depend on
which path computed them beyond floating-point rounding: the tests compare
both paths on the example files and on generated headers and require the
corners to agree within 1e-9 degrees of arc.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["angle_degrees", "image_corners"]

Unit = Literal["hourangle", "deg", "arcsec"]

_PER_UNIT: dict[str, float] = {"hourangle": 15.0, "deg": 1.0, "arcsec": 1.0 / 3600.0}

#: A decimal number or a colon-separated sexagesimal one, with an optional sign.
_SEXAGESIMAL = re.compile(r"\s*([+-]?)(\d+(?:\.\d*)?)(?::(\d{1,2}(?:\.\d*)?)(?::(\d{1,2}(?:\.\d*)?))?)?\s*")

_UNSURE = object()  # our parsers' answer for "let astropy decide"


def _plain_angle(value: Any, unit: str) -> Any:
    factor = _PER_UNIT[unit]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) * factor
    if not isinstance(value, str):
        return _UNSURE
    match = _SEXAGESIMAL.fullmatch(value)
    if match is None:
        return _UNSURE
    sign, whole, minutes, seconds = match.groups()
    if minutes is None:
        return (-1.0 if sign == "-" else 1.0) * float(whole) * factor
    m, s = float(minutes), float(seconds or 0)
    if m >= 60 or s >= 60 or (unit == "hourangle" and float(whole) >= 24):
        return _UNSURE  # astropy warns or refuses: its answer stands
    magnitude = float(whole) + m / 60 + s / 3600
    return (-magnitude if sign == "-" else magnitude) * factor


def angle_degrees(value: Any, unit: Unit) -> float | None:
    """``value`` (a number or a string in ``unit``) in degrees, or ``None``
    when it is not an angle."""
    plain = _plain_angle(value, unit)
    if plain is not _UNSURE:
        return float(plain)
    from astropy import units
    from astropy.coordinates import Angle

    try:
        return float(Angle(value, getattr(units, unit)).deg)
    except (ValueError, TypeError, units.UnitsError):
        return None


#: Keywords of the primary WCS (no alternate-description letter) that could
#: change the transformation. Any of them outside the plain case sends the
#: header to astropy.
_WCS_KEY = re.compile(
    r"WCSAXES|CTYPE\d+|CRPIX\d+|CRVAL\d+|CDELT\d+|CUNIT\d+|CROTA\d+|CD\d+_\d+|PC\d+_\d+|PV\d+_\d+|PS\d+_\d+"
    r"|PROJP\d+|LONPOLE|LATPOLE|A_\w+|B_\w+|AP_\w+|BP_\w+|DP\d+|DQ\d+|CPDIS\d+|CQDIS\d+|CPERR\d+|CQERR\d+"
    r"|D2IM\w+|AXISCORR|DSSCRPIX|PLTRA\w+|AMDX\d+|AMDY\d+"
)
_PLAIN_KEYS = frozenset(
    {"CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"}
)
_CELESTIAL = {"RA--": "DEC-", "GLON": "GLAT", "ELON": "ELAT"}
_PROJECTIONS = ("-TAN", "-SIN")


def _plain_wcs(headers: Mapping[str, Any]) -> dict[str, Any] | None:
    """The plain celestial WCS ``headers`` describe, or ``None`` if they are
    anything else."""
    for key, value in headers.items():
        if key in _PLAIN_KEYS or not _WCS_KEY.fullmatch(key):
            continue
        if key == "WCSAXES" and value == 2 and not isinstance(value, bool):
            continue
        if key in ("CUNIT1", "CUNIT2") and isinstance(value, str) and value.strip().lower() in ("deg", ""):
            continue
        return None
    if headers.get("NAXIS", 2) != 2:
        return None
    ctype1, ctype2 = headers.get("CTYPE1"), headers.get("CTYPE2")
    if not (isinstance(ctype1, str) and isinstance(ctype2, str) and len(ctype1) == len(ctype2) == 8):
        return None
    if _CELESTIAL.get(ctype1[:4]) != ctype2[:4] or ctype1[4:] != ctype2[4:] or ctype1[4:] not in _PROJECTIONS:
        return None
    numbers: dict[str, float] = {}
    for key in _PLAIN_KEYS - {"CTYPE1", "CTYPE2"}:
        value = headers.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        numbers[key] = float(value)
    if abs(numbers["CRVAL2"]) > 90:
        return None
    return {"projection": ctype1[5:], **numbers}


def _pix2world(w: dict[str, Any], px: float, py: float) -> tuple[float, float] | None:
    dx, dy = px - w["CRPIX1"], py - w["CRPIX2"]
    x = w["CD1_1"] * dx + w["CD1_2"] * dy  # intermediate world coordinates, degrees
    y = w["CD2_1"] * dx + w["CD2_2"] * dy
    r = math.hypot(x, y)
    phi = math.atan2(x, -y) if r else 0.0  # native longitude, radians
    if w["projection"] == "TAN":
        theta = math.atan2(180 / math.pi, r)
    else:  # SIN without PV parameters (orthographic)
        rho = math.radians(r)
        if rho > 1:
            return None  # outside the projection: astropy says what such a pixel is
        theta = math.atan2(math.sqrt((1 - rho) * (1 + rho)), rho)
    # Native to celestial: the reference point is the native pole; LONPOLE's default
    # is 180 degrees unless the reference point is the celestial north pole.
    alpha_p, delta_p = w["CRVAL1"], math.radians(w["CRVAL2"])
    dphi = phi - (0.0 if w["CRVAL2"] == 90 else math.pi)
    sin_t, cos_t = math.sin(theta), math.cos(theta)
    sin_d, cos_d = math.sin(delta_p), math.cos(delta_p)
    east, north = -cos_t * math.sin(dphi), sin_t * cos_d - cos_t * sin_d * math.cos(dphi)
    up = sin_t * sin_d + cos_t * cos_d * math.cos(dphi)
    lng = alpha_p + math.degrees(math.atan2(east, north))
    lat = math.degrees(math.atan2(up, math.hypot(east, north)))  # not asin(up): exact near the poles too
    # wcslib's range: [0, 360] for a reference longitude >= 0, [-360, 0] below.
    if alpha_p >= 0 and lng < 0:
        lng += 360
    elif alpha_p < 0 and lng > 0:
        lng -= 360
    if lng > 360:
        lng -= 360
    elif lng < -360:
        lng += 360
    return lng, lat


def image_corners(headers: Mapping[str, Any]) -> list[tuple[float, float]] | None:
    """The world coordinates of the centres of the four corner pixels (1, 1),
    (1, NAXIS2), (NAXIS1, NAXIS2), (NAXIS1, 1), or ``None`` when the headers
    do not make a valid WCS."""
    try:
        nx, ny = float(headers["NAXIS1"]), float(headers["NAXIS2"])
    except (ValueError, TypeError, KeyError):
        return None
    pixels = ((1.0, 1.0), (1.0, ny), (nx, ny), (nx, 1.0))
    plain = _plain_wcs(headers)
    if plain is not None:
        points = [_pix2world(plain, x, y) for x, y in pixels]
        if all(p is not None for p in points):
            return points  # type: ignore[return-value]
    return _astropy_corners(headers, pixels)


def _astropy_corners(
    headers: Mapping[str, Any], pixels: tuple[tuple[float, float], ...]
) -> list[tuple[float, float]] | None:
    from astropy import wcs
    from astropy.io import fits

    header = fits.Header()
    for key, value in headers.items():
        if len(key) <= 8 and key.isascii() and key not in ("COMMENT", "HISTORY", "") and isinstance(
            value, str | int | float | bool
        ):
            try:
                header[key] = value
            except (ValueError, KeyError):
                continue
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = wcs.WCS(header)
            points = [w.all_pix2world(x, y, 1) for x, y in pixels]
    except (ValueError, TypeError, KeyError, MemoryError, wcs.WcsError):
        return None
    return [(float(p[0]), float(p[1])) for p in points]
