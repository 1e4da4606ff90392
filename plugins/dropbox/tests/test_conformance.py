"""The shipped conformance suite, on the fake Dropbox API through the SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dropbox_helpers import credentials, make_store
from fake_dropbox import FakeDropbox

from ocs_transfer.testing import StoreTests

MiB = 1 << 20


class TestDropboxOnFake(StoreTests):
    @pytest.fixture
    def store(self, fake: FakeDropbox) -> Iterator[Any]:
        with make_store(fake, chunk_size=4 * MiB) as store:
            yield store

    @pytest.fixture
    def links_fetchable(self) -> bool:
        return True

    @pytest.fixture
    def raw_listing(self, fake: FakeDropbox) -> Callable[[], list[str]]:
        return lambda: [name.removeprefix("/fits-data/") for name in fake.names()]

    @pytest.fixture
    def large_file_size(self) -> int:
        return 40 * MiB

    @pytest.fixture
    def bad_credentials_store(self, fake: FakeDropbox) -> Iterator[Any]:
        with make_store(fake, credentials=credentials(fake, refresh_token="refresh-token-revoked")) as store:
            yield store

    @pytest.fixture
    def drop_connections(self, fake: FakeDropbox) -> Callable[[], None]:
        def drop() -> None:
            fake.inject("*", "drop")

        return drop
