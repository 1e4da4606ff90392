#!/usr/bin/env python3
"""The input-side fuzz tests, run longer than the suite runs them (issue 19).

The suite runs each fuzz test with a fixed, derandomised budget. This runs
the same tests with many more examples and a random seed (printed, so a
failure can be replayed), one test module at a time, and prints per module
the wall time, hypothesis's statistics (examples run and their typical
time, per test) and the peak memory of the runs (the tests themselves fail any input whose traced memory
passes ``ocs_transfer.testing.fuzz.MEMORY_BOUND``)::

    .venv/bin/python benchmarks/fuzz.py                       # 2,000 examples per test
    .venv/bin/python benchmarks/fuzz.py --examples 20000 --seed 7
    .venv/bin/python benchmarks/fuzz.py tests/input/test_container_fuzz.py

A failing example is printed by hypothesis (with ``@example`` text to paste
into the test as a regression case). Record runs in ``benchmarks/RESULTS-fuzz.md``.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = (
    "tests/input/test_header_fuzz.py",
    "tests/input/test_container_fuzz.py",
    "tests/storage/test_config_fuzz.py",
    "tests/storage/test_paths.py",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", default=list(MODULES), help="test modules (default: all fuzz modules)")
    parser.add_argument("--examples", type=int, default=2000, help="examples per test (default 2000)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random, printed)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    env = {**os.environ, "OCS_TRANSFER_FUZZ_EXAMPLES": str(args.examples), "OCS_TRANSFER_FUZZ_SEED": str(seed)}
    print(f"seed {seed}, {args.examples} examples per test, load average {os.getloadavg()[0]:.1f}", flush=True)
    failed = 0
    for module in args.modules:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics", module],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        lines = done.stdout.strip().splitlines()
        print(f"{module}: {lines[-1] if lines else done.stderr[-300:]}; {elapsed:.0f} s,"
              f" peak RSS of the runs so far {peak_mib:.0f} MiB", flush=True)
        for line in lines:  # hypothesis's statistics: per test, examples run and their typical time
            text = line.strip()
            if (text.endswith(":") and "::" in text) or " passing, " in text or text.startswith("- Typical runtimes"):
                print("   ", text, flush=True)
        if done.returncode != 0:  # the failures, without the statistics that follow them
            failed += 1
            report = done.stdout.split("Hypothesis Statistics")[0]
            print(report[-8000:], flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
