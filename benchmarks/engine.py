"""Engine overhead: schedule and complete N small transfers.

    .venv/bin/python benchmarks/engine.py [--n 10000] [--size 1024] [--ledger sqlite|postgresql|both]
                                          [--threads 4] [--profile]

Source and destination are local directories in a temporary folder (the
``local`` provider), or memory stores with ``--store memory``
(fsspec's memory filesystem makes ``info`` O(number of files), so it does not
scale to 10,000). PostgreSQL: the test server on 127.0.0.1:5432, in a
throw-away schema. Results go in RESULTS-engine.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import tempfile
import time
import uuid
from pathlib import Path

import ocs_transfer_local.plugin
import sqlalchemy
from ocs_transfer_local.local import LocalStore

from ocs_transfer import plugins
from ocs_transfer.settings import Settings
from ocs_transfer.storage import get_store
from ocs_transfer.transfer.crypto import KeyRing, generate_key
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine, Worker
from ocs_transfer.transfer.ledger import Ledger

os.environ.setdefault("OCS_TRANSFER_DISABLE_ENTRYPOINTS", "1")


def run(url: str, n: int, size: int, threads: int, profile: bool, store: str, tmp: Path) -> dict[str, float]:
    settings = Settings(chunk_size=64 * 1024, worker_threads=threads)
    ledger = Ledger(url)
    ledger.migrate()
    dests = Destinations(ledger, KeyRing.parse("k1:" + generate_key()), settings=settings)
    tag = uuid.uuid4().hex[:8]
    if store == "memory":
        dests.add(f"bench-{tag}", "memory", options={"root": f"/bench-dst-{tag}"}, credentials={"token": "x" * 40})
        source_url = f"memory://bench-src-{tag}"
        source = get_store(source_url)
        resolver = None
    else:
        (tmp / "dst").mkdir()
        (tmp / "src").mkdir()
        dests.add(f"bench-{tag}", "local", options={"root": str(tmp / "dst")}, credentials={"token": "x" * 40})
        source_url = str(tmp / "src")
        source = LocalStore.from_config(LocalStore.Config(root=source_url), settings=settings)
        resolver = lambda ref: source  # noqa: E731
    payload = os.urandom(size)
    paths = [f"f{i:05d}.fits" for i in range(n)]
    for path in paths:
        source.put(io.BytesIO(payload), path)
    engine = Engine(ledger, dests, settings=settings, source_resolver=resolver)

    t0 = time.perf_counter()
    engine.schedule(source_url, paths, [f"bench-{tag}"])
    t1 = time.perf_counter()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    if threads == 0:  # run_due in this thread (profiles the whole path)
        ran = engine.run_due()
    else:
        ran = Worker(engine, threads=threads, poll_interval=0.01).run(until_idle=True)
    if profiler:
        profiler.disable()
    t2 = time.perf_counter()
    counts = engine.counts()[f"bench-{tag}"]
    assert ran == n and counts == {"completed": n}, counts
    ledger.close()
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(15)
    return {"schedule_s": t1 - t0, "run_s": t2 - t1, "schedule_per_s": n / (t1 - t0), "run_per_s": n / (t2 - t1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=4, help="0: run_due() in the main thread")
    parser.add_argument("--ledger", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--store", choices=["local", "memory"], default="local")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.ledger == "both" else [args.ledger]
    plugins.reset(load_entrypoints=False)
    with plugins.temporary_plugin(ocs_transfer_local.plugin, "local"):
        for kind in kinds:
            with tempfile.TemporaryDirectory() as tmp:
                result = bench(kind, args, Path(tmp))
            print(f"{kind:10} n={args.n} size={args.size} threads={args.threads} store={args.store}:"
                  f" schedule {result['schedule_s']:.2f} s ({result['schedule_per_s']:.0f}/s),"
                  f" run {result['run_s']:.2f} s ({result['run_per_s']:.0f}/s)", flush=True)


def bench(kind: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    common = (args.n, args.size, args.threads, args.profile, args.store, tmp)
    if kind == "sqlite":
        return run(f"sqlite:///{tmp / 'bench.sqlite3'}", *common)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        return run(f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}", *common)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()

if __name__ == "__main__":
    main()
