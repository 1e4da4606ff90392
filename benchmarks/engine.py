"""Engine overhead: schedule and complete N small transfers.

    .venv/bin/python benchmarks/engine.py [--n 10000] [--size 1024] [--ledger sqlite|postgresql|both]
                                          [--store local|memory] [--threads 4] [--processes 1]
                                          [--executor worker|celery] [--profile]
    .venv/bin/python benchmarks/engine.py --matrix [--n 2000] [--n-large 200]   # the table in RESULTS-engine.md

Source and destination are local directories in a temporary folder (the
``local`` provider), or memory stores with ``--store memory``. PostgreSQL: the
test server on 127.0.0.1:5432, in a throw-away schema.

``--processes P`` runs P worker processes (forked after scheduling; each has
its own ledger connections and, with ``--store memory``, its own copy of the
sources and its own destination), each a :class:`Worker` with ``--threads``.
``--executor celery`` runs ``ocs-transfer worker --celery --threads P`` (P
prefork processes) on RabbitMQ (127.0.0.1:5672) instead; the sources are then
local files (memory sources are not shared between processes), and the time
runs from publishing to the last completion.

Each run reports wall time, transfers per second, and CPU per transfer (user +
system of every worker process, and of the publisher for Celery), next to the
CPU and time the store alone needs for a put of the same file (measured in this
process on up to 500 files). Results go in RESULTS-engine.md, with the load
average.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import multiprocessing
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ocs_transfer_local.plugin
import sqlalchemy
from ocs_transfer_local.local import LocalStore

from ocs_transfer import plugins
from ocs_transfer.settings import Settings
from ocs_transfer.storage import get_store
from ocs_transfer.storage.base import FileStore
from ocs_transfer.transfer.crypto import KeyRing, generate_key
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine, Worker
from ocs_transfer.transfer.ledger import Ledger

os.environ.setdefault("OCS_TRANSFER_DISABLE_ENTRYPOINTS", "1")
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BROKER = "amqp://guest:guest@127.0.0.1:5672//"


class Case:
    """One ledger, one destination, N source files, scheduled."""

    def __init__(self, url: str, args: argparse.Namespace, tmp: Path) -> None:
        self.url, self.args, self.tmp = url, args, tmp
        self.keys = "k1:" + generate_key()
        self.settings = Settings(chunk_size=64 * 1024, worker_threads=args.threads or 1)
        self.tag = uuid.uuid4().hex[:8]
        self.dest = f"bench-{self.tag}"
        ledger = Ledger(url)
        ledger.migrate()
        dests = Destinations(ledger, KeyRing.parse(self.keys), settings=self.settings)
        local_source = args.store == "local" or args.executor == "celery"
        if args.store == "memory":
            self.dest_options = {"root": f"/bench-dst-{self.tag}"}
            dests.add(self.dest, "memory", options=self.dest_options, credentials={"token": "x" * 40})
        else:
            (tmp / "dst").mkdir()
            self.dest_options = {"root": str(tmp / "dst")}
            dests.add(self.dest, "local", options=self.dest_options, credentials={"token": "x" * 40})
        if local_source:
            (tmp / "src").mkdir()
            self.source_url = str(tmp / "src")
            source: FileStore = LocalStore.from_config(LocalStore.Config(root=self.source_url), settings=self.settings)
        else:
            self.source_url = f"memory://bench-src-{self.tag}"
            source = get_store(self.source_url)
        self.payload = os.urandom(args.size)
        self.paths = [f"f{i:05d}.fits" for i in range(args.n)]
        for path in self.paths:
            source.put(io.BytesIO(self.payload), path)
        t0 = time.perf_counter()
        engine = self.engine(ledger)
        self.transfer_ids = [t.id for t in engine.schedule(self.source_url, self.paths, [self.dest])]
        self.schedule_s = time.perf_counter() - t0
        ledger.close()

    def engine(self, ledger: Ledger | None = None) -> Engine:
        ledger = ledger if ledger is not None else Ledger(self.url)
        dests = Destinations(ledger, KeyRing.parse(self.keys), settings=self.settings)
        if self.source_url.startswith("memory://"):
            return Engine(ledger, dests, settings=self.settings)
        source = LocalStore.from_config(LocalStore.Config(root=self.source_url), settings=self.settings)
        return Engine(ledger, dests, settings=self.settings, source_resolver=lambda ref: source)

    def completed(self) -> int:
        ledger = Ledger(self.url)
        try:
            return self.engine(ledger).counts()[self.dest].get("completed", 0)
        finally:
            ledger.close()

    def store_alone(self) -> tuple[float, float]:
        """CPU seconds and wall seconds per put of one file into a fresh store
        of the destination's kind (up to 500 files, in this process)."""
        count = min(len(self.paths), 500)
        if self.args.store == "memory":
            store: FileStore = get_store("memory", root=f"/alone-{self.tag}")
        else:
            (self.tmp / "alone").mkdir()
            store = LocalStore.from_config(LocalStore.Config(root=str(self.tmp / "alone")), settings=self.settings)
        c0, t0 = time.process_time(), time.perf_counter()
        for path in self.paths[:count]:
            store.put(io.BytesIO(self.payload), path, size=len(self.payload))
        return (time.process_time() - c0) / count, (time.perf_counter() - t0) / count


