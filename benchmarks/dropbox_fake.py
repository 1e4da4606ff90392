"""Dropbox uploads against the fake API (plugins/dropbox/tests/fake_dropbox.py),
unshaped: the fake runs in a child process on 127.0.0.1, so the numbers are
the client's own cost (SDK + hashing + HTTP) with a loopback link, not a
shaped link's ratio (the fault proxy has no bandwidth limit yet).

    .venv/bin/python benchmarks/dropbox_fake.py [--big-mib 512] [--small 64] [--small-mib 8] [--threads 4]

Prints MiB/s for one big file and for many small files (threads in parallel),
and the client process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins" / "dropbox" / "tests"))

MiB = 1 << 20


def _serve(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from fake_dropbox import FakeDropbox

    fake = FakeDropbox().start()
    queue.put((fake.url, fake.app_key, fake.app_secret, fake.refresh_token))
    while True:
        time.sleep(3600)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big-mib", type=int, default=512)
    parser.add_argument("--small", type=int, default=64)
    parser.add_argument("--small-mib", type=int, default=8)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=_serve, args=(queue,), daemon=True)
    server.start()
    url, key, secret, refresh = queue.get(timeout=30)
    from ocs_transfer.storage import get_store
    from ocs_transfer.testing import PatternReader

    creds = {"app_key": key, "app_secret": secret, "refresh_token": refresh}
    store = get_store("dropbox", credentials=creds, root="/bench", api_url=url, content_url=url)
    results = {}
    size = args.big_mib * MiB
    started = time.perf_counter()
    store.put(PatternReader(size), "big.bin", size=size)
    results["big"] = {"mib": args.big_mib, "mib_s": round(args.big_mib / (time.perf_counter() - started), 1)}
    small = args.small_mib * MiB

    def one(i: int) -> None:
        store.put(PatternReader(small), f"small/{i}.bin", size=small)

    started = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(one, range(args.small)))
    total = args.small * args.small_mib
    results["small"] = {"files": args.small, "mib_each": args.small_mib, "threads": args.threads,
                        "mib_s": round(total / (time.perf_counter() - started), 1)}  # fmt: skip
    results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))
    server.terminate()


if __name__ == "__main__":
    main()
