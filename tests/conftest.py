"""Shared fixtures for the core tests.

Core tests see only the built-in plugins: installed plugin packages (the local
plugin, third-party ones) are loaded only by tests that ask for them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocs_transfer import plugins

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

    monkeypatch.setattr(MemoryFileSystem, "store", {})
    monkeypatch.setattr(MemoryFileSystem, "pseudo_dirs", [""])


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
