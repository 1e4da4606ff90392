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


def test_dead_uploads_temporaries_are_swept_at_start(tmp_path: Path) -> None:
    """A server killed mid-upload leaves `.NAME.RANDOM.ocs-server-partial`
    files; the next start removes those older than the age limit, and only
    those (never a young one, which may be another instance's live upload,
    nor a file that merely looks alike, nor anything through a symlink)."""
    import os
    import time

    from ocs_transfer_local.server import sweep_partials

    night = tmp_path / "night"
    night.mkdir()
    old = [night / ".a.fits.x1y2.ocs-server-partial", tmp_path / ".b.fits.z3.ocs-server-partial"]
    young = night / ".c.fits.q9.ocs-server-partial"
    kept = [night / "a.fits", night / "ocs-server-partial.txt"]
    for path in (*old, young, *kept):
        path.write_bytes(b"x")
    day_ago = time.time() - 24 * 3600
    for path in (*old, *kept):
        os.utime(path, (day_ago, day_ago))
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / ".d.fits.r.ocs-server-partial").write_bytes(b"x")
    os.utime(outside / ".d.fits.r.ocs-server-partial", (day_ago, day_ago))
    (night / "link").symlink_to(outside, target_is_directory=True)
    with running_file_server(tmp_path) as server:
        deadline = time.monotonic() + 10
        while any(p.exists() for p in old) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(p.exists() for p in old)
        assert young.exists() and all(p.exists() for p in kept)
        assert (outside / ".d.fits.r.ocs-server-partial").exists()
        assert _request(server, "PUT", "/night/new.fits", b"n")[0] == 201
    assert sweep_partials(str(tmp_path), 0.0) == [str(young)]  # age 0: every temporary goes
