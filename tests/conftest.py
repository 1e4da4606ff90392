"""Shared fixtures for the core tests.

Core tests see only the built-in plugins: installed plugin packages (the local
plugin, third-party ones) are loaded only by tests that ask for them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocs_transfer import plugins

from .reference_libs import OCS_ARCHIVE_05, Reference, reference_venv

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "data"


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    """The real LCO example files shipped in the repo (read-only)."""
    return EXAMPLES


@pytest.fixture
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The plugin manager with only the core's built-in plugins."""
    monkeypatch.setenv("OCS_TRANSFER_DISABLE_ENTRYPOINTS", "1")
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def all_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The plugin manager with every installed plugin loaded."""
    monkeypatch.delenv("OCS_TRANSFER_DISABLE_ENTRYPOINTS", raising=False)
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture(autouse=True)
def _own_memory_filesystem(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test its own ``memory://`` file system: fsspec's memory
    instances share one class-level store, so one test's leftovers could
    fail or hide another's (the same root name in two tests, a root cut to
    40 characters, a failed clean-up)."""
    from fsspec.implementations.memory import MemoryFileSystem

    from ocs_transfer.storage.memoryfs import IndexedMemoryFileSystem

    store, folders = IndexedMemoryFileSystem.empty_state()  # indexed, as the memory provider makes them
    monkeypatch.setattr(MemoryFileSystem, "store", store)
    monkeypatch.setattr(MemoryFileSystem, "pseudo_dirs", folders)


#: How code written for ocs_archive 0.5 changes when it moves to ocs_transfer: its imports, nothing else.
OCS_ARCHIVE_IMPORTS = (
    ("from ocs_archive.settings import settings", "from ocs_transfer import settings"),
    ("ocs_archive.settings.settings", "ocs_transfer.settings"),
    ("ocs_archive.storage.filestorefactory", "ocs_transfer.storage.compat"),
    ("ocs_archive.storage.filestore", "ocs_transfer.storage.compat"),
    ("ocs_archive.storage.s3store", "ocs_transfer.storage.compat"),
    ("ocs_archive.storage.filesystemstore", "ocs_transfer.storage.compat"),
    ("ocs_archive.", "ocs_transfer."),
)


@pytest.fixture(scope="session")
def ocs_archive_05() -> Reference:
    """ocs_archive 0.5.0 in its own virtual environment (built once per machine),
    and the same scripts run with ocs_transfer after their imports change."""
    try:
        python = reference_venv("ocs-archive-0.5.0", OCS_ARCHIVE_05) / "bin" / "python"
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"the ocs_archive 0.5.0 reference environment could not be built: {exc}")
    return Reference(python, OCS_ARCHIVE_IMPORTS)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
