"""The fake Dropbox API, and stores talking to it through the real SDK."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_dropbox import FakeDropbox

from ocs_transfer.storage import get_store

MiB = 1 << 20


@pytest.fixture
def fake() -> Iterator[FakeDropbox]:
    server = FakeDropbox().start()
    try:
        yield server
    finally:
        server.stop()


def credentials(fake: FakeDropbox, **override: str) -> dict[str, str]:
    creds = {"app_key": fake.app_key, "app_secret": fake.app_secret, "refresh_token": fake.refresh_token}
    creds.update(override)
    return creds


def make_store(fake: FakeDropbox, root: str = "/fits-data", **options: Any) -> Any:
    creds = options.pop("credentials", None) or credentials(fake)
    store = get_store("dropbox", credentials=creds, root=root, api_url=fake.url, content_url=fake.url, **options)
    store.sleep = lambda seconds: None  # Retry-After waits are not the subject of these tests
    return store


@pytest.fixture
def store(fake: FakeDropbox) -> Iterator[Any]:
    with make_store(fake, chunk_size=4 * MiB) as s:
        yield s
