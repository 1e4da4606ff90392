"""The fault proxy as a shaped link: bandwidth (one token bucket, shareable
between proxies) and latency each way, measured by counting bytes and time.

Every bound here is one the shaping makes certain: a link of R bytes per
second cannot carry B bytes in less than (B - burst) / R seconds, and N round
trips over a link of one-way latency L cannot take less than 2 N L. Nothing
asserts that anything is fast.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ocs_transfer.testing.servers import FaultProxy, Link, TokenBucket

MiB = 1 << 20
RATE = 2 * MiB  # bytes per second


class _Sink(socketserver.BaseRequestHandler):
    """Reads to EOF, answers the byte count."""

    def handle(self) -> None:
        got = 0
        while piece := self.request.recv(1 << 16):
            got += len(piece)
        self.request.sendall(str(got).encode())


class _Source(socketserver.BaseRequestHandler):
    """Sends the number of bytes the client asks for (one line), then closes."""

    def handle(self) -> None:
        line = b""
        while not line.endswith(b"\n"):
            line += self.request.recv(64)
        left = int(line)
        block = b"\x5a" * (1 << 16)
        while left:
            self.request.sendall(block[: min(left, len(block))])
            left -= min(left, len(block))


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while piece := self.request.recv(1 << 16):
            self.request.sendall(piece)


def _server(handler: type[socketserver.BaseRequestHandler]) -> Callable[[], Iterator[tuple[str, int]]]:
    def fixture() -> Iterator[tuple[str, int]]:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield ("127.0.0.1", int(server.server_address[1]))
        server.shutdown()
        server.server_close()

    return fixture


sink = pytest.fixture(_server(_Sink))
source = pytest.fixture(_server(_Source))
echo = pytest.fixture(_server(_Echo))


def _upload(proxy: FaultProxy, nbytes: int) -> int:
    """Send ``nbytes`` through the proxy to the sink; the count it received."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as conn:
        block = b"\xa5" * (1 << 16)
        left = nbytes
        while left:
            conn.sendall(block[: min(left, len(block))])
            left -= min(left, len(block))
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while piece := conn.recv(64):
            answer += piece
    return int(answer)


def _download(proxy: FaultProxy, nbytes: int) -> int:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as conn:
        conn.sendall(f"{nbytes}\n".encode())
        got = 0
        while piece := conn.recv(1 << 16):
            got += len(piece)
    return got


def test_bandwidth_limits_uploads(sink: tuple[str, int]) -> None:
    nbytes = 4 * MiB
    with FaultProxy(sink, link=Link.shaped(RATE)) as proxy:
        started = time.monotonic()
        received = _upload(proxy, nbytes)
        took = time.monotonic() - started
        assert received == nbytes
        assert proxy.bytes_up == nbytes
    # 4 MiB over 2 MiB/s with a 256 KiB burst: at least 1.875 s
    assert took >= (nbytes - TokenBucket(RATE).burst) / RATE * 0.8, took


def test_bandwidth_limits_downloads(source: tuple[str, int]) -> None:
    nbytes = 4 * MiB
    with FaultProxy(source) as proxy:
        proxy.shape(bandwidth=RATE)
        started = time.monotonic()
        received = _download(proxy, nbytes)
        took = time.monotonic() - started
        assert received == nbytes
        assert proxy.bytes_down == nbytes
    assert took >= (nbytes - TokenBucket(RATE).burst) / RATE * 0.8, took


def test_a_shared_link_is_one_link(sink: tuple[str, int]) -> None:
    """Two proxies (two connections) on one Link share its bandwidth: 2 MiB
    each at the same time take as long as 4 MiB through one."""
    up = TokenBucket(RATE)
    link = Link(up=up, down=TokenBucket(RATE))
    each = 2 * MiB
    received: list[int] = []
    with FaultProxy(sink, link=link) as first, FaultProxy(sink, link=link) as second:
        started = time.monotonic()
        threads = [threading.Thread(target=lambda p=p: received.append(_upload(p, each))) for p in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        took = time.monotonic() - started
        assert received == [each, each]
        assert first.bytes_up + second.bytes_up == 2 * each
    assert took >= (2 * each - up.burst) / RATE * 0.8, took


def test_latency_each_way(echo: tuple[str, int]) -> None:
    """Each round trip waits for the latency twice (there and back)."""
    latency = 0.05
    trips = 10
    with FaultProxy(echo) as proxy:
        proxy.shape(latency=latency)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as conn:
            started = time.monotonic()
            for i in range(trips):
                message = f"ping {i}\n".encode()
                conn.sendall(message)
                answer = b""
                while len(answer) < len(message):
                    answer += conn.recv(64)
                assert answer == message
            took = time.monotonic() - started
        assert proxy.bytes_up == proxy.bytes_down == sum(len(f"ping {i}\n") for i in range(trips))
    assert took >= trips * 2 * latency * 0.9, took


def test_latency_keeps_the_bandwidth_limit(sink: tuple[str, int]) -> None:
    """Latency on top of a bandwidth limit: the limit still holds and every
    byte arrives."""
    nbytes = 3 * MiB
    with FaultProxy(sink) as proxy:
        proxy.shape(bandwidth=RATE, latency=0.02)
        started = time.monotonic()
        assert _upload(proxy, nbytes) == nbytes
        took = time.monotonic() - started
    assert took >= (nbytes - TokenBucket(RATE).burst) / RATE * 0.8 + 2 * 0.02, took


def test_token_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        TokenBucket(0)
