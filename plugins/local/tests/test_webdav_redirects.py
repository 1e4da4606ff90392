"""The webdav store follows no redirect to another host (issue 11, point 9):
listing (as the engine's clean-up of stale partial uploads does), reading,
uploading and the connection test, against a server that redirects every
request to a second server that records whether anyone came."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from ocs_transfer_local.webdav import WebdavStore

from ocs_transfer.exceptions import OcsTransferError, PermissionDeniedError


class _Server:
    def __init__(self, redirect_to: str | None) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                outer.hits.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if redirect_to is None:
                    body = b"<d:multistatus xmlns:d='DAV:'/>"
                    self.send_response(207)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(307)
                self.send_header("Location", redirect_to + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_PUT = do_PROPFIND = do_MKCOL = do_MOVE = do_DELETE = do_HEAD = do_OPTIONS = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    elsewhere = _Server(None)
    redirecting = _Server(elsewhere.url.replace("127.0.0.1", "localhost"))
    yield redirecting, elsewhere
    redirecting.close()
    elsewhere.close()


def _store(url: str) -> WebdavStore:
    config = WebdavStore.Config(url=url + "/dav", connect_timeout=3, read_timeout=3, verify_by_reread=False)
    return WebdavStore.from_config(config, {"token": "a-token-for-the-first-server"})


def test_listing_does_not_follow_a_redirect_elsewhere(servers: tuple[_Server, _Server]) -> None:
    redirecting, elsewhere = servers
    with _store(redirecting.url) as store:
        with pytest.raises(PermissionDeniedError, match="redirected to another host"):
            store.fs.ls(store._full("night"), detail=False)  # what the engine's partial clean-up does
        list(store.list("night"))  # fsspec's exists() reads the refusal as "nothing there"; nothing went elsewhere
        with pytest.raises(OcsTransferError):
            store.open("night/a.fits").read()
        with pytest.raises(OcsTransferError):
            store.put(io.BytesIO(b"data" * 100), "night/a.fits")
        assert not store.test_connection().ok
    assert redirecting.hits, "the store never asked the first server"
    assert elsewhere.hits == []


def test_same_origin_still_works(servers: tuple[_Server, _Server]) -> None:
    """The guard does not refuse the configured server itself."""
    _, plain = servers
    with _store(plain.url) as store:
        assert store.fs.ls(store._full("night"), detail=False) == []
    assert plain.hits
