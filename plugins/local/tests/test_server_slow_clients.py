"""The file server does not fall to slow clients (issue 11, point 10): as
many slow connections as it has threads, trickling headers or (without a
token) a body a byte at a time, while `/_health` keeps answering. Real
sockets, bounded in time: each wait has a deadline a few times the server's
header timeout; nothing sleeps to prove a negative."""

from __future__ import annotations

import contextlib
import http.client
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ocs_transfer_local.server import FileServer, ServerConfig

from ocs_transfer.redact import Secret

THREADS = 4
ATTACKERS = 16
HEADER_TIMEOUT = 1.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FileServer]:
    config = ServerConfig(root=tmp_path, port=0, tokens=(Secret(secrets.token_urlsafe(32)),), threads=THREADS,
                          socket_timeout=30, header_timeout=HEADER_TIMEOUT, body_window=2.0,
                          body_min_rate=1024)  # fmt: skip
    with FileServer(config) as srv:
        yield srv


class Trickler:
    """Slow clients: each sends ``prefix`` then one byte every ``every``
    seconds, until stopped or cut off; records who was cut."""

    def __init__(self, port: int, prefix: bytes, count: int, every: float = 0.1) -> None:
        self.socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        self.prefix, self.every = prefix, every
        self.stop = threading.Event()
        self.cut = 0
        self.replies: list[bytes] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(s,), daemon=True) for s in self.socks]
        for t in self.threads:
            t.start()

    def _run(self, sock: socket.socket) -> None:
        try:
            sock.sendall(self.prefix)
            sock.settimeout(self.every)
            while not self.stop.is_set():
                sock.sendall(b"x")
                with contextlib.suppress(TimeoutError):
                    data = sock.recv(4096)
                    with self._lock:
                        if data:
                            self.replies.append(data)
                        self.cut += 1
                    return
        except OSError:
            with self._lock:
                self.cut += 1

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5)
        for s in self.socks:
            s.close()


def _health(port: int, timeout: float) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/_health")
        return conn.getresponse().status
    finally:
        conn.close()


def _health_answers_while(server: FileServer, attack: Trickler) -> float:
    try:
        started = time.monotonic()
        assert _health(server.port, timeout=HEADER_TIMEOUT * 6) == 200
        return time.monotonic() - started
    finally:
        attack.close()


def test_slow_headers_do_not_starve_health(server: FileServer) -> None:
    attack = Trickler(server.port, b"GET /night/a.fits HTTP/1.1\r\nHost: x\r\nX-Slow: ", ATTACKERS)
    waited = _health_answers_while(server, attack)
    assert waited < HEADER_TIMEOUT * 6
    assert attack.cut > 0  # the server dropped slow header senders


def test_slow_unauthenticated_body_is_refused_before_reading(server: FileServer) -> None:
    head = b"PUT /night/a.fits HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
    attack = Trickler(server.port, head, ATTACKERS)
    _health_answers_while(server, attack)
    assert attack.replies and all(r.startswith(b"HTTP/1.1 401") for r in attack.replies)
    assert all(b"connection: close" in r.lower() for r in attack.replies)


def test_slow_authenticated_body_is_cut(server: FileServer, tmp_path: Path) -> None:
    token = server.config.tokens[0].reveal()
    head = (f"PUT /night/a.fits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Length: 100000000\r\n\r\n").encode()  # fmt: skip
    attack = Trickler(server.port, head, THREADS)
    deadline = time.monotonic() + 2.0 * 6
    while attack.cut < THREADS and time.monotonic() < deadline:
        time.sleep(0.05)
    _health_answers_while(server, attack)
    assert attack.cut == THREADS
    assert not (tmp_path / "night" / "a.fits").exists()
    assert [p.name for p in (tmp_path / "night").iterdir()] == []  # no partial left
