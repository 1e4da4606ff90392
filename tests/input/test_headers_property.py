"""Property tests: our header parser agrees with astropy card by card, and
header normalisation leaves no null markers behind."""

from __future__ import annotations

import io
import math

from astropy.io import fits
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ocs_transfer.input import File, FitsFile
from ocs_transfer.input.fitsheader import Source, iter_hdus
from ocs_transfer.settings import Settings

from .conftest import fits_bytes

KEYS = st.from_regex(r"[A-Z][A-Z0-9_-]{0,7}", fullmatch=True).filter(
    lambda k: k not in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "END", "COMMENT", "HISTORY", "CONTINUE", "HIERARCH",
                        "PCOUNT", "GCOUNT", "GROUPS", "XTENSION") and not k.startswith("NAXIS")
)
VALUES = st.one_of(
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200),
)


@hsettings(max_examples=60, deadline=None)
@given(st.dictionaries(KEYS, VALUES, min_size=1, max_size=40))
def test_parser_agrees_with_astropy(cards: dict) -> None:
    header = fits.Header()
    for k, v in cards.items():
        header[k] = v
    hdu = fits.PrimaryHDU(header=header)
    buf = io.BytesIO()
    hdu.writeto(buf)
    data = buf.getvalue()
    ours = next(iter_hdus(Source(io.BytesIO(data), "p.fits", size=len(data)))).header
    theirs = fits.Header.fromstring(data[: data.index(b"END" + b" " * 77) + 80].decode())
    for key, written in cards.items():
        got = ours[key]
        if isinstance(written, str):
            # FITS strings lose trailing blanks. Compared with what was written, not with
            # astropy's reading: astropy misreads a few strings (e.g. a quote followed by a slash).
            assert got == written.rstrip(), key
        elif isinstance(written, float):
            a = theirs[key]  # as formatted in the card
            assert isinstance(got, float) and (math.isclose(a, got, rel_tol=1e-15) or a == got), key
        else:
            assert got == written and type(got) is type(written), key


NULLS = Settings().null_header_values


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["OBJECT", "REQNUM", "BLKUID", "MOLUID", "TRACKNUM", "FILTER", "X1", "X2"]),
                       st.one_of(st.sampled_from([*NULLS, "NONE", "None", "none"]), st.integers(), st.text(max_size=8)),
                       max_size=8))
def test_normalisation_leaves_no_null_markers(metadata: dict) -> None:
    s = Settings()
    data = fits_bytes({"DATE-OBS": "2020-01-01T00:00:00"})
    df = FitsFile(File(io.BytesIO(data), "x.fits", settings=s), metadata, required_headers=[], settings=s)
    headers = df.get_header_data().get_headers()
    integer_keys = df.INTEGER_TYPES
    for key, value in metadata.items():
        got = headers[key]
        if isinstance(value, str) and value in NULLS:
            assert got == (None if key in integer_keys else "")
        elif key in integer_keys and isinstance(value, str) and "NONE" in value.upper():
            assert got is None
        else:
            assert got == value
        assert not (isinstance(got, str) and got in NULLS)
