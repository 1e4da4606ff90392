"""Uploads through a provider plugin's real store to its wire-level fake
(plugins/*/tests) behind the fault proxy shaped as a network link.

    .venv/bin/python benchmarks/shaped.py --provider dropbox|gdrive|seafile \
        [--bandwidth-mib 25] [--latency-ms 5] [--big-mib 1024] [--small 100] [--small-mib 10] \
        [--threads 4] [--only big|small|raw] [--option key=value ...]

The fake and the proxies run in a child process (their CPU and memory are not
the client's); every base URL the client talks to goes through one shared
:class:`~ocs_transfer.testing.servers.Link` (Seafile's seahub and file server
through two proxies on that link). Runs:

- ``raw``: a plain TCP stream of 256 MiB through the same kind of link, what
  the link carries on this machine now (the shaping is Python threads and
  sleeps, so under load it may fall short of its nominal rate);
- ``big``: one file of ``--big-mib``;
- ``small``: ``--small`` files of ``--small-mib`` each, ``--threads`` puts at
  once (the store's own parallelism and batching underneath).

For each run: MiB/s, its ratio to the nominal link and to the measured raw
link, the link's idle time (sampled every 5 ms: gaps of 20 ms or more in
which no byte went up, the stop-and-wait between requests) and the client
process's peak RSS. The machine's load average is printed with the results.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
PROVIDERS = ("dropbox", "gdrive", "seafile")
SAMPLE = 0.005  # seconds between samples of the link's byte counters
GAP = 0.02  # an idle stretch of the link at least this long counts as a gap
RAW_MIB = 256


# -- the child: fake, proxies, link sampler ----------------------------------------------------


class _Sampler:
    """Samples the up-link byte count of some proxies; reports idle gaps."""

    def __init__(self, proxies: list[Any]) -> None:
        self.proxies = proxies
        self.samples: list[tuple[float, int]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            total = sum(p.bytes_up for p in self.proxies)
            with self.lock:
                self.samples.append((time.monotonic(), total))
            time.sleep(SAMPLE)

    def mark(self) -> None:
        with self.lock:
            self.samples = self.samples[-1:]

    def report(self) -> dict[str, Any]:
        with self.lock:
            samples = list(self.samples)
        # trim the idle tail before the report was asked for and the idle head before the run started
        while len(samples) > 2 and samples[-2][1] == samples[-1][1]:
            samples.pop()
        while len(samples) > 2 and samples[0][1] == samples[1][1]:
            samples.pop(0)
        gaps: list[float] = []
        idle_since: float | None = None
        for (t0, b0), (_, b1) in itertools.pairwise(samples):
            if b1 == b0:
                idle_since = t0 if idle_since is None else idle_since
            elif idle_since is not None:
                if t0 - idle_since >= GAP:
                    gaps.append(t0 - idle_since)
                idle_since = None
        span = samples[-1][0] - samples[0][0] if len(samples) > 1 else 0.0
        return {
            "bytes_up": samples[-1][1] - samples[0][1] if samples else 0,
            "span_s": round(span, 2),
            "gaps": len(gaps),
            "idle_s": round(sum(gaps), 2),
            "longest_gaps_ms": sorted((round(g * 1000) for g in gaps), reverse=True)[:5],
        }


def _sink() -> tuple[str, int]:
    """A TCP server that reads and drops everything (the raw run's far end)."""
    server = socket.create_server(("127.0.0.1", 0))

    def drain(conn: socket.socket) -> None:
        with conn:
            while conn.recv(1 << 20):
                pass
            conn.sendall(b"done")

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=drain, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return ("127.0.0.1", int(server.getsockname()[1]))


def _target(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    return host, int(port.rstrip("/"))


def serve(provider: str, bandwidth: float, latency: float) -> None:
    """Run the fake behind shaped proxies; print its coordinates as one JSON
    line; then answer ``mark`` / ``report`` lines on stdin until EOF."""
    from ocs_transfer.testing.servers import FaultProxy, Link

    sys.path.insert(0, str(REPO / "plugins" / provider / "tests"))
    link = Link.shaped(bandwidth, latency=latency)
    info: dict[str, Any]
    proxies: list[FaultProxy]
    keep: Any = None
    if provider == "dropbox":
        from fake_dropbox import FakeDropbox

        keep = FakeDropbox().start()
        proxies = [FaultProxy(_target(keep.url), link=link)]
        info = {"url": proxies[0].url, "app_key": keep.app_key, "app_secret": keep.app_secret,
                "refresh_token": keep.refresh_token}  # fmt: skip
    elif provider == "gdrive":
        from fake_drive import FakeDrive

        keep = FakeDrive().__enter__()
        proxies = [FaultProxy(_target(keep.url), link=link)]
        info = {"url": proxies[0].url, "credentials": keep.credentials()}
    else:
        from fake_seafile import FakeSeafile

        keep = FakeSeafile(Path(tempfile.mkdtemp(prefix="bench-seafile-")))
        token = keep.add_user("bench@example.edu", "pw")
        repo = keep.add_repo("bench")
        proxies = [FaultProxy(_target(keep.url), link=link), FaultProxy(_target(keep.file_server_url), link=link)]
        keep.file_server_url = proxies[1].url
        info = {"url": proxies[0].url, "token": token, "repo": repo.id}
    raw = FaultProxy(_sink(), link=Link.shaped(bandwidth, latency=latency))
    info["raw"] = raw.url
    sampler = _Sampler([*proxies, raw])
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        if line.strip() == "mark":
            sampler.mark()
            print("{}", flush=True)
        elif line.strip() == "report":
            print(json.dumps(sampler.report()), flush=True)


# -- the client ---------------------------------------------------------------------------------


class _Child:
    def __init__(self, provider: str, bandwidth: float, latency: float) -> None:
        cmd = [sys.executable, __file__, "--serve", provider, "--bandwidth", str(bandwidth), "--latency", str(latency)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.info: dict[str, Any] = json.loads(self.proc.stdout.readline())

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def make_store(provider: str, info: dict[str, Any], options: dict[str, Any]) -> Any:
    from ocs_transfer.settings import Settings
    from ocs_transfer.storage import get_store

    settings = Settings(chunk_size=int(options.pop("settings_chunk_mib", 8)) * MiB)
    if provider == "dropbox":
        creds = {k: info[k] for k in ("app_key", "app_secret", "refresh_token")}
        return get_store("dropbox", credentials=creds, settings=settings, root="/bench", api_url=info["url"],
                         content_url=info["url"], **options)  # fmt: skip
    if provider == "gdrive":
        return get_store("gdrive", credentials=info["credentials"], settings=settings, root="bench",
                         api_url=info["url"], token_url=info["url"] + "/token", **options)  # fmt: skip
    return get_store("seafile", credentials={"token": info["token"]}, settings=settings, server_url=info["url"],
                     repo_id=info["repo"], **options)  # fmt: skip


def _raw(url: str, nbytes: int) -> None:
    with socket.create_connection(_target(url), timeout=60) as conn:
        block = b"\0" * MiB
        for _ in range(nbytes // MiB):
            conn.sendall(block)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(16)


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--provider", choices=PROVIDERS)
    parser.add_argument("--bandwidth-mib", type=float, default=25.0, help="the link's rate each way, MiB/s")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="the link's latency each way")
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--small-mib", type=int, default=10)
    parser.add_argument("--threads", type=int, default=4, help="puts at once in the small-file run")
    parser.add_argument("--only", action="append", choices=("raw", "big", "small"))
    parser.add_argument("--option", action="append", default=[], help="a store option, key=value (JSON value)")
    parser.add_argument("--serve", choices=PROVIDERS, help=argparse.SUPPRESS)
    parser.add_argument("--bandwidth", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.bandwidth, args.latency)
        return
    if not args.provider:
        parser.error("--provider is required")
    options: dict[str, Any] = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    from ocs_transfer.testing.data import PatternReader

    bandwidth = args.bandwidth_mib * MiB
    runs = args.only or ["raw", "big", "small"]
    child = _Child(args.provider, bandwidth, args.latency_ms / 1000)
    results: dict[str, Any] = {"provider": args.provider, "link": {"mib_s": args.bandwidth_mib,
                               "latency_ms_each_way": args.latency_ms}, "options": dict(options)}  # fmt: skip
    store = make_store(args.provider, child.info, options)
    raw_rate: float | None = None

    def timed(name: str, nbytes: int, work: Any) -> None:
        nonlocal raw_rate
        child.ask("mark")
        started = time.monotonic()
        work()
        took = time.monotonic() - started
        rate = nbytes / MiB / took
        entry = {"mib": nbytes // MiB, "seconds": round(took, 2), "mib_s": round(rate, 2),
                 "ratio": round(rate / args.bandwidth_mib, 3), "link": child.ask("report"),
                 "peak_rss_mib": _peak_rss_mib()}  # fmt: skip
        if name == "raw":
            raw_rate = rate
        elif raw_rate:
            entry["ratio_to_raw"] = round(rate / raw_rate, 3)
        results[name] = entry
        print(name, json.dumps(entry), file=sys.stderr, flush=True)

    try:
        if "raw" in runs:
            timed("raw", RAW_MIB * MiB, lambda: _raw(child.info["raw"], RAW_MIB * MiB))
        if "big" in runs:
            size = args.big_mib * MiB
            timed("big", size, lambda: store.put(PatternReader(size), "big.bin", size=size))
        if "small" in runs:
            each = args.small_mib * MiB

            def one(i: int) -> None:
                store.put(PatternReader(each), f"small/{i:03d}.bin", size=each)

            def many() -> None:
                with ThreadPoolExecutor(args.threads) as pool:
                    list(pool.map(one, range(args.small)))

            timed("small", args.small * each, many)
            results["small"]["files"] = args.small
            results["small"]["threads"] = args.threads
            if "big" in results:
                results["small"]["slower_than_big"] = round(results["big"]["mib_s"] / results["small"]["mib_s"] - 1, 3)
    finally:
        store.close()
        child.close()
    results["peak_rss_mib"] = _peak_rss_mib()
    results["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
