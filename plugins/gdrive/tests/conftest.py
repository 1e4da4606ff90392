"""Fixtures: a fake Drive per test (tests/fake_drive.py) and stores and
filesystems pointed at it."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_drive import FakeDrive  # noqa: E402
from ocs_transfer_gdrive.drivefs import DriveFileSystem  # noqa: E402
from ocs_transfer_gdrive.store import GdriveStore  # noqa: E402

MiB = 1 << 20


@pytest.fixture(autouse=True)
def _no_trust_boundary_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """google-auth would look up a trust boundary at an IAM host after a service account token fetch."""
    monkeypatch.setenv("GOOGLE_AUTH_TRUST_BOUNDARY_ENABLED", "false")


@pytest.fixture
def drive() -> Iterator[FakeDrive]:
    with FakeDrive() as fake:
        yield fake


class Sleeps(list[float]):
    """A sleep that records instead of waiting (the fake's Retry-After is honoured by value)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_fs(drive: FakeDrive, sleeps: Sleeps | None = None, **kw: Any) -> DriveFileSystem:
    options: dict[str, Any] = {"chunk_size": MiB, "multipart_threshold": 512 * 1024, **kw}
    creds = options.pop("creds", None) or drive.credentials()
    return DriveFileSystem(**creds, api_url=drive.url, token_url=drive.token_url, skip_instance_cache=True,
                           sleep=sleeps if sleeps is not None else (lambda s: None), **options)  # fmt: skip


@pytest.fixture
def fs(drive: FakeDrive, sleeps: Sleeps) -> Iterator[DriveFileSystem]:
    filesystem = make_fs(drive, sleeps)
    yield filesystem
    filesystem.close()


def make_store(drive: FakeDrive, creds: dict[str, str] | None = None, *, sleeps: Sleeps | None = None,
               **options: Any) -> GdriveStore:  # fmt: skip
    from ocs_transfer.settings import Settings

    options.setdefault("root", f"t-{uuid.uuid4().hex[:8]}")
    config = GdriveStore.Config(api_url=drive.url, token_url=drive.token_url, **options)
    store = GdriveStore.from_config(config, creds or drive.credentials(), settings=Settings(chunk_size=MiB))
    if sleeps is not None:
        store.fs._sleep = sleeps
    return store
