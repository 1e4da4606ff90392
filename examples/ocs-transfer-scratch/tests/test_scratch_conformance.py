"""The example plugin's tests: the conformance suite every provider passes,
and the plugin as users reach it (installed, by name and URL)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import pytest
from ocs_transfer_scratch import ScratchStore

from ocs_transfer import plugins
from ocs_transfer.storage import get_store
from ocs_transfer.testing import StoreTests

MiB = 1024 * 1024


class TestScratchConformance(StoreTests):
    @pytest.fixture
    def store(self) -> Iterator[ScratchStore]:
        # An isolated, empty store for every test: a fresh root nobody else uses.
        root = f"/scratch-tests/{uuid.uuid4().hex}"
        with ScratchStore.from_config(ScratchStore.Config(root=root)) as store:
            yield store
            if store.fs.exists(root):
                store.fs.rm(root, recursive=True)  # memory is shared by the whole process: give it back

    @pytest.fixture
    def large_file_size(self) -> int:
        return 24 * MiB  # enough to prove streaming; keeps the suite fast

    @pytest.fixture
    def large_file_memory_limit(self, store: ScratchStore, large_file_size: int) -> int:
        # The objects live in memory: storing the large file holds it whole. The
        # default limit (6 chunks, at least 32 MiB) fails any memory-backed
        # provider at the default 160 MiB file: raise it by the file size.
        return large_file_size + 32 * MiB


def test_the_installed_plugin_registers_the_provider() -> None:
    plugins.reset()
    try:
        assert plugins.get_provider("scratch") is ScratchStore
        store = get_store(f"scratch://{uuid.uuid4().hex}")
        assert store.put(io.BytesIO(b"abc"), "a/b.txt").size == 3
        assert "scratch" in {name for info in plugins.list_plugins() for name in info.providers}
    finally:
        plugins.reset()
