#!/usr/bin/env python3
"""Benchmark: `bundle` into the local provider against Info-ZIP's `zip -0`.

    .venv/bin/python benchmarks/bundle.py              # writes benchmarks/RESULTS-bundle.md
    .venv/bin/python benchmarks/bundle.py --quick      # small sizes, prints only

Cases:

- rate: 16 compressed FITS files (``.fits.fz``, random bytes: stored, as the
  bundle stores compressed members) of 64 MiB each, 1 GiB in all, warm in the
  page cache, zipped to a file on the same disk by
  ``zip -0 -q -j`` (CRC-32 only: no hashes, no verification, no fsync) and by
  :func:`ocs_transfer.storage.bundle.bundle_files` into the ``local`` store
  (CRC-32, md5 and sha256 of the archive while it is made; O_DIRECT writes
  read back and compared; atomic publish with fsync; size checked);
- peak RSS of a 2 GB bundle (1.75 GiB of ``.fits.fz`` and 256 MiB of text
  that is deflated), in its own process.

Each contender runs in its own process, measured with ``wait4`` (wall time,
CPU, peak RSS); contenders alternate inside each run; ``sync`` between runs.
Not part of the test suite; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1 << 20
HERE = Path(__file__).resolve().parent

CHILD = """
import sys
from pathlib import Path
from ocs_transfer_local.local import LocalStore
from ocs_transfer.storage.bundle import bundle_files, plan_members
src, dest = sys.argv[1], sys.argv[2]
with LocalStore.from_config(LocalStore.Config(root=dest)) as store:
    r = bundle_files(store, plan_members([src]), "bundle.zip")
print(r.stored.size)
"""


def run(argv: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds, peak RSS bytes of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{argv[0]} failed with status {status}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def make_files(folder: Path, count: int, size: int, suffix: str = ".fits.fz", text: bool = False) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    line = b"object=M31 filter=rp exposure=30.000 seeing=1.21 airmass=1.043\n"
    for i in range(count):
        with open(folder / f"frame{i:03d}{suffix}", "wb") as out:
            left = size
            while left:
                piece = (line * (MiB // len(line) + 1))[: min(MiB, left)] if text else os.urandom(min(MiB, left))
                out.write(piece)
                left -= len(piece)
    return count * size


def warm(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                while f.read(8 * MiB):
                    pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 2 if args.quick else 3
    count, size = (4, 32 * MiB) if args.quick else (16, 64 * MiB)
    python = sys.executable
    with tempfile.TemporaryDirectory(dir=HERE.parent) as tmp:
        base = Path(tmp)
        src = base / "src"
        total = make_files(src, count, size)
        warm(src)
        results: dict[str, list[tuple[float, float, int]]] = {"zip -0": [], "bundle": []}
        for _ in range(runs):
            for name in results:
                out = base / f"out-{name.replace(' ', '')}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                subprocess.run(["sync"], check=True)
                if name == "zip -0":
                    files = sorted(str(p) for p in src.iterdir())
                    results[name].append(run(["zip", "-0", "-q", "-j", str(out / "bundle.zip"), *files]))
                else:
                    results[name].append(run([python, "-c", CHILD, str(src), str(out)]))
        shutil.rmtree(src)
        rates = {name: statistics.median(total / MiB / r[0] for r in rs) for name, rs in results.items()}
        rss_src = base / "rss"
        rss_total = make_files(rss_src / "fz", 7, 256 * MiB) + make_files(rss_src / "txt", 1, 256 * MiB, ".txt", True)
        rss_out = base / "rss-out"
        rss_out.mkdir()
        rss = run([python, "-c", CHILD, str(rss_src), str(rss_out)])
    load = os.getloadavg()
    lines = [
        "# Bundle benchmark", "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        " (the machine is shared: other engineers' tests ran meanwhile).", "",
        f"## Rate: {count} `.fits.fz` files of {size // MiB} MiB ({total // MiB} MiB), warm, to the same disk,"
        f" median of {runs} runs", "",
        "| contender | MiB/s | wall s (each run) | CPU s (median) | peak RSS MiB |", "|---|---|---|---|---|",
    ]
    for name, rs in results.items():
        walls = ", ".join(f"{r[0]:.2f}" for r in rs)
        cpu = statistics.median(r[1] for r in rs)
        peak = max(r[2] for r in rs) / MiB
        lines.append(f"| {name} | {rates[name]:.0f} | {walls} | {cpu:.2f} | {peak:.0f} |")
    ratio = rates["bundle"] / rates["zip -0"]
    lines += ["", f"bundle / zip -0 = **{ratio:.2f}** (target: at least 0.8).", "",
              f"## Peak RSS of a {rss_total / 1e9:.1f} GB bundle (7 x 256 MiB stored, 256 MiB deflated)", "",
              f"{rss[2] / MiB:.0f} MiB peak RSS (limit: 150 MiB), {rss[0]:.1f} s wall, {rss[1]:.1f} s CPU.", ""]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        (HERE / "RESULTS-bundle.md").write_text(text)


if __name__ == "__main__":
    main()
