"""Helpers of the gdrive tests: stores and filesystems pointed at a fake Drive."""

from __future__ import annotations

import uuid
from typing import Any

from fake_drive import FakeDrive
from ocs_transfer_gdrive.drivefs import DriveFileSystem
from ocs_transfer_gdrive.store import GdriveStore

MiB = 1 << 20


class Sleeps(list[float]):
    """A sleep that records instead of waiting (the fake's Retry-After is honoured by value)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_fs(drive: FakeDrive, sleeps: Sleeps | None = None, **kw: Any) -> DriveFileSystem:
    options: dict[str, Any] = {"chunk_size": MiB, "multipart_threshold": 512 * 1024, **kw}
    creds = options.pop("creds", None) or drive.credentials()
    return DriveFileSystem(**creds, api_url=drive.url, token_url=drive.token_url, skip_instance_cache=True,
                           sleep=sleeps if sleeps is not None else (lambda s: None), **options)  # fmt: skip


def make_store(drive: FakeDrive, creds: dict[str, str] | None = None, *, sleeps: Sleeps | None = None,
               **options: Any) -> GdriveStore:  # fmt: skip
    from ocs_transfer.settings import Settings

    options.setdefault("root", f"t-{uuid.uuid4().hex[:8]}")
    config = GdriveStore.Config(api_url=drive.url, token_url=drive.token_url, **options)
    store = GdriveStore.from_config(config, creds or drive.credentials(), settings=Settings(chunk_size=MiB))
    if sleeps is not None:
        store.fs._sleep = sleeps
    return store
