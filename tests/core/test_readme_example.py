"""The README's Python example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_readme_python_example_runs(tmp_path: Path) -> None:
    block = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert block is not None
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FILESTORE_", "FILESYSTEM_"))}
    run = subprocess.run([sys.executable, "-c", block.group(1)], cwd=tmp_path, capture_output=True, text=True,
                         env=env, timeout=120, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    path, size, _md5, _version = run.stdout.splitlines()[0].split()
    stored = tmp_path / "archive" / path
    assert stored.stat().st_size == int(size)
    assert run.stdout.splitlines()[1] == f"https://data.example.org/archive/{path}"


def test_a_link_without_a_base_url_names_the_option(tmp_path: Path) -> None:
    from ocs_transfer.exceptions import ConfigurationError
    from ocs_transfer.storage import get_store

    store = get_store(str(tmp_path / "a"))
    with pytest.raises(ConfigurationError, match="link_base_url"):
        store.get_url("x.fits")
