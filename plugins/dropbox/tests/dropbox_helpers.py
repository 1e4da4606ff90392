"""Stores talking to the fake Dropbox API through the real SDK (a module
name of its own: every plugin's tests have a ``conftest``)."""

from __future__ import annotations

from typing import Any

from fake_dropbox import FakeDropbox

from ocs_transfer.storage import get_store

MiB = 1 << 20


def credentials(fake: FakeDropbox, **override: str) -> dict[str, str]:
    creds = {"app_key": fake.app_key, "app_secret": fake.app_secret, "refresh_token": fake.refresh_token}
    creds.update(override)
    return creds


def make_store(fake: FakeDropbox, root: str = "/fits-data", **options: Any) -> Any:
    creds = options.pop("credentials", None) or credentials(fake)
    store = get_store("dropbox", credentials=creds, root=root, api_url=fake.url, content_url=fake.url, **options)
    store.sleep = lambda seconds: None  # Retry-After waits are not the subject of these tests
    return store
