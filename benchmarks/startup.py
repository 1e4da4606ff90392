#!/usr/bin/env python3
"""Start-up benchmark: wall time of short ``ocs-transfer`` commands.

Each command runs as a fresh process (what a user or a shell script pays),
contenders alternating inside every round, ``--runs`` rounds:

- ``python -c pass``: the interpreter alone, the floor;
- ``ocs-transfer --help``;
- ``ocs-transfer inspect`` of one ``.fits.fz`` (examples/data);
- ``ocs-transfer send`` of one tiny FITS file (one 2,880-byte header block with
  the required headers and no data) to a new local directory, no progress bars.

Bytecode is cached (``PYTHONDONTWRITEBYTECODE`` is dropped, ``PYTHONPYCACHEPREFIX``
points into the temporary folder), as in an installed package; the first
round, not recorded, warms that cache and the page cache.

Each run's wall time and CPU time (user + system, from ``getrusage``) are
recorded; on a shared machine the CPU time moves less with the load.

``--python`` names the interpreter of the installation to time (default: this
one); ``--baseline PYTHON`` times a second installation (e.g. the main
checkout's .venv) in the same rounds, for a before/after ratio. The load
average before and after is recorded with the results.

    python benchmarks/startup.py [--runs 15] [--baseline /work/main/.venv/bin/python] \
        [--out benchmarks/RESULTS-startup.md]

Not part of the test suite; ``python -X importtime`` shows where a command's
time goes.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FITS_FZ = ROOT / "examples" / "data" / "coj1m011-kb05-20150219-0125-e90.fits.fz"

TINY_CARDS = {
    "SIMPLE": True, "BITPIX": 8, "NAXIS": 0, "PROPID": "LCO2015A-001", "DATE-OBS": "2015-02-19T13:56:05.261",
    "DAY-OBS": "20150219", "INSTRUME": "kb05", "SITEID": "coj", "TELID": "1m0a", "OBSTYPE": "EXPOSE",
    "BLKUID": 12345, "OBJECT": "M61",
}


def _card(key: str, value: object) -> bytes:
    if isinstance(value, bool):
        text = "T" if value else "F"
    elif isinstance(value, int):
        text = str(value)
    else:
        text = "'" + str(value).replace("'", "''").ljust(8) + "'"
    return f"{key:<8}= {text:>20}".ljust(80).encode("ascii")


def tiny_fits(path: Path) -> None:
    """One header block, no data: the smallest FITS file ``send`` accepts."""
    header = b"".join(_card(k, v) for k, v in TINY_CARDS.items()) + b"END".ljust(80)
    path.write_bytes(header.ljust(2880, b" "))


def _time(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) milliseconds of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed * 1000, cpu * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--python", default=sys.executable, help="interpreter of the installation to time")
    parser.add_argument("--baseline", default=None, help="interpreter of a second installation, timed alongside")
    parser.add_argument("--out", type=Path, default=None, help="write the results table (markdown) here")
    args = parser.parse_args()

    installs = {"this": args.python}
    if args.baseline:
        installs["baseline"] = args.baseline
    with tempfile.TemporaryDirectory(prefix="ocs-startup-") as tmp_name:
        tmp = Path(tmp_name)
        tiny = tmp / "tiny-e00.fits"
        tiny_fits(tiny)
        cmds: dict[str, list[str]] = {"python -c pass": ["-c", "pass"]}
        entry = ["-c", "from ocs_transfer.cli import run; run()"]  # what the console script runs
        cmds["ocs-transfer --help"] = [*entry, "--help"]
        cmds["ocs-transfer inspect one .fits.fz"] = [*entry, "inspect", str(FITS_FZ)]
        cmds["ocs-transfer send one tiny file"] = [*entry, "send", str(tiny), "--to", "OUT", "--layout", "flat",
                                                    "--no-progress"]
        # Bytecode cached as in an installed package (pip compiles at install), in a folder of
        # our own so no checkout is written to; the warm-up round fills it.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        times: dict[tuple[str, str], list[float]] = {(i, c): [] for i in installs for c in cmds}
        cpus: dict[tuple[str, str], list[float]] = {(i, c): [] for i in installs for c in cmds}
        load_before = os.getloadavg()
        for round_no in range(args.runs + 1):  # round 0 warms the page cache and the bytecode cache, not recorded
            for label, argv in cmds.items():
                for install, python in installs.items():
                    out = tmp / f"out-{install}-{round_no}"
                    elapsed, cpu = _time([python, *[f"./{out.name}" if a == "OUT" else a for a in argv]], tmp, env)
                    shutil.rmtree(out, ignore_errors=True)
                    if round_no:
                        times[(install, label)].append(elapsed)
                        cpus[(install, label)].append(cpu)
        load_after = os.getloadavg()

    lines = [
        "| command | installation | wall median ms | wall min-max ms | CPU median ms |",
        "|---|---|---|---|---|",
    ]
    for label in cmds:
        for install, python in installs.items():
            t = times[(install, label)]
            median, low, high = statistics.median(t), min(t), max(t)
            cpu = statistics.median(cpus[(install, label)])
            lines.append(f"| {label} | {install} (`{python}`) | {median:.0f} | {low:.0f}-{high:.0f} | {cpu:.0f} |")
    if args.baseline:
        lines += ["", "| command | baseline / this, wall (medians) | baseline / this, CPU (medians) |", "|---|---|---|"]
        for label in cmds:
            wall = statistics.median(times[("baseline", label)]) / statistics.median(times[("this", label)])
            cpu = statistics.median(cpus[("baseline", label)]) / statistics.median(cpus[("this", label)])
            lines.append(f"| {label} | {wall:.2f}x | {cpu:.2f}x |")
    head = (
        f"`python benchmarks/startup.py --runs {args.runs}"
        + (f" --baseline {args.baseline}" if args.baseline else "")
        + f"`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}; load average before {load_before[0]:.2f} / {load_before[1]:.2f} /"
        f" {load_before[2]:.2f}, after {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f}."
    )
    text = head + "\n\n" + "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
