"""Short commands import only what they use (issue 16: start-up time).

Each command runs in a fresh interpreter, with every installed plugin, and
reports ``sys.modules`` when it ends: what it imported, not how long it took
(benchmarks/startup.py times it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ocs_transfer import plugins

PROBE = r"""
import json, sys
from ocs_transfer.cli import main
try:
    main(sys.argv[2:], prog_name="ocs-transfer")
    code = 0
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as fp:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fp)
"""

#: Imported by none of the short commands: astropy's coordinates and WCS (the
#: footprint of a plain header needs neither), the TLS and HTTP stack (only the
#: proposal-tag lookup talks HTTP), importlib.metadata (entry points are read
#: without it).
HEAVY = ("astropy", "numpy", "ssl", "http.client", "urllib.request", "importlib.metadata", "email")


def _run(tmp_path: Path, *argv: str) -> dict[str, Any]:
    report = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if k != "OCS_TRANSFER_DISABLE_ENTRYPOINTS"}  # every plugin
    done = subprocess.run([sys.executable, "-c", PROBE, str(report), *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    result: dict[str, Any] = json.loads(report.read_text())
    assert result["code"] == 0, done.stderr
    result["stdout"] = done.stdout
    return result


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m in HEAVY or m.split(".")[0] in ("astropy", "numpy")]


@pytest.fixture
def command_modules(all_plugins: None) -> dict[str, str]:
    """Command name -> the module it is defined in, for every installed
    command but those defined beside the ``ocs-transfer`` group itself."""
    modules = {name: plugins.get_command(name).callback.__module__ for name in plugins.command_names()}
    return {name: module for name, module in modules.items() if module != "ocs_transfer.cli"}


def test_inspect_imports_no_astropy_and_no_other_command(tmp_path: Path, examples_dir: Path,
                                                         command_modules: dict[str, str]) -> None:
    fz = examples_dir / "coj1m011-kb05-20150219-0125-e90.fits.fz"
    result = _run(tmp_path, "inspect", "--json", str(fz))
    info = json.loads(result["stdout"])[0]
    assert info["footprint"]["type"] == "Polygon"  # the footprint was computed, without astropy
    assert _heavy(result["modules"]) == []
    others = {m for name, m in command_modules.items() if name != "inspect"}
    assert sorted(others & set(result["modules"])) == []


def test_send_imports_no_network_stack_and_no_other_command(tmp_path: Path, examples_dir: Path,
                                                            command_modules: dict[str, str]) -> None:
    source = tmp_path / "coj1m011-kb05-20150219-0125-e90.fits"
    source.write_bytes((examples_dir / source.name).read_bytes())
    result = _run(tmp_path, "send", str(source), "--to", str(tmp_path / "out"), "--layout", "flat",
                  "--no-progress", "--json")
    sent = json.loads(result["stdout"])[0]
    assert sent["ok"] and (tmp_path / "out" / sent["path"]).read_bytes() == source.read_bytes()
    assert _heavy(result["modules"]) == []
    # send reads metadata options with the inspect module's parser; every other command stays unimported
    others = {m for name, m in command_modules.items() if name not in ("send", "inspect")}
    assert sorted(others & set(result["modules"])) == []


def test_plugin_commands_are_listed_without_being_imported(tmp_path: Path, command_modules: dict[str, str]) -> None:
    """``plugins`` lists every command (its table needs their names only)."""
    result = _run(tmp_path, "plugins", "--json")
    listed = {c for p in json.loads(result["stdout"]) for c in p.get("commands", ())}
    assert set(command_modules) <= listed
    assert sorted({m for name, m in command_modules.items() if name != "plugins"} & set(result["modules"])) == []
