"""The conformance suite on the ``memory`` provider."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from ocs_transfer.storage import get_store
from ocs_transfer.storage.fsspec_store import FsspecStore
from ocs_transfer.testing import StoreTests


class TestMemoryStore(StoreTests):
    @pytest.fixture
    def store(self, builtin_plugins_only: None) -> Iterator[FsspecStore]:
        store = get_store(f"memory://conformance-{uuid.uuid4().hex}")
        assert isinstance(store, FsspecStore)
        try:
            yield store
        finally:
            store.fs.rm(store.root, recursive=True) if store.fs.exists(store.root) else None

    @pytest.fixture
    def raw_listing(self, store: FsspecStore) -> Callable[[], list[str]]:
        # Everything the memory file system holds under the root, temporary
        # uploads included.
        def listing() -> list[str]:
            if not store.fs.exists(store.root):
                return []
            return sorted(store._rel(p) for p in store.fs.find(store.root))

        return listing

    @pytest.fixture
    def large_file_memory_limit(self, large_file_size: int) -> int:
        # The memory provider holds the object itself (and copies it once when
        # it publishes); everything beyond that must stay small.
        return 2 * large_file_size + 32 * (1 << 20)
