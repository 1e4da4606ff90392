"""The self-hosted file server under attack (issue 19): missing, wrong and
near-miss tokens on every method; path traversal in every encoding we know
of, through every method, MOVE/COPY destinations and signed links; tampered,
expired and replayed signed links; oversized, malformed and slow uploads;
concurrent uploads to one path. After each attack: nothing outside the root
was read or written, nothing inside changed unless the request was allowed,
no partial file is left, and the server still answers.

Timing probes: the server hashes the offered token and compares the
fixed-length digest with every known token's digest without an early exit
(``_App._authorized``), so the time taken does not depend on how much of the
token was right. Measuring that would be a timed assertion; the test here
checks the behaviour a prober relies on: a token right in all but its last
character, or with the right prefix, gets exactly what no token gets.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import httpx
import pytest
from local_server_helpers import no_partials, pattern, raw_request
from ocs_transfer_local.server import FileServer, ServerConfig
from ocs_transfer_local.signing import signed_url
from ocs_transfer_local.webdav import WebdavStore

from ocs_transfer.exceptions import FinalStorageError
from ocs_transfer.redact import Secret
from ocs_transfer.retry import Kind, classify

LIMIT = 256 * 1024  #: the attacked server's --max-upload-size
CANARY = b"the outside world: never read, never written\n"


@attrs.frozen
class Target:
    server: FileServer
    root: Path
    outside: Path
    token: str
    key: str

    @property
    def url(self) -> str:
        return self.server.url

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.auth(), timeout=10)

    def snapshot(self) -> dict[str, bytes]:
        """Every file under the served root and beside it, with its bytes."""
        base = self.root.parent
        return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}

    def healthy(self) -> bool:
        return httpx.get(self.url + "/_health", timeout=5).status_code == 200


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    root, outside = tmp_path / "served", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "canary.txt").write_bytes(CANARY)
    (root / "docs").mkdir()
    (root / "docs" / "kept.txt").write_bytes(b"kept")
    token, key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    config = ServerConfig(root=root, port=0, tokens=(Secret(token),), signing_key=Secret(key), threads=8,
                          socket_timeout=10, header_timeout=2.0, body_window=1.0, body_min_rate=4096,
                          max_upload_bytes=LIMIT)  # fmt: skip
    with FileServer(config) as server:
        yield Target(server, root, outside, token, key)


def send_raw(url: str, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request byte for byte (the path exactly as given) and return
    the status and the whole response."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    return int(response.split(b" ", 2)[1]), response


# -- tokens --------------------------------------------------------------------------------

METHODS = [
    ("GET", "/docs/kept.txt", {}),
    ("PUT", "/docs/kept.txt", {}),
    ("PUT", "/new/file.txt", {}),
    ("DELETE", "/docs/kept.txt", {}),
    ("MKCOL", "/made", {}),
    ("PROPFIND", "/", {"Depth": "infinity"}),
    ("MOVE", "/docs/kept.txt", {"Destination": "/moved.txt"}),
    ("COPY", "/docs/kept.txt", {"Destination": "/copied.txt"}),
]


def near_misses(token: str) -> list[str]:
    flip = "A" if token[-1] != "A" else "B"
    return [
        token[:-1] + flip,  # right in all but the last character
        flip + token[1:],  # right in all but the first
        token + "x",  # the right token with more after it
        token[:-1],  # a prefix of it
        token.upper() if token.upper() != token else token.lower(),
        " " + token + " x",
    ]


@pytest.mark.parametrize(("method", "path", "headers"), METHODS, ids=[f"{m} {p}" for m, p, _ in METHODS])
def test_no_valid_token_gets_in_by_any_method(target: Target, method: str, path: str, headers: dict[str, str]) -> None:
    before = target.snapshot()
    offered = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Token " + target.token},  # the right token, an unknown scheme
        {"Authorization": "Basic " + "Og=="},  # ":" — empty user and password
        *({"Authorization": f"Bearer {t}"} for t in near_misses(target.token)),
    ]
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    for auth in offered:
        line = "".join(f"Authorization: {v}\r\n" for v in auth.values())
        head = (f"{method} {path}?token={target.token} HTTP/1.1\r\nHost: x\r\n{extra}{line}"
                "Content-Length: 6\r\nConnection: close\r\n")
        status, response = send_raw(target.url, head, b"attack")
        assert status == 401, (method, path, auth, status)
        assert b"kept" not in response.split(b"\r\n\r\n", 1)[1] and CANARY not in response
    assert target.snapshot() == before
    assert target.healthy()


def test_a_near_miss_token_is_refused_exactly_like_no_token(target: Target) -> None:
    """What a timing prober compares: the answer to a token right in all but
    one character is the answer to no token at all, byte for byte (apart
    from the Date header)."""

    def answer(auth: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        response = httpx.get(target.url + "/docs/kept.txt", headers=auth, timeout=10)
        headers = sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")
        return response.status_code, headers, response.content

    nothing = answer({})
    for candidate in near_misses(target.token):
        assert answer({"Authorization": f"Bearer {candidate}"}) == nothing
    assert answer(target.auth())[0] == 200  # the real one does get in


# -- path traversal ----------------------------------------------------------------------------

#: Ways of writing "../outside/canary.txt" (and of reaching past the root otherwise).
TRAVERSALS = [
    "/../outside/canary.txt",
    "/docs/../../outside/canary.txt",
    "/%2e%2e/outside/canary.txt",
    "/%2E%2e/outside/canary.txt",
    "/.%2e/outside/canary.txt",
    "/%2e./outside/canary.txt",
    "/..%2foutside%2fcanary.txt",
    "/%2e%2e%2foutside%2fcanary.txt",
    "/..%5coutside%5ccanary.txt",
    "/..\\outside\\canary.txt",
    "/%252e%252e/outside/canary.txt",  # double-encoded: a literal "%2e%2e" after one decode
    "/%25252e%25252e/outside/canary.txt",
    "/%c0%ae%c0%ae/outside/canary.txt",  # overlong UTF-8 for "."
    "/%e0%80%ae%e0%80%ae/outside/canary.txt",
    "/%c0%af../outside/canary.txt",
    "/..;/outside/canary.txt",
    "/docs/./../../outside/canary.txt",
    "//outside/canary.txt",
    "/%2foutside/canary.txt",
    "/docs/%00/../../outside/canary.txt",
    "/docs/kept.txt%00.png",
    "/\uff0e\uff0e/outside/canary.txt",  # fullwidth dots: a literal name, never ".."
    "/\u2025/outside/canary.txt",  # two-dot leader
    "/_signed/../outside/canary.txt",
    "/_health/../../outside/canary.txt",
]


def _quote_raw(path: str) -> str:
    """The path as bytes on the request line: non-ASCII as UTF-8 percent
    escapes, everything else exactly as written."""
    return "".join(c if ord(c) < 128 else "".join(f"%{b:02X}" for b in c.encode()) for c in path)


#: Spellings that are literal names inside the root once decoded (never ".."): the
#: server may store them as such. cheroot keeps an encoded slash as the three
#: characters "%2F" inside one name, so "..%2fx" is the name "..%2Fx", not a path.
LITERAL = ("%252e", "%25252e", "\uff0e", "\u2025", "..;", "%2f")


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_in_every_encoding_reaches_nothing_outside_the_root(target: Target, path: str) -> None:
    before = target.snapshot()
    auth = f"Authorization: Bearer {target.token}\r\n"
    raw = _quote_raw(path)
    statuses = {}
    for method in ("GET", "HEAD", "PUT", "DELETE", "MKCOL", "PROPFIND"):
        body = b"overwritten!" if method == "PUT" else b""
        head = f"{method} {raw} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {len(body)}\r\nConnection: close\r\n"
        statuses[method], response = send_raw(target.url, head, body)
        assert CANARY not in response, (method, path)
    for method in ("COPY", "MOVE"):
        statuses[method], _ = send_raw(target.url, f"{method} /docs/kept.txt HTTP/1.1\r\nHost: x\r\n{auth}"
                                       f"Destination: {raw}\r\nContent-Length: 0\r\nConnection: close\r\n")  # fmt: skip
    after = target.snapshot()
    assert after["outside/canary.txt"] == CANARY
    assert [k for k in after if not k.startswith("served/")] == ["outside/canary.txt"]
    assert not no_partials(target.root)
    assert target.healthy()
    if any(spelling in path for spelling in LITERAL):
        # stored, if at all, as a literal name inside the root, holding only what was sent
        assert all(v in (b"kept", b"overwritten!") for v in after.values() if v != CANARY)
    else:
        assert all(status >= 400 for status in statuses.values()), statuses
        assert after == before


def test_signed_link_traversal_reaches_nothing_outside_the_root(target: Target) -> None:
    key = Secret(target.key)
    for path in ("../outside/canary.txt", "docs/../../outside/canary.txt", "/../outside/canary.txt"):
        link = signed_url(target.url, key, path, timedelta(minutes=5))  # a link signed for the bad path itself
        response = httpx.get(link, timeout=10)  # httpx removes the dots: a path that needs a token
        assert response.status_code in (401, 403, 404), (path, response.status_code)
        assert CANARY not in response.content
    raw_link = signed_url(target.url, key, "docs/kept.txt", timedelta(minutes=5))
    tail = raw_link.split("/_signed/", 1)[1].split("?", 1)[1]
    for spelled in ("..%2foutside%2fcanary.txt", "%2e%2e/outside/canary.txt", "docs/%2e%2e/%2e%2e/outside/canary.txt"):
        status, response = send_raw(target.url, f"GET /_signed/{spelled}?{tail} HTTP/1.1\r\nHost: x\r\n"
                                    "Connection: close\r\n")  # fmt: skip
        assert status in (403, 404) and CANARY not in response, spelled


# -- signed links ---------------------------------------------------------------------------------


def test_tampered_expired_and_replayed_signed_links_are_refused(target: Target) -> None:
    key = Secret(target.key)
    link = signed_url(target.url, key, "docs/kept.txt", timedelta(minutes=5))
    assert httpx.get(link, timeout=10).content == b"kept"
    base, query = link.split("?", 1)
    fields = dict(pair.split("=", 1) for pair in query.split("&"))
    exp, sig = int(fields["exp"]), fields["sig"]

    def status(url: str, method: str = "GET") -> int:
        return httpx.request(method, url, timeout=10).status_code

    # every single hex digit of the signature changed
    for i in range(len(sig)):
        changed = sig[:i] + ("0" if sig[i] != "0" else "1") + sig[i + 1 :]
        assert status(f"{base}?exp={exp}&sig={changed}") == 403, i
    # the expiry moved (later, earlier), or spelled in other ways, with the same signature
    for other in (exp + 1, exp - 1, exp + 10**6, f"{exp}.0", f"0{exp}", f"+{exp}", f"{exp} ", "-1", "9" * 13, ""):
        assert status(f"{base}?exp={other}&sig={sig}") == 403, other
    # missing, truncated, upper-cased or repeated parameters
    for variant in (f"exp={exp}", f"sig={sig}", f"exp={exp}&sig={sig[:-1]}", f"exp={exp}&sig={sig.upper()}",
                    f"exp={exp + 999}&exp={exp}&sig={sig}", f"exp={exp}&sig=&sig={sig}", ""):  # fmt: skip
        assert status(f"{base}?{variant}" if variant else base) == 403, variant
    # the same signature for another path: a sibling, a folder, other case, a doubled slash
    # (a trailing slash names the same file, so it is the same link)
    (target.root / "docs" / "other.txt").write_bytes(b"other")
    for path in ("docs/other.txt", "docs", "DOCS/kept.txt", "docs/Kept.txt", "docs//kept.txt", "docs/kept.txt."):
        assert status(f"{target.url}/_signed/{path}?exp={exp}&sig={sig}") in (403, 404), path
    # a key from elsewhere, and a link that expired a second ago
    assert status(signed_url(target.url, Secret("z" * 40), "docs/kept.txt", timedelta(minutes=5))) == 403
    assert status(signed_url(target.url, key, "docs/kept.txt", timedelta(seconds=-1))) == 403
    # replayed for anything but reading
    for method in ("PUT", "DELETE", "POST", "MKCOL", "PROPFIND", "MOVE", "COPY", "PROPPATCH", "LOCK"):
        assert status(link, method) == 405, method
    # replayed after the file is gone: nothing, and nothing about it
    (target.root / "docs" / "kept.txt").unlink()
    gone = httpx.get(link, timeout=10)
    assert gone.status_code == 404 and b"kept" not in gone.content
    assert sorted(p.name for p in target.root.rglob("*")) == ["docs", "other.txt"]
    assert target.healthy()


# -- oversized and malformed uploads -------------------------------------------------------------


def test_an_upload_over_the_limit_is_refused_before_its_body_is_read(target: Target) -> None:
    auth = f"Authorization: Bearer {target.token}\r\n"
    for declared in (LIMIT + 1, 10**18, 2**64 + 5):
        head = f"PUT /big.bin HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {declared}\r\n"
        # only the head is sent: an answer proves the server did not wait for the body
        assert raw_request(target.url, head.encode()) == 413, declared
    with target.client() as c:
        response = c.put("/big.bin", content=pattern(LIMIT + 1))
        assert response.status_code == 413
        assert "larger than this server accepts" in response.json()["error"]
        assert c.put("/exact.bin", content=pattern(LIMIT)).status_code == 201
    assert (target.root / "exact.bin").read_bytes() == pattern(LIMIT)
    assert not (target.root / "big.bin").exists()
    assert not no_partials(target.root)


def test_the_webdav_store_fails_an_oversized_upload_for_good_with_a_reason(target: Target) -> None:
    store = WebdavStore.from_config(WebdavStore.Config(url=target.url, verify_by_reread=False),
                                    {"token": target.token})  # fmt: skip
    with store:
        with pytest.raises(FinalStorageError, match=r"413.*--max-upload-size") as caught:
            store.put(io.BytesIO(pattern(LIMIT + 1)), "night/too-big.fits")
        assert classify(caught.value).kind is Kind.NEVER
        store.put(io.BytesIO(pattern(1000)), "night/fits.fits")
    assert (target.root / "night" / "fits.fits").read_bytes() == pattern(1000)
    assert not (target.root / "night" / "too-big.fits").exists()
    assert not no_partials(target.root)


def test_a_chunked_upload_is_cut_when_it_passes_the_limit(target: Target) -> None:
    sent = []

    def body() -> Iterator[bytes]:
        for _ in range(4 * LIMIT // 65536):
            sent.append(65536)
            yield pattern(65536)

    with target.client() as c:
        try:
            status = c.put("/chunked.bin", content=body()).status_code
        except httpx.TransportError:  # the server may close while we still send
            status = 413
    assert status == 413
    assert sum(sent) <= 4 * LIMIT
    assert not (target.root / "chunked.bin").exists()
    assert not no_partials(target.root)
    assert target.healthy()


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "12, 12", "0x10"])
def test_a_malformed_content_length_stores_nothing(target: Target, length: str) -> None:
    before = target.snapshot()
    head = f"PUT /docs/kept.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {target.token}\r\n"
    status, _ = send_raw(target.url, head + f"Content-Length: {length}\r\nConnection: close\r\n", b"evil")
    assert status == 400
    assert target.snapshot() == before
    assert not no_partials(target.root)


def test_a_body_shorter_than_declared_keeps_the_old_file(target: Target) -> None:
    head = f"PUT /docs/kept.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {target.token}\r\nContent-Length: 1000\r\n"
    parts = urlsplit(target.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + b"short")
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    assert (target.root / "docs" / "kept.txt").read_bytes() == b"kept"
    assert not no_partials(target.root)


# -- slow uploads ----------------------------------------------------------------------------------


def test_a_trickled_upload_is_cut_while_others_are_served(target: Target) -> None:
    """An authorised upload trickling far below the body rate is cut within
    a bounded wait, leaves nothing, and an honest upload and the health check
    go through meanwhile."""
    parts = urlsplit(target.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    cut = threading.Event()

    def trickle() -> None:
        head = (f"PUT /slow.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {target.token}\r\n"
                "Content-Length: 100000\r\n")
        try:
            sock.sendall(head.encode() + b"\r\n")
            for _ in range(600):  # at most 60 s of trickling; the server's window is 1 s
                sock.sendall(b"x")
                if cut.wait(0.1):
                    return
        except OSError:
            cut.set()

    def watch() -> None:
        try:
            sock.recv(1)  # returns (b"" or a status) once the server gives up on us
        except OSError:
            pass
        cut.set()

    threads = [threading.Thread(target=trickle), threading.Thread(target=watch)]
    for t in threads:
        t.start()
    try:
        with target.client() as c:
            assert c.put("/honest.bin", content=pattern(100_000)).status_code == 201
        assert target.healthy()
        assert cut.wait(30), "the trickling upload was never cut"
    finally:
        cut.set()
        sock.close()
        for t in threads:
            t.join(10)
    assert (target.root / "honest.bin").read_bytes() == pattern(100_000)
    assert not (target.root / "slow.bin").exists()
    assert not no_partials(target.root)


# -- concurrent uploads to one path ---------------------------------------------------------------


def test_concurrent_uploads_to_one_path_leave_one_whole_file(target: Target) -> None:
    bodies = [bytes([i]) * 65536 + secrets.token_bytes(200_000 - 65536) for i in range(8)]
    digests = {hashlib.sha256(b).hexdigest() for b in bodies}
    reported: list[str] = []
    torn: list[int] = []
    stop = threading.Event()
    start = threading.Barrier(len(bodies) + 1)

    def upload(body: bytes) -> None:
        with target.client() as c:
            start.wait()
            for _ in range(3):
                response = c.put("/race/one.bin", content=body)
                assert response.status_code in (201, 204)
                reported.append(response.headers["X-OCS-Transfer-SHA256"])

    def read() -> None:
        with target.client() as c:
            start.wait()
            while not stop.is_set():
                response = c.get("/race/one.bin")
                if response.status_code == 200 and hashlib.sha256(response.content).hexdigest() not in digests:
                    torn.append(len(response.content))

    writers = [threading.Thread(target=upload, args=(b,)) for b in bodies]
    reader = threading.Thread(target=read)
    for t in [*writers, reader]:
        t.start()
    for t in writers:
        t.join(60)
    stop.set()
    reader.join(30)
    assert sorted(reported) == sorted(hashlib.sha256(b).hexdigest() for b in bodies for _ in range(3))
    assert torn == []  # no reader ever saw a mix of two uploads or a partial one
    final = (target.root / "race" / "one.bin").read_bytes()
    assert hashlib.sha256(final).hexdigest() in digests
    assert sorted(p.name for p in (target.root / "race").iterdir()) == ["one.bin"]
    assert target.healthy()
