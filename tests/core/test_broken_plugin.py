"""A plugin with a misspelt hook name: every command still works, and the
user is told which plugin and how to skip it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN = '''
from ocs_transfer.hookspecs import hookimpl


@hookimpl
def ocs_transfer_register_provider(register):  # the hook is ocs_transfer_register_providers
    pass
'''


@pytest.fixture
def broken_on_path(tmp_path: Path) -> Path:
    """A distribution on PYTHONPATH (a module and its .dist-info with an
    ``ocs_transfer`` entry point), seen only by the subprocesses given it."""
    (tmp_path / "ocs_transfer_misspelt.py").write_text(BROKEN)
    info = tmp_path / "ocs_transfer_misspelt-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ocs-transfer-misspelt\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ocs_transfer]\nmisspelt = ocs_transfer_misspelt\n")
    return tmp_path


def _cli(path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OCS_TRANSFER_DISABLE_ENTRYPOINTS"}
    env.update(PYTHONPATH=str(path), **extra)
    exe = Path(sys.executable).with_name("ocs-transfer")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, check=False, timeout=60)


def test_help_and_plugins_work_and_name_the_broken_plugin(broken_on_path: Path) -> None:
    helped = _cli(broken_on_path, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "send" in helped.stdout and "Traceback" not in helped.stderr
    assert "plugin 'misspelt' is broken" in helped.stderr
    assert "ocs_transfer_register_provider" in helped.stderr and "OCS_TRANSFER_BLOCK_PLUGINS=misspelt" in helped.stderr
    listed = _cli(broken_on_path, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    by_name = {p["name"]: p for p in json.loads(listed.stdout)}
    assert "unknown hook" in by_name["misspelt"]["broken"] and "local" in by_name  # the others still load
    blocked = _cli(broken_on_path, "plugins", OCS_TRANSFER_BLOCK_PLUGINS="misspelt")
    assert blocked.returncode == 0 and "misspelt" not in blocked.stdout + blocked.stderr
