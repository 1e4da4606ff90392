"""``ocs-transfer sweep DEST`` and the worker's periodic sweep remove the
temporary names crashed uploads left, and only old ones."""

from __future__ import annotations

import os
import time
from pathlib import Path

from click.testing import CliRunner

from ocs_transfer.cli import main
from ocs_transfer.settings import Settings
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine
from ocs_transfer.transfer.ledger import Ledger


def _leftovers(root: Path) -> tuple[Path, Path, Path]:
    (root / "M31").mkdir(parents=True)
    real = root / "M31" / "frame.fits"
    real.write_bytes(b"kept")
    old = root / "M31" / ".frame.fits.ocs-transfer-partial-0123456789ab"
    old.write_bytes(b"crashed upload")
    young = root / "M31" / ".other.fits.ocs-transfer-partial-abcdefabcdef"
    young.write_bytes(b"an upload in progress")
    day_and_a_half_ago = time.time() - 36 * 3600
    os.utime(old, (day_and_a_half_ago, day_and_a_half_ago))
    return real, old, young


def test_sweep_command_removes_old_leftovers_only(tmp_path: Path) -> None:
    root = tmp_path / "dest"
    real, old, young = _leftovers(root)
    env = {"OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}"}
    runner = CliRunner()
    added = runner.invoke(main, ["dest", "add", "disk", "--provider", "local", "--option", f"root={root}"], env=env)
    assert added.exit_code == 0, added.output
    result = runner.invoke(main, ["sweep", "disk"], env=env)
    assert result.exit_code == 0, result.output
    assert "removed M31/.frame.fits.ocs-transfer-partial-0123456789ab" in result.output
    assert not old.exists() and real.exists() and young.exists()
    result = runner.invoke(main, ["sweep", "disk", "--older-than", "0"], env=env)
    assert result.exit_code == 0 and not young.exists() and real.read_bytes() == b"kept"


def test_worker_periodic_pass_sweeps(tmp_path: Path) -> None:
    root = tmp_path / "dest"
    real, old, young = _leftovers(root)
    settings = Settings(ledger_url=f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    ledger = Ledger.from_settings(settings)
    try:
        destinations = Destinations(ledger, None, settings=settings)
        destinations.add("disk", "local", options={"root": str(root)})
        engine = Engine(ledger, destinations, settings=settings)
        engine.periodic()
        assert not old.exists() and real.exists() and young.exists()
    finally:
        ledger.close()