# -- the thread-pool worker in P processes ---------------------------------------------------


def _child(case: Case, go: Any, results: Any, profile: bool) -> None:
    engine = case.engine()
    go.wait()
    profiler = cProfile.Profile() if profile else None
    c0 = time.process_time()
    if profiler:
        profiler.enable()
    if case.args.threads == 0:
        ran = engine.run_due()
    else:
        ran = Worker(engine, threads=case.args.threads, poll_interval=0.01).run(until_idle=True)
    if profiler:
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
    results.put((ran, time.process_time() - c0))
    engine.ledger.close()


def run_workers(case: Case) -> dict[str, float]:
    processes = case.args.processes
    if processes == 1 and not case.args.fork:  # in this process (as before; profiles see everything)
        go, results = _Now(), _List()
        t0 = time.perf_counter()
        _child(case, go, results, case.args.profile)
        wall = time.perf_counter() - t0
        outcomes = results.items
    else:
        ctx = multiprocessing.get_context("fork")
        go, queue = ctx.Event(), ctx.Queue()
        children = [ctx.Process(target=_child, args=(case, go, queue, case.args.profile)) for _ in range(processes)]
        for child in children:
            child.start()
        time.sleep(0.5)  # let them connect
        t0 = time.perf_counter()
        go.set()
        outcomes = [queue.get(timeout=3600) for _ in children]
        wall = time.perf_counter() - t0
        for child in children:
            child.join()
    ran = sum(r for r, _ in outcomes)
    assert ran == case.args.n, (ran, case.args.n)
    return {"wall": wall, "cpu": sum(c for _, c in outcomes)}


class _Now:
    def wait(self) -> None:
        return None


class _List:
    def __init__(self) -> None:
        self.items: list[tuple[int, float]] = []

    def put(self, item: tuple[int, float]) -> None:
        self.items.append(item)


# -- Celery ------------------------------------------------------------------------------------


