"""The conformance suite (``ocs_transfer.testing.StoreTests``) on ``local``,
on ``webdav`` against our file server, and on ``webdav`` against stock
WsgiDAV; fsspec's abstract suite does not apply (we wrap no filesystem of our
own: the stores use fsspec's LocalFileSystem and webdav4's filesystem)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ocs_transfer_local.local import LocalStore
from ocs_transfer_local.webdav import WebdavStore

from ocs_transfer.testing import HOSTILE_NAMES, StoreTests

STOCK_MOVE_BUG = (
    "stock WsgiDAV 4.4 decodes a MOVE's Destination before splitting off '?query' and ';params', so such"
    " names land elsewhere (a server bug; our file server handles MOVE itself)"
)


def walk(root: Path) -> Callable[[], list[str]]:
    """Every file under ``root`` (hidden temporaries included). An aborted
    PUT's server-side temporary is removed when the server notices the abort,
    a moment after the client gave up: wait for that."""
    import time

    def listing() -> list[str]:
        deadline = time.monotonic() + 10
        while True:
            names = sorted(
                os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
            ) if root.exists() else []
            if not any(n.endswith(".ocs-server-partial") for n in names) or time.monotonic() > deadline:
                return names
            time.sleep(0.05)

    return listing


class TestLocal(StoreTests):
    @pytest.fixture
    def local_root(self, tmp_path: Path) -> Path:
        root = tmp_path / "archive"
        root.mkdir()
        return root

    @pytest.fixture
    def store(self, local_root: Path) -> Iterator[LocalStore]:
        with LocalStore.from_config(LocalStore.Config(root=str(local_root), link_base_url="https://x.invalid/")) as s:
            yield s

    @pytest.fixture
    def raw_listing(self, local_root: Path) -> Callable[[], list[str]]:
        return walk(local_root)


class TestLocalWithSignedLinks(TestLocal):
    """A directory the file server serves: links are signed and downloadable."""

    @pytest.fixture
    def local_root(self, file_server) -> Path:
        return file_server.root

    @pytest.fixture
    def store(self, local_root: Path, file_server) -> Iterator[LocalStore]:
        config = LocalStore.Config(root=str(local_root), server_url=file_server.url)
        with LocalStore.from_config(config, {"signing_key": file_server.signing_key}) as s:
            yield s

    @pytest.fixture
    def links_fetchable(self) -> bool:
        return True


class TestWebdavOnOurServer(StoreTests):
    @pytest.fixture
    def store(self, file_server) -> Iterator[WebdavStore]:
        config = WebdavStore.Config(url=file_server.url + "/dest")
        with WebdavStore.from_config(config, {"token": file_server.token, "signing_key": file_server.signing_key}) as s:
            yield s

    @pytest.fixture
    def raw_listing(self, file_server) -> Callable[[], list[str]]:
        return walk(file_server.root / "dest")

    @pytest.fixture
    def links_fetchable(self) -> bool:
        return True

    @pytest.fixture
    def large_file_size(self) -> int:
        return 64 * (1 << 20)


class TestWebdavOnStockWsgidav(StoreTests):
    """Any WebDAV server: stock WsgiDAV with Basic auth, no checksum header
    (verification re-reads), no parent creation on PUT."""

    @pytest.fixture
    def store(self, plain_dav) -> Iterator[WebdavStore]:
        config = WebdavStore.Config(url=plain_dav.url, root="dest", username=plain_dav.username,
                                    link_base_url="https://x.invalid/")
        with WebdavStore.from_config(config, {"password": plain_dav.password}) as s:
            yield s

    @pytest.fixture
    def raw_listing(self, plain_dav) -> Callable[[], list[str]]:
        return walk(plain_dav.root / "dest")

    @pytest.fixture
    def large_file_size(self) -> int:
        return 24 * (1 << 20)  # stock WsgiDAV writes in 8 KiB blocks; the store re-reads to verify

    @pytest.mark.parametrize("name", HOSTILE_NAMES)
    def test_hostile_names_round_trip(self, store, name: str) -> None:
        if "?" in name or ";" in name:
            pytest.xfail(STOCK_MOVE_BUG)
        super().test_hostile_names_round_trip(store, name)

    def test_get_url(self, store, supports_links: bool, links_fetchable: bool) -> None:
        pytest.xfail(STOCK_MOVE_BUG)  # the suite's link name contains a question mark
