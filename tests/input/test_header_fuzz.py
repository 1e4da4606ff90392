"""Hostile header values: the header reader and the metadata computation
together either give metadata or one clear :class:`FileSpecificationError`,
never another exception (issue 11, point 11).

The fixed cases are the ones found by hand (a far DATE-OBS, ``RLEVEL = 1E999``,
``NAXIS = 999`` with huge axes); the property test fuzzes the same class at a
fixed budget, derandomised so every run tries the same examples, each within
a memory bound (``benchmarks/fuzz.py`` runs it longer)."""

from __future__ import annotations

import io

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ocs_transfer.exceptions import DoNotRetryError, FileSpecificationError
from ocs_transfer.input import File, FileFactory
from ocs_transfer.input.fitsheader import MAX_DATA_BYTES
from ocs_transfer.settings import Settings
from ocs_transfer.testing.fuzz import bounded, fuzz_settings

from .conftest import LCO_HEADERS

BLOCK = 2880


def raw_card(key: str, value_text: str) -> bytes:
    """A card with ``value_text`` exactly as written in the value field."""
    return f"{key:<8}= {value_text}"[:80].ljust(80).encode("latin-1")


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def fits_file(cards: list[bytes]) -> bytes:
    raw = b"".join(cards) + b"END".ljust(80)
    return raw + b" " * (-len(raw) % BLOCK)


def lco_cards(**overrides: str) -> list[bytes]:
    """SIMPLE/BITPIX/NAXIS and the LCO headers, values as card text;
    ``overrides`` replace or add value texts (``NAXIS`` too)."""
    values = {"BITPIX": "16", "NAXIS": "0"}
    values.update({k: (str(v) if isinstance(v, int) else quoted(str(v))) for k, v in LCO_HEADERS.items()})
    values.update(overrides)
    return [raw_card("SIMPLE", "T"), *(raw_card(k, v) for k, v in values.items())]


def compute_everything(data: bytes, settings: Settings, name: str = "fuzz.fits") -> None:
    """What a transfer asks of a file: read it, build its metadata and path."""
    df = FileFactory.get_datafile(File(io.BytesIO(data), name, settings=settings), {}, settings=settings)
    hd = df.get_header_data()
    hd.get_archive_frame_data()
    df.get_filestore_path()
    df.get_wcs_corners()
    df.get_filestore_content_type()


