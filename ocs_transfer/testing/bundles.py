"""Checks for bundles (zip archives made by :mod:`ocs_transfer.storage.bundle`)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["assert_bundle_holds", "local_tree"]


def local_tree(root: Path, files: Mapping[str, bytes]) -> dict[str, bytes]:
    """Write ``files`` (relative paths) under ``root``; returns them."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return dict(files)


def assert_bundle_holds(archive: bytes, expected: Mapping[str, bytes]) -> None:
    """The archive's members are exactly ``expected`` (name -> bytes), byte
    for byte, their CRCs check out with Python's zipfile, and, where Info-ZIP's
    ``unzip`` is installed, it extracts the same bytes."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.testzip() is None, "a member's CRC-32 does not match"
        assert sorted(zf.namelist()) == sorted(expected), "the bundle holds other members"
        for name, data in expected.items():
            assert zf.read(name) == data, f"member {name!r} differs"
    unzip = shutil.which("unzip")
    if unzip is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bundle.zip"
        path.write_bytes(archive)
        out = Path(tmp) / "out"
        done = subprocess.run([unzip, "-q", str(path), "-d", str(out)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        for name, data in expected.items():
            assert (out / name).read_bytes() == data, f"unzip extracted other bytes for {name!r}"
