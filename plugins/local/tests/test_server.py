"""The self-hosted file server, driven over real HTTP by httpx and raw sockets."""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from local_server_helpers import HOSTILE, auth_header, client, no_partials, pattern, raw_request
from ocs_transfer_local.server import ServerConfig, load_secrets
from ocs_transfer_local.signing import signed_url

from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.redact import Secret


def test_health_needs_no_token(file_server) -> None:
    response = httpx.get(file_server.url + "/_health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": "Basic !!"}]
)
def test_requests_without_a_valid_token_are_refused(file_server, headers) -> None:
    response = httpx.put(file_server.url + "/x.txt", content=b"data", headers=headers, timeout=5)
    assert response.status_code == 401
    assert "Bearer" in response.headers.get_list("WWW-Authenticate")[0]
    assert not (file_server.root / "x.txt").exists()


def test_basic_auth_with_the_token_as_password(file_server) -> None:
    with httpx.Client(base_url=file_server.url, auth=("anyone", file_server.token), timeout=5) as c:
        assert c.put("/basic.txt", content=b"via basic").status_code == 201
        assert c.get("/basic.txt").content == b"via basic"


def test_put_creates_parents_and_round_trips_a_hostile_name(file_server) -> None:
    data = pattern(3 * 1024 * 1024 + 17)
    with client(file_server) as c:
        response = c.put("/" + quote(HOSTILE), content=data)
        assert response.status_code == 201, response.text
        assert response.headers["X-OCS-Transfer-SHA256"] == hashlib.sha256(data).hexdigest()
        got = c.get("/" + quote(HOSTILE))
        assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(data).hexdigest()
        listing = c.request("PROPFIND", "/" + quote(HOSTILE.rsplit("/", 1)[0]) + "/", headers={"Depth": "1"})
        assert listing.status_code == 207
        assert "z.txt" in listing.text
    on_disk = file_server.root.joinpath(*HOSTILE.split("/"))
    assert on_disk.read_bytes() == data
    assert no_partials(file_server.root) == []


def test_overwrite_replaces_whole_file(file_server) -> None:
    with client(file_server) as c:
        assert c.put("/f.bin", content=b"old contents").status_code == 201
        assert c.put("/f.bin", content=b"new").status_code == 204
        assert c.get("/f.bin").content == b"new"


def test_cut_short_upload_leaves_nothing_and_keeps_the_old_file(file_server) -> None:
    (file_server.root / "keep.bin").write_bytes(b"the previous version")
    parts = urlsplit(file_server.url)
    for name in ("keep.bin", "new.bin"):
        head = (f"PUT /{name} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n").encode() + auth_header(file_server)
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(head + b"\r\n" + b"only a little")
            sock.shutdown(socket.SHUT_WR)  # the client goes away mid-body
            # Wait until the server has finished with the request (it closes the
            # connection after its handler returned), so the check below cannot
            # run before the server had a chance to create or remove anything.
            while sock.recv(65536):
                pass
    assert (file_server.root / "keep.bin").read_bytes() == b"the previous version"
    assert not (file_server.root / "new.bin").exists()
    assert no_partials(file_server.root) == []


def test_upload_in_progress_is_invisible(file_server) -> None:
    parts = urlsplit(file_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"PUT /slow.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n" + auth_header(file_server)
                     + b"\r\n" + pattern(1_000_000))
        deadline = time.monotonic() + 10
        while not no_partials(file_server.root) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert no_partials(file_server.root), "the server should be writing a temporary file"
        assert not (file_server.root / "slow.bin").exists()
        with client(file_server) as c:
            listing = c.request("PROPFIND", "/", headers={"Depth": "1"})
            assert "ocs-server-partial" not in listing.text and "slow.bin" not in listing.text
            # the temporary name cannot be reached directly either
            temp = no_partials(file_server.root)[0]
            assert c.get("/" + quote(Path(temp).name)).status_code == 403
        sock.sendall(pattern(2_000_000)[1_000_000:])
        assert b" 201 " in sock.makefile("rb").readline()
    assert (file_server.root / "slow.bin").read_bytes() == pattern(2_000_000)
    assert no_partials(file_server.root) == []


def test_move_and_copy_publish_whole_files(file_server) -> None:
    with client(file_server) as c:
        c.put("/a/src.bin", content=b"payload")
        c.put("/b/dst.bin", content=b"old")
        moved = c.request("MOVE", "/a/src.bin", headers={"Destination": file_server.url + "/b/dst.bin",
                                                         "Overwrite": "T"})
        assert moved.status_code in (201, 204)
        assert c.get("/b/dst.bin").content == b"payload"
        assert c.get("/a/src.bin").status_code == 404
        copied = c.request("COPY", "/b/dst.bin", headers={"Destination": file_server.url + "/a/copy.bin"})
        assert copied.status_code in (201, 204)
        assert (file_server.root / "a" / "copy.bin").read_bytes() == b"payload"
    assert no_partials(file_server.root) == []


