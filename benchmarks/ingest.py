"""Ingest-queue throughput: messages per second for small FITS files.

    .venv/bin/python benchmarks/ingest.py [--n 500] [--size 1024] [--concurrency 1,4] [--store memory,local]

For each store and concurrency: N small FITS files (headers plus ``--size``
bytes of data) are ingested three ways, each into a fresh store:

- ``direct``: ``Ingester.ingest`` in a loop, no queue (the store's and the
  header reader's own cost);
- ``enqueue``: ``ocs_transfer.ingest.enqueue`` publishes N messages, each
  persistent and confirmed by the broker;
- ``consume``: ``consume(..., max_messages=N)`` on the real RabbitMQ
  (127.0.0.1:5672) ingests them, acknowledging each after the store confirmed.

Results go in RESULTS-ingest.md (with the load average: the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from astropy.io import fits

from ocs_transfer.ingest import Ingester, IngestMessage, consume, enqueue
from ocs_transfer.ingest.queue import Topology, open_connection
from ocs_transfer.storage import get_store

URL = os.environ.get("OCS_TRANSFER_QUEUE_URL", "amqp://guest:guest@127.0.0.1:5672//")


def make_files(folder: Path, n: int, size: int) -> list[Path]:
    header = fits.Header()
    for key, value in {"PROPID": "BENCH", "DATE-OBS": "2015-02-19T13:56:05.261", "DAY-OBS": "20150219",
                       "INSTRUME": "kb05", "SITEID": "coj", "TELID": "1m0a", "OBSTYPE": "EXPOSE",
                       "BLKUID": 1, "RLEVEL": 91}.items():  # fmt: skip
        header[key] = value
    data = np.frombuffer(os.urandom(max(size // 2, 2) * 2), dtype=">i2").reshape(1, -1)
    paths = []
    for i in range(n):
        path = folder / f"coj1m011-kb05-20150219-{i:04d}-e91.fits"
        fits.PrimaryHDU(data, header).writeto(path)
        paths.append(path)
    return paths


def store_for(kind: str, tmp: Path) -> object:
    if kind == "memory":
        return get_store("memory", root=f"bench-{uuid.uuid4().hex[:8]}")
    return get_store(str(tmp / f"store-{uuid.uuid4().hex[:8]}"))


def run(kind: str, concurrency: int, files: list[Path], tmp: Path) -> dict[str, float]:
    n = len(files)
    ingester = Ingester(store_for(kind, tmp))  # type: ignore[arg-type]
    start = time.perf_counter()
    for path in files:
        ingester.ingest(IngestMessage(str(path)))
    direct = time.perf_counter() - start

    name = f"ocs-bench-ingest-{uuid.uuid4().hex[:8]}"
    topology = Topology(name)
    try:
        start = time.perf_counter()
        enqueue(URL, name, files)
        published = time.perf_counter() - start
        ingester = Ingester(store_for(kind, tmp))  # type: ignore[arg-type]
        start = time.perf_counter()
        stats = consume(URL, name, ingester, concurrency=concurrency, max_messages=n)
        consumed = time.perf_counter() - start
        assert stats.stored == n, stats
    finally:
        conn = open_connection(URL)
        topology.delete(conn)
        conn.release()
    return {"direct": n / direct, "enqueue": n / published, "consume": n / consumed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--store", default="memory,local")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        folder = tmp / "incoming"
        folder.mkdir()
        files = make_files(folder, args.n, args.size)
        print(f"{args.n} files of {files[0].stat().st_size} bytes; load average {os.getloadavg()}")
        print("| store | concurrency | direct files/s | enqueue msgs/s | consume msgs/s |")
        print("|---|---|---|---|---|")
        for kind in args.store.split(","):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                r = run(kind, concurrency, files, tmp)
                print(f"| {kind} | {concurrency} | {r['direct']:.0f} | {r['enqueue']:.0f} | {r['consume']:.0f} |",
                      flush=True)  # fmt: skip
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
