"""The conformance suite on the ``local`` provider (ocs-transfer-local)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocs_transfer.testing import StoreTests

local = pytest.importorskip("ocs_transfer_local.local", reason="needs the local plugin (ocs-transfer-local)")


class TestLocalStore(StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[object]:
        config = local.LocalStore.Config(root=str(tmp_path / "root"), link_base_url="https://files.example.org/data/")
        with local.LocalStore.from_config(config) as store:
            yield store

    @pytest.fixture
    def local_root(self, tmp_path: Path) -> Path:
        return tmp_path / "root"

    @pytest.fixture
    def raw_listing(self, local_root: Path) -> Callable[[], list[str]]:
        # Every file in the directory, hidden temporary files included.
        def listing() -> list[str]:
            return sorted(
                os.path.relpath(os.path.join(d, f), local_root) for d, _, files in os.walk(local_root) for f in files
            )

        return listing
