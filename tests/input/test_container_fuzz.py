"""Fuzzing the containers and the names (issue 19): a small LCO frame as
plain, gzip, bzip2, fpack, tar and tar.gz, damaged at random (bytes flipped,
cut short, bytes inserted, junk appended; before or after compression), and
under any name. Every input gives metadata and a path or one clear
:class:`FileSpecificationError`, within a memory bound (the time each takes
is measured by ``benchmarks/fuzz.py``, not asserted here)."""

from __future__ import annotations

import bz2
import gzip
import io
import tarfile
from collections.abc import Callable

import numpy as np
from astropy.io import fits
from hypothesis import example, given
from hypothesis import strategies as st

from ocs_transfer.exceptions import DoNotRetryError, FileSpecificationError
from ocs_transfer.input import FileFactory, LcoName, PhotonRanchName, split_name
from ocs_transfer.settings import Settings
from ocs_transfer.testing.fuzz import bounded, fuzz_settings

from .conftest import LCO_HEADERS, fits_bytes
from .test_header_fuzz import compute_everything

SETTINGS = Settings()
FRAME = fits_bytes(LCO_HEADERS)


def _fpack(data: bytes) -> bytes:
    header = fits.Header()
    for key, value in LCO_HEADERS.items():
        header[key] = value
    hdus = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.arange(64, dtype=np.int16).reshape(8, 8),
                                                             header=header)])
    buf = io.BytesIO()
    hdus.writeto(buf)
    return buf.getvalue()


def _tar(data: bytes, compress: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w") as tar:
        info = tarfile.TarInfo("coj1m011-kb05-20150219-0125-e90.fits")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


#: name -> how a (possibly damaged) FITS frame is packed under that name
PACKERS: dict[str, Callable[[bytes], bytes]] = {
    "x.fits": lambda d: d,
    "x.fits.gz": gzip.compress,
    "x.fits.bz2": bz2.compress,
    "x.fits.fz": _fpack,  # fpack ignores the damage to the plain frame: it compresses its own image
    "x.tar": lambda d: _tar(d, False),
    "x.tar.gz": lambda d: _tar(d, True),
}
NAMES = sorted(PACKERS)

DAMAGE = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=200)),
    st.tuples(st.just("append"), st.just(1.0), st.binary(min_size=1, max_size=3000)),
)


def damage(data: bytes, steps: list[tuple[str, float, object]]) -> bytes:
    out = bytearray(data)
    for kind, where, what in steps:
        at = min(int(where * len(out)), max(len(out) - 1, 0))
        if kind == "flip" and out:
            out[at] ^= int(what)  # type: ignore[call-overload]
        elif kind == "cut":
            del out[at:]
        elif kind == "insert":
            out[at:at] = what  # type: ignore[index]
        elif kind == "append":
            out += what  # type: ignore[operator]
    return bytes(out)


def assert_read_or_refused(data: bytes, name: str) -> None:
    try:
        bounded(lambda: compute_everything(data, SETTINGS, name))
    except FileSpecificationError as exc:
        assert isinstance(exc, DoNotRetryError)
        assert str(exc) and "\n" not in str(exc), repr(str(exc))


@fuzz_settings(200)
@given(
    packed_as=st.sampled_from(NAMES),
    named=st.one_of(st.none(), st.sampled_from(NAMES)),
    inner=st.lists(DAMAGE, max_size=3),
    outer=st.lists(DAMAGE, max_size=3),
)
@example(packed_as="x.tar.gz", named=None, inner=[], outer=[("cut", 0.5, 0)])
@example(packed_as="x.fits.gz", named="x.tar.gz", inner=[], outer=[])
def test_damaged_containers_give_metadata_or_a_specification_error(
    packed_as: str, named: str | None, inner: list, outer: list
) -> None:
    """``inner`` damages the frame before packing (the container is sound,
    its content not); ``outer`` damages the packed bytes; ``named`` gives the
    file another container's name."""
    data = damage(PACKERS[packed_as](damage(FRAME, inner)), outer)
    assert_read_or_refused(data, named or packed_as)


NAME_TEXT = st.one_of(
    st.text(max_size=60),
    st.builds(lambda stem, ext: stem + ext, st.text(max_size=40), st.sampled_from(FileFactory.known_extensions())),
    st.from_regex(r"[a-z]{3}[a-z0-9]{1,5}-[a-z0-9]{1,6}-\d{8}-\d{4}-[a-z]\d{2}([-_].{0,10})?", fullmatch=True),
    st.from_regex(r"[a-z0-9]{1,5}-[a-z0-9]{1,8}-\d{8}-\d{8}-[A-Za-z]{2}\d{2}([-_].{0,10})?", fullmatch=True),
)


@fuzz_settings(300)
@given(NAME_TEXT, st.sampled_from(FileFactory.known_extensions()))
@example("coj1m011-kb05-20151399-0125-e90", ".fits")  # month 13
@example("../../etc/passwd", ".fits")
@example("a\x00b", ".fits")
@example("\n", ".jpeg")  # found by the long run: the file name's newline made a two-line message
def test_any_file_name_gives_metadata_or_a_specification_error(stem: str, extension: str) -> None:
    """Names decide the reader, the LCO/Photon Ranch parts and the archive
    path: whatever the name, the frame is read or refused clearly."""
    body = PACKERS.get("x" + extension.lower(), PACKERS["x.fits"])(FRAME)
    assert_read_or_refused(body, stem + extension)


@fuzz_settings(500)
@given(NAME_TEXT)
@example("0-0-00011001-00000000-AA0\u0660")  # an Arabic-Indic digit was read as a reduction level
@example("coj1m011-kb05-20\u0661\u0665\u0660219-0125-e90")  # and as a day
@example("coj1m011-kb05-20150219-0125-e90\n")  # "$" let a final newline through
def test_name_parsers_give_parts_that_rebuild_the_name_or_none(text: str) -> None:
    basename, extension = split_name(text, FileFactory.known_extensions())
    assert basename + extension == text.replace("\\", "/").rsplit("/", 1)[-1]
    lco = LcoName.parse(basename)
    if lco is not None:
        rebuilt = (f"{lco.site}{lco.telescope}-{lco.instrument}-{lco.day}-{lco.sequence}-{lco.obstype}"
                   f"{lco.reduction_level:02d}")
        assert basename == rebuilt or (basename.startswith(rebuilt) and basename[len(rebuilt)] in "-_")
        assert (lco.day + lco.sequence).isascii()  # the archive path is built from them
    pr = PhotonRanchName.parse(basename)
    if pr is not None:
        rebuilt = f"{pr.site}-{pr.instrument}-{pr.day}-{pr.sequence}-{pr.datatype}{pr.reduction_level:02d}"
        assert basename == rebuilt or (basename.startswith(rebuilt) and basename[len(rebuilt)] in "-_")
        assert (pr.day + pr.sequence).isascii()