def assert_spec_error(data: bytes, settings: Settings, match: str) -> None:
    with pytest.raises(FileSpecificationError, match=match) as info:
        compute_everything(data, settings)
    assert isinstance(info.value, DoNotRetryError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("proposal", ["LCO2015A-001", "LCOEngineering"], ids=["public-after-a-year", "private"])
def test_a_far_observation_date_is_a_specification_error(proposal: str) -> None:
    """The public date (DATE-OBS + 365 days, or + 999 years when private) would
    pass the year 9999: datetime raises OverflowError."""
    data = fits_file(lco_cards(**{"DATE-OBS": quoted("9999-12-01T00:00:00"), "PROPID": quoted(proposal)}))
    assert_spec_error(data, Settings(), r"DATE-OBS='9999-12-01T00:00:00' plus \d+ days is past the year 9999")


@pytest.mark.parametrize("value", ["1E999", "-1E999", "1D999"])
def test_an_infinite_reduction_level_is_a_specification_error(value: str) -> None:
    assert_spec_error(fits_file(lco_cards(RLEVEL=value)), Settings(), r"RLEVEL=-?inf is not a reduction level")


def test_huge_axes_are_a_specification_error_not_an_unprintable_number() -> None:
    """999 axes of 60 digits each: the product has ~60,000 digits, which Python
    refuses to turn into text (ValueError) while formatting the message."""
    axes = {f"NAXIS{i}": "9" * 60 for i in range(1, 1000)}
    data = fits_file(lco_cards(NAXIS="999", **axes))
    assert_spec_error(data, Settings(), r"HDU 0: .*more than 2\*\*63 bytes of data")


def test_data_just_under_the_limit_is_judged_by_the_file_size() -> None:
    """The bound is on what a header may declare, not a cap on real files:
    a declared size under it is checked against the bytes really there."""
    declared = MAX_DATA_BYTES // 2  # BITPIX 16: two bytes per pixel
    data = fits_file(lco_cards(NAXIS="1", NAXIS1=str(declared)))
    assert_spec_error(data, Settings(), rf"truncated: the data of HDU 0 is {MAX_DATA_BYTES} bytes")


def _int_text(n: int) -> str:
    return str(n)


# Card value texts a careless or hostile writer produces for a number or a date.
NUMBERS = st.one_of(
    st.integers(-(10**70), 10**70).map(_int_text),
    st.sampled_from(["1E999", "-1E999", "1D999", "NaN", "inf", "0.5", "-0", "1e-400", "3.", ".5D2", "(1,2)", ""]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
DATES = st.one_of(
    st.datetimes().map(lambda d: quoted(d.isoformat())),
    st.sampled_from(["'9999-12-31T23:59:59'", "'0001-01-01'", "'2015-02-30T00:00:00'", "'now'", "''", "T", "12"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(quoted),
)
TEXTS = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(quoted),
    st.sampled_from(["'..'", "'a/b'", "'%2e%2e'", "'a%00b'", "''", "T", "1E999", "'   '"]),
)
FIELDS = {
    "DATE-OBS": DATES,
    "DAY-OBS": st.one_of(DATES, NUMBERS),
    "L1PUBDAT": st.one_of(DATES, st.just("''")),
    "RLEVEL": NUMBERS,
    "PROPID": st.one_of(TEXTS, st.sampled_from(["'LCOEngineering'", "'LCOEPO2014B-007'"])),
    "OBSTYPE": st.one_of(TEXTS, st.sampled_from(["'BIAS'", "'DARK'", "'EXPOSE'"])),
    "SITEID": TEXTS,
    "INSTRUME": TEXTS,
    "EXPTIME": NUMBERS,
    "RA": st.one_of(NUMBERS, TEXTS),
    "DEC": st.one_of(NUMBERS, TEXTS),
    "RADIUS": NUMBERS,
    "CD1_1": NUMBERS,
    "CD1_2": NUMBERS,
    "CD2_1": NUMBERS,
    "CD2_2": NUMBERS,
    "CRVAL1": NUMBERS,
    "CRPIX1": NUMBERS,
    "CTYPE1": st.one_of(TEXTS, st.just("'RA---TAN'")),
    "CTYPE2": st.one_of(TEXTS, st.just("'DEC--TAN'")),
}
STRUCTURE = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {"BITPIX": st.sampled_from(["8", "16", "-32", "-64", "7", "1E999", "'x'"]), "NAXIS": st.just("2")},
        optional={"NAXIS1": NUMBERS, "NAXIS2": NUMBERS, "PCOUNT": NUMBERS, "GCOUNT": NUMBERS},
    ),
    st.fixed_dictionaries({"NAXIS": st.sampled_from(["999", "-1", "1000", "1E999", "T"])}).map(
        lambda d: {**d, **{f"NAXIS{i}": "9" * 60 for i in range(1, 1000)}}
    ),
)


@fuzz_settings(150)
@given(st.fixed_dictionaries({}, optional=FIELDS), STRUCTURE)
@example({"DATE-OBS": "'9999-12-01T00:00:00'", "PROPID": "'LCOEngineering'"}, {})
@example({"RLEVEL": "1E999"}, {})
def test_hostile_header_values_give_metadata_or_a_specification_error(fields: dict, structure: dict) -> None:
    data = fits_file(lco_cards(**structure, **fields))
    try:
        bounded(lambda: compute_everything(data, Settings()))
    except FileSpecificationError as exc:
        assert isinstance(exc, DoNotRetryError)
        assert str(exc) and "\n" not in str(exc)
