"""A small ingester written against the ocs_archive 0.5 API, shaped like the OCS
ingester (validate and build the record, upload to the file store, then what
the science archive does: path from the headers, link, size, read back,
delete). Tests run it with ocs_archive 0.5.0 and, with only its imports
changed, with ocs_transfer (:data:`SCRIPT`, read as text)."""

from __future__ import annotations

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