@pytest.mark.parametrize(
    "target",
    [
        "/../etc/passwd",
        "/a/../../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/a/%2E%2E/%2e%2e/etc/passwd",
        "/a/./b",
        "/x%00y",
        "/..%5cx",
        "/a%01b",
        "/_signed/../../etc/passwd",
    ],
)
def test_traversal_is_refused(file_server, target: str) -> None:
    (file_server.root / "a").mkdir()
    for method in ("GET", "PUT"):
        head = f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n".encode() + auth_header(file_server)
        status = raw_request(file_server.url, head, b"abc")
        assert status in (400, 403, 404), (method, target, status)
    assert sorted(p.name for p in file_server.root.rglob("*")) == ["a"]


def test_symlinks_leaving_the_root_are_refused(file_server, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    (file_server.root / "escape").symlink_to(outside)
    (file_server.root / "file-link").symlink_to(outside / "secret.txt")
    with client(file_server) as c:
        assert c.get("/escape/secret.txt").status_code == 403
        assert c.get("/file-link").status_code == 403
        assert c.put("/escape/new.txt", content=b"x").status_code == 403
        assert c.put("/escape/deeper/new.txt", content=b"x").status_code in (403, 409)
        assert "secret.txt" not in c.request("PROPFIND", "/", headers={"Depth": "infinity"}).text
    link = signed_url(file_server.url, Secret(file_server.signing_key), "escape/secret.txt", timedelta(minutes=5))
    assert httpx.get(link, timeout=5).status_code in (403, 404)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_signed_links(file_server) -> None:
    data = pattern(100_000)
    name = "links/ümlaut & space.fits"
    with client(file_server) as c:
        assert c.put("/" + quote(name), content=data).status_code == 201
    key = Secret(file_server.signing_key)
    link = signed_url(file_server.url, key, name, timedelta(minutes=5))
    response = httpx.get(link, timeout=5)
    assert response.status_code == 200 and response.content == data
    ranged = httpx.get(link, headers={"Range": "bytes=10-19"}, timeout=5)
    assert ranged.status_code == 206 and ranged.content == data[10:20]
    assert httpx.head(link, timeout=5).status_code == 200
    # tampered, expired, wrong key, other path, a directory, a write
    assert httpx.get(link.replace("sig=", "sig=0"), timeout=5).status_code == 403
    expired = signed_url(file_server.url, key, name, timedelta(seconds=-1))
    assert httpx.get(expired, timeout=5).status_code == 403
    forged = signed_url(file_server.url, Secret("x" * 32), name, timedelta(minutes=5))
    assert httpx.get(forged, timeout=5).status_code == 403
    other = link.replace(quote("space.fits"), quote("other.fits"))
    assert httpx.get(other, timeout=5).status_code == 403
    folder = signed_url(file_server.url, key, "links", timedelta(minutes=5))
    assert httpx.get(folder, timeout=5).status_code == 404
    assert httpx.put(link, content=b"overwrite", timeout=5).status_code == 405
    assert (file_server.root / name).read_bytes() == data


def test_tokens_and_signatures_never_logged(file_server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    link = signed_url(file_server.url, Secret(file_server.signing_key), "f.txt", timedelta(minutes=5))
    with client(file_server) as c:
        c.put("/f.txt", content=b"x")
        c.request("PROPFIND", "/", headers={"Depth": "1"})
    httpx.get(link, timeout=5)
    httpx.get(file_server.url + "/f.txt", headers={"Authorization": "Bearer " + file_server.token + "x"}, timeout=5)
    # the client libraries log their own URLs; everything server-side must be clean
    server_side = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert "PUT /f.txt 201" in server_side
    sig = link.rsplit("sig=", 1)[1]
    for secret in (file_server.token, file_server.signing_key, sig):
        assert secret not in server_side


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="at least one access token"):
        ServerConfig(root=tmp_path, tokens=())
    with pytest.raises(ConfigurationError, match="at least 16 characters"):
        ServerConfig(root=tmp_path, tokens=(Secret("short"),))
    with pytest.raises(ConfigurationError, match="not an existing directory"):
        ServerConfig(root=tmp_path / "missing", tokens=(Secret("t" * 20),))
    config = ServerConfig(root=tmp_path, tokens=(Secret("t" * 20),), signing_key=Secret("k" * 20))
    assert "t" * 20 not in repr(config) and "k" * 20 not in repr(config)


def test_load_secrets(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# site tokens\n\nfirst-token-aaaaaaaa\n  second-token-bbbbbbb  \n")
    got = load_secrets(path, "third-token-cccccccc, ")
    assert [s.reveal() for s in got] == ["first-token-aaaaaaaa", "second-token-bbbbbbb", "third-token-cccccccc"]
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_secrets(tmp_path / "missing")
