"""Fixtures for the local plugin's tests: a file server started in-process on
127.0.0.1 (a free port, a background thread) over a temporary root."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from ocs_transfer_local.server import FileServer, ServerConfig

from ocs_transfer import plugins
from ocs_transfer.redact import Secret


@attrs.frozen
class RunningServer:
    server: FileServer
    root: Path
    token: str
    signing_key: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[RunningServer]:
    root = tmp_path / "served"
    root.mkdir()
    token, key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    config = ServerConfig(root=root, port=0, tokens=(Secret(token),), signing_key=Secret(key), threads=8,
                          socket_timeout=10)
    with FileServer(config) as server:
        yield RunningServer(server, root, token, key)


@pytest.fixture
def local_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The plugin manager with the installed plugins (this one included)."""
    monkeypatch.delenv("OCS_TRANSFER_DISABLE_ENTRYPOINTS", raising=False)
    plugins.reset()
    yield
    plugins.reset()


@attrs.frozen
class PlainDav:
    """Stock WsgiDAV (no atomic uploads, no checksum header) with HTTP Basic
    auth: stands in for "any WebDAV server"."""

    url: str
    root: Path
    username: str
    password: str


@pytest.fixture
def plain_dav(tmp_path: Path) -> Iterator[PlainDav]:
    from cheroot import wsgi
    from wsgidav.fs_dav_provider import FilesystemProvider
    from wsgidav.wsgidav_app import WsgiDAVApp

    root = tmp_path / "plain"
    root.mkdir()
    password = secrets.token_urlsafe(16)
    app = WsgiDAVApp({
        "provider_mapping": {"/": FilesystemProvider(str(root), fs_opts={})},
        "simple_dc": {"user_mapping": {"*": {"observer": {"password": password}}}},
        "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
        "verbose": 1,
        "logging": {"enable": False},
    })
    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=4, timeout=10)
    server.expiration_interval = 0.1
    server.prepare()
    import threading

    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield PlainDav(f"http://127.0.0.1:{server.bind_addr[1]}", root, "observer", password)
    finally:
        server.stop()
        thread.join(10)
