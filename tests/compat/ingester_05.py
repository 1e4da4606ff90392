"""A small ingester written against the ocs_archive 0.5 API, shaped like the OCS
ingester (validate and build the record, upload to the file store, then what
the science archive does: path from the headers, link, size, read back,
delete). Tests run it with ocs_archive 0.5.0 and, with only its imports
changed, with ocs_transfer (:data:`SCRIPT`, read as text)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

SCRIPT = (Path(__file__).parent / "ingester_05_script.py").read_text()

THUMB = {"frame_basename": "tfn0m419-sq32-20240426-0097-e91", "size": "small", "DATE-OBS": "2024-04-26T21:12:00",
         "DAY-OBS": "20240426", "INSTRUME": "sq32", "SITEID": "tfn", "TELID": "0m4a"}
PDF = {"PROPID": "LCO2015A-001", "DATE-OBS": "2015-02-19T13:56:05.261", "DAY-OBS": "20150219", "INSTRUME": "nres03",
       "SITEID": "cpt", "TELID": "igla", "OBSTYPE": "EXPOSE", "BLKUID": 1, "RLEVEL": 92}


def inputs(examples: Path, into: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for src in sorted(examples.iterdir()):
        meta = THUMB if src.suffix == ".jpg" else PDF if src.suffix == ".pdf" else None
        items.append({"path": str(shutil.copy(src, into / src.name)), "metadata": meta})
    (into / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    items.append({"path": str(into / "broken.fits")})
    return items


#: ocs_transfer computes footprints of plain celestial WCS headers with its own
#: maths (ocs_transfer.input.footprint), not astropy's: the corners agree with
#: ocs_archive's to this many degrees, not always to the last bit.
AREA_TOLERANCE_DEG = 1e-9


def assert_same_results(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    """The script's results are equal, footprints within :data:`AREA_TOLERANCE_DEG`."""
    assert len(ours) == len(theirs)
    for mine, their in zip(ours, theirs, strict=True):
        mine, their = copy.deepcopy(mine), copy.deepcopy(their)
        my_area = mine.get("record", {}).pop("area", None)
        their_area = their.get("record", {}).pop("area", None)
        assert mine == their
        assert (my_area is None) == (their_area is None), mine["name"]
        if my_area is not None:
            assert my_area["type"] == their_area["type"]
            mine_ring, their_ring = my_area["coordinates"][0], their_area["coordinates"][0]
            assert len(mine_ring) == len(their_ring)
            for a, b in zip(mine_ring, their_ring, strict=True):
                assert abs(a[0] - b[0]) <= AREA_TOLERANCE_DEG and abs(a[1] - b[1]) <= AREA_TOLERANCE_DEG, mine["name"]
