"""The file server's answers to bad or impossible requests (issue 11, point
12): 507 for a full disk (the client classes it as quota: never retried),
4xx with a reason for a cut chunked upload, `DELETE /` and names over 255
bytes. Never a 500, never a partial file left."""

from __future__ import annotations

import http.client
import io
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ocs_transfer_local.webdav import WebdavStore

from ocs_transfer.exceptions import QuotaExceededError
from ocs_transfer.retry import Kind, classify

from .conftest import RunningServer, running_file_server


def _request(server: RunningServer, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=server.auth)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system (tmpfs): writing more fails with ENOSPC."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_is_507_and_quota_on_the_client(small_disk: Path) -> None:
    with running_file_server(small_disk) as server:
        status, body = _request(server, "PUT", "/night/big.fits", b"x" * (2 * 1024 * 1024))
        assert status == 507, body
        assert "no space left" in body
        assert _files(small_disk) == []  # the temporary is gone
        store = WebdavStore.from_config(WebdavStore.Config(url=server.url, verify_by_reread=False),
                                        {"token": server.token})  # fmt: skip
        with store, pytest.raises(QuotaExceededError) as caught:
            store.put(io.BytesIO(b"y" * (2 * 1024 * 1024)), "night/big2.fits")
        assert classify(caught.value).kind is Kind.NEVER
        assert _files(small_disk) == []
        # the server still works for what fits
        assert _request(server, "PUT", "/night/small.fits", b"z" * 1000)[0] == 201


def test_cut_chunked_upload_is_a_400_with_a_reason(file_server: RunningServer) -> None:
    sock = socket.create_connection(("127.0.0.1", file_server.server.port), timeout=10)
    try:
        sock.sendall(f"PUT /night/cut.fits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {file_server.token}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n400\r\n".encode() + b"a" * 100)  # fmt: skip
        sock.shutdown(socket.SHUT_WR)  # the client goes away mid-chunk
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    finally:
        sock.close()
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 400"), reply[:300]
    assert b"cut short" in reply
    assert _files(file_server.root) == []


def test_delete_of_the_root_is_refused(file_server: RunningServer) -> None:
    assert _request(file_server, "PUT", "/night/keep.fits", b"k" * 10)[0] == 201
    status, body = _request(file_server, "DELETE", "/")
    assert status == 403 and "root" in json.loads(body)["error"]
    assert _files(file_server.root) == ["night/keep.fits"]


def test_names_over_255_bytes(file_server: RunningServer) -> None:
    longest = "é" * 127 + "a"  # 255 bytes in UTF-8
    assert _request(file_server, "PUT", "/night/" + _q(longest), b"ok")[0] == 201
    for name in ("é" * 128, "a" * 256, "b" * 300 + ".fits"):
        status, body = _request(file_server, "PUT", "/night/" + _q(name), b"no")
        assert status == 400 and "255 bytes" in json.loads(body)["error"], body
        assert _request(file_server, "PUT", "/" + _q(name) + "/x.fits", b"no")[0] == 400
    assert _files(file_server.root) == [f"night/{longest}"]


def _q(name: str) -> str:
    from urllib.parse import quote

    return quote(name)
