"""``ocs-transfer inspect``, run through the real command group."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from astropy.io import fits
from click.testing import CliRunner

from ocs_transfer.cli import main


def run(*args: str):
    return CliRunner().invoke(main, ["inspect", *args], catch_exceptions=False)


def test_inspect_table(examples_dir: Path) -> None:
    path = examples_dir / "coj1m011-kb05-20150219-0125-e90.fits.fz"
    result = run(str(path))
    assert result.exit_code == 0, result.output
    with fits.open(path) as hdul:
        h = hdul[1].header
    out = result.output
    assert "ocs_transfer.input.lcofitsfile.LcoFitsFile" in out
    assert f"{h['SITEID']}/{h['INSTRUME']}/{h['DAY-OBS']}/processed/{path.name}" in out
    assert h["OBJECT"] in out and h["PROPID"] in out
    assert "site=coj telescope=1m011 instrument=kb05" in out


def test_inspect_json_and_a_bad_file(examples_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"not a fits file" * 300)
    good = examples_dir / "cpt1m012-fl10-20151216-0073-e00.fits.fz"
    result = CliRunner().invoke(main, ["inspect", "--json", "--hash", str(bad), str(good)])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {bad}: not a FITS file: it does not start with SIMPLE = T"]
    data = json.loads(result.stdout)
    assert data[0] == {"path": str(bad), "error": errors[0].removeprefix("error: ")}
    record = data[1]["archive_record"]
    with fits.open(good) as hdul:
        h = hdul[1].header
    assert record["observation_date"] == h["DATE-OBS"] and record["reduction_level"] == 0
    assert data[1]["filestore_path"] == f"cpt/fl10/20151216/raw/{good.name}"
    import hashlib

    assert data[1]["file"]["md5"] == hashlib.md5(good.read_bytes()).hexdigest()


def test_inspect_metadata_for_pdf_and_missing_file(examples_dir: Path, tmp_path: Path) -> None:
    pdf = examples_dir / "cptnrs03-fa13-20150219-0001-e92-summary.pdf"
    result = CliRunner().invoke(main, ["inspect", str(pdf)])
    assert result.exit_code == 1 and "missing required headers" in result.stderr
    meta = ["-m", "PROPID=LCO2015", "-m", "DATE-OBS=2015-02-19T13:56:05.261", "-m", "DAY-OBS=20150219",
            "-m", "INSTRUME=nres03", "-m", "SITEID=cpt",
            "-m", "TELID=igla", "-m", "OBSTYPE=EXPOSE", "-m", "BLKUID=1", "-m", "RLEVEL=92"]
    result = CliRunner().invoke(main, ["inspect", "--json", *meta, str(pdf), str(tmp_path / "nope.fits")])
    assert result.exit_code == 1
    assert "nope.fits" in result.stderr
    info = json.loads(result.stdout)[0]
    assert info["filestore_path"] == f"cpt/nres03/20150219/processed/{pdf.name}"
    assert info["content_type"] == "application/pdf"


def test_inspect_photon_ranch_thumbnail(examples_dir: Path, tmp_path: Path) -> None:
    jpg = tmp_path / "sro-kb001ms-20220629-00010442-EX10.jpg"
    shutil.copy(examples_dir / "tfn0m419-sq32-20240426-0097-e91-small.jpg", jpg)
    meta = ["-m", "frame_basename=sro-kb001ms-20220629-00010442-EX10", "-m", "size=small",
            "-m", "DATE-OBS=2022-06-29T03:00:00", "-m", "DAY-OBS=20220629", "-m", "INSTRUME=kb001ms",
            "-m", "SITEID=sro", "-m", "TELID=0m31"]
    result = run(*meta, str(jpg))
    assert result.exit_code == 0, result.output
    assert "sro/kb001ms/20220629/thumbnails/sro-kb001ms-20220629-00010442-EX10.jpg" in result.output
    assert "site=sro instrument=kb001ms day=20220629 sequence=00010442 datatype=EX reduction_level=10" in result.output
