"""The conformance suite on the ``local`` provider (ocs-transfer-local)."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocs_transfer.testing import StoreTests

local = pytest.importorskip("ocs_transfer_local.local", reason="needs the local plugin (ocs-transfer-local)")


@pytest.fixture
def served_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory and the URL of a plain HTTP server (127.0.0.1) serving it,
    as a site's web server would serve an archive disk."""
    root = tmp_path / "root"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class TestLocalStore(StoreTests):
    @pytest.fixture
    def store(self, served_root: tuple[Path, str]) -> Iterator[object]:
        root, url = served_root
        config = local.LocalStore.Config(root=str(root), link_base_url=url)
        with local.LocalStore.from_config(config) as store:
            yield store

    @pytest.fixture
    def links_fetchable(self) -> bool:
        return True  # links are link_base_url + the quoted path, served by the HTTP server above

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
