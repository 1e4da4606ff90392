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
