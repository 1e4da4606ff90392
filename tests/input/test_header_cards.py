"""Cards that look like the END card or span several cards (issue 20):
``ENDTIME``, ``END`` followed by text, ``CONTINUE`` long strings and
``HIERARCH`` keywords, in headers written by astropy and read back by astropy
as the independent oracle."""

from __future__ import annotations

import io
import warnings

import pytest
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning

from ocs_transfer.input.fitsheader import Source, iter_hdus

LONG = "a long comment about the night, " * 4 + "and its end"  # > 68 characters: CONTINUE cards


def written(header: fits.Header) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)  # astropy says it makes HIERARCH cards
        fits.HDUList([fits.PrimaryHDU(header=header), fits.ImageHDU(name="SCI")]).writeto(buf)
    return buf.getvalue()


def ours(data: bytes) -> list[dict]:
    return [hdu.header for hdu in iter_hdus(Source(io.BytesIO(data), "cards.fits", size=len(data)))]


def astropys(data: bytes) -> list[fits.Header]:
    with fits.open(io.BytesIO(data)) as hdul:
        return [hdu.header.copy() for hdu in hdul]


def test_endtime_end_and_continue_cards_do_not_end_the_header() -> None:
    header = fits.Header()
    header["ENDTIME"] = "2026-01-01T05:00:00"
    header["ENDX"] = 5
    header["NOTE"] = LONG
    header["HIERARCH ESO DET END TIME"] = "05:00"
    header["HIERARCH LCO END"] = 7
    header["AFTER"] = "still read"
    data = written(header)
    assert data.count(b"CONTINUE") >= 1 and data.count(b"HIERARCH") == 2  # the cards under test are there
    theirs = astropys(data)
    mine = ours(data)
    assert len(mine) == len(theirs) == 2
    for key in ("ENDTIME", "ENDX", "NOTE", "AFTER"):
        assert mine[0][key] == theirs[0][key], key
    assert mine[0]["ESO DET END TIME"] == theirs[0]["ESO DET END TIME"] == "05:00"
    assert mine[0]["LCO END"] == theirs[0]["LCO END"] == 7
    assert mine[0]["NOTE"] == LONG
    assert mine[1]["EXTNAME"] == theirs[1]["EXTNAME"] == "SCI"


def _replace_card(data: bytes, key: bytes, card: bytes) -> bytes:
    at = data.index(key.ljust(8))
    assert at % 80 == 0
    return data[:at] + card.ljust(80) + data[at + 80 :]


@pytest.mark.parametrize(
    "card",
    [b"END     text after END is not the END card", b"END  =  3 / a keyword named END", b"ENDED   = 'T'"],
    ids=["end-with-text", "end-with-value", "ended"],
)
def test_only_a_blank_end_card_ends_the_header(card: bytes) -> None:
    header = fits.Header()
    header["PLACEHLD"] = 0
    header["AFTER"] = "still read"
    data = _replace_card(written(header), b"PLACEHLD", card)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy warns about the odd card, and reads on
        theirs = astropys(data)
    mine = ours(data)
    assert "AFTER" in theirs[0]  # the oracle reads past the odd card
    assert mine[0]["AFTER"] == theirs[0]["AFTER"] == "still read"
    assert len(mine) == len(theirs) == 2


def test_a_handwritten_continue_card_joins_the_string_before_it() -> None:
    """A string ending in ``&`` followed by a CONTINUE card is one value, as
    astropy reads it; the keyword after it is still read."""
    header = fits.Header()
    header["TEXT"] = "short&"
    header["PLACEHLD"] = 0
    header["AFTER"] = 1
    data = _replace_card(written(header), b"PLACEHLD", b"CONTINUE  'more'")
    theirs = astropys(data)
    mine = ours(data)
    assert mine[0]["TEXT"] == theirs[0]["TEXT"] == "shortmore"
    assert mine[0]["AFTER"] == theirs[0]["AFTER"] == 1
