"""The template provider runs the whole conformance suite, as every provider must."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocs_transfer.storage import FileStore, get_store
from ocs_transfer.testing import StoreTests


class TestTemplateProvider(StoreTests):
    @pytest.fixture
    def root(self, tmp_path: Path) -> Path:
        return tmp_path / "store"

    @pytest.fixture
    def store(self, root: Path) -> Iterator[FileStore]:
        with get_store("template-dir", root=str(root)) as store:
            yield store

    @pytest.fixture
    def supports_links(self) -> bool:
        return False

    @pytest.fixture
    def raw_listing(self, root: Path) -> Callable[[], list[str]]:
        def listing() -> list[str]:
            return sorted(
                os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
            )

        return listing

    @pytest.fixture
    def large_file_size(self) -> int:
        return 24 << 20


def test_url_and_typed_options(tmp_path: Path) -> None:
    store = get_store(f"template-dir://{tmp_path}/by-url")
    assert (tmp_path / "by-url").is_dir()
    with pytest.raises(ValueError, match="create_root"):
        get_store("template-dir", root=str(tmp_path / "missing"), create_root="false")
    store.close()