def run_celery(case: Case) -> dict[str, float]:
    import psutil

    from ocs_transfer.transfer.celery import make_app, publish

    queue = f"bench_{case.tag}"
    env = {**{k: v for k, v in os.environ.items() if k != "OCS_TRANSFER_DISABLE_ENTRYPOINTS"},
           "OCS_TRANSFER_LEDGER_URL": case.url, "OCS_TRANSFER_KEYS": case.keys,
           "OCS_TRANSFER_EXECUTOR": "celery", "OCS_TRANSFER_BROKER_URL": BROKER, "OCS_TRANSFER_CELERY_QUEUE": queue,
           "OCS_TRANSFER_CHUNK_SIZE": str(case.settings.chunk_size)}
    settings = Settings.from_env(env)
    log = case.tmp / "celery.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from ocs_transfer.cli import run; run()", "worker", "--celery",
                                 "--threads", str(case.args.processes)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while b"ready." not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        tree = psutil.Process(proc.pid)

        def cpu() -> float:
            total = 0.0
            for p in [tree, *tree.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = p.cpu_times()
                    total += times.user + times.system
            return total

        before = cpu()
        ledger = Ledger(case.url)
        engine = case.engine(ledger)
        app = make_app(settings)
        t0 = time.perf_counter()
        c0 = time.process_time()
        publish(engine, case.transfer_ids, app)
        published_cpu = time.process_time() - c0
        while engine.counts()[case.dest].get("completed", 0) < case.args.n:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        used = cpu() - before
        ledger.close()
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return {"wall": wall, "cpu": used + published_cpu}


# -- driving -------------------------------------------------------------------------------------


@contextlib.contextmanager
def ledger_url(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'bench.sqlite3'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(PG)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def bench(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ledger_url(kind, Path(tmp)) as url:
        load0 = os.getloadavg()[0]
        case = Case(url, args, Path(tmp))
        result = run_celery(case) if args.executor == "celery" else run_workers(case)
        assert case.completed() == args.n
        alone_cpu, alone_wall = case.store_alone()
        load1 = os.getloadavg()[0]
    n = args.n
    return {
        "ledger": kind, "store": args.store, "size": args.size, "executor": args.executor,
        "processes": args.processes, "threads": args.threads, "n": n, "schedule_s": case.schedule_s,
        "wall": result["wall"], "per_s": n / result["wall"], "cpu_ms": 1000 * result["cpu"] / n,
        "alone_cpu_ms": 1000 * alone_cpu, "alone_wall_ms": 1000 * alone_wall,
        "overhead_ms": 1000 * (result["cpu"] / n - alone_cpu), "load": f"{load0:.1f}-{load1:.1f}",
    }  # fmt: skip


def row(r: dict[str, Any]) -> str:
    size = "1 KiB" if r["size"] == 1024 else f"{r['size'] // (1 << 20)} MiB" if r["size"] >= 1 << 20 else r["size"]
    how = ("Celery" if r["executor"] == "celery" else "worker") + f" {r['processes']}p"
    if r["executor"] != "celery":
        how += f"x{r['threads']}t"
    return (f"| {r['ledger']} | {r['store']} | {size} | {how} | {r['n']:,} | {r['wall']:.1f} s | **{r['per_s']:.0f}** |"
            f" {r['cpu_ms']:.2f} | {r['alone_cpu_ms']:.2f} / {r['alone_wall_ms']:.2f} | {r['overhead_ms']:.2f} |"
            f" {r['load']} |")


HEADER = ("| ledger | destination | size | executor | n | run | transfers/s | CPU ms/transfer"
          " | store alone CPU / wall ms"
          " | overhead CPU ms | load avg |\n|---|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n-large", type=int, default=200, help="--matrix: files for the 1 MiB rows")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=4, help="0: run_due() in one thread")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--fork", action="store_true", help="one process: still fork a child (as P > 1 do)")
    parser.add_argument("--executor", choices=["worker", "celery"], default="worker")
    parser.add_argument("--ledger", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--store", choices=["local", "memory"], default="local")
    parser.add_argument("--matrix", action="store_true")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.ledger == "both" else [args.ledger]
    plugins.reset(load_entrypoints=False)
    with plugins.temporary_plugin(ocs_transfer_local.plugin, "local"):
        if not args.matrix:
            for kind in kinds:
                print(row(bench(kind, args)), flush=True)
            return
        print(HEADER, flush=True)
        for size, n in ((1024, args.n), (1 << 20, args.n_large)):
            for store in ("memory", "local"):
                for kind in kinds:
                    for executor, processes in (("worker", 1), ("worker", 2), ("worker", 4), ("celery", 2)):
                        case = argparse.Namespace(**{**vars(args), "size": size, "n": n, "store": store,
                                                     "executor": executor, "processes": processes, "fork": True})
                        print(row(bench(kind, case)), flush=True)


if __name__ == "__main__":
    main()
