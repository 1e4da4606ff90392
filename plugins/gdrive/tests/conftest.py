"""Fixtures: a fake Drive per test (fake_drive.py) and a filesystem on it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_drive import FakeDrive
from gdrive_helpers import Sleeps, make_fs
from ocs_transfer_gdrive.drivefs import DriveFileSystem


@pytest.fixture(autouse=True)
def _no_trust_boundary_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """google-auth would look up a trust boundary at an IAM host after a service account token fetch."""
    monkeypatch.setenv("GOOGLE_AUTH_TRUST_BOUNDARY_ENABLED", "false")


@pytest.fixture
def drive() -> Iterator[FakeDrive]:
    with FakeDrive() as fake:
        yield fake


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def fs(drive: FakeDrive, sleeps: Sleeps) -> Iterator[DriveFileSystem]:
    filesystem = make_fs(drive, sleeps)
    yield filesystem
    filesystem.close()
