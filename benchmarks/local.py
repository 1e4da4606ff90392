#!/usr/bin/env python3
"""Benchmark: local -> local store, ocs_transfer against cp and rclone.

    .venv/bin/python benchmarks/local.py                 # full run, writes benchmarks/RESULTS-local.md
    .venv/bin/python benchmarks/local.py --quick         # small sizes, 2 runs, prints only

Cases (issue 3, section 6; PERFORMANCE.md, "How to measure"):

- one 1 GiB file, and 100 files of 10 MiB, copied from a source directory to
  an empty destination directory on the same disk, the source warm in the page
  cache;
- ocs_transfer: ``get_store(DEST).put(...)`` through the ``local`` provider,
  which hashes md5 + sha256 while copying, writes with O_DIRECT, reads every
  chunk back from the disk and compares it, publishes atomically (fsync) and
  checks the size; the many-files case uses 4 concurrent transfers, as
  rclone's default ``--transfers 4``;
- the same with ``read_back=False``: no second pass over the disk (what is
  written is still exactly what was hashed, one buffer for both);
- ``cp`` (no hashing, no verification, no fsync): the disk's ceiling;
- ``disk limit``: the store's default I/O pattern alone (O_DIRECT write,
  read-back from the disk, fsync, rename, directory fsync; 4 files at a time),
  with no hashing: what the disk allows a copy that re-reads what it wrote;
- Debian's ``rclone copy`` with default settings (which checks MD5 after each
  transfer: the MD5 of what it streamed, against the source's; it writes to
  the final name, and neither fsyncs nor reads the copy back, as ``strace``
  shows);
- each contender runs in its own process, measured with ``wait4``: wall time,
  user + system CPU, peak RSS. Our processes run ``local_child.py``, which
  imports only what storing needs, and find our modules compiled (``dev.py``
  compiles them, as pip does for an installed wheel; this machine sets
  ``PYTHONDONTWRITEBYTECODE``, so nothing else would). At least 5 runs;
  contenders alternate inside each run; ``sync`` between runs so one run's
  write-back does not slow the next.

Then the peak RSS of ocs_transfer storing one 2 GB file.

Not part of the test suite; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from local_child import CHUNK  # this folder is on sys.path when the script runs

MiB = 1 << 20
GiB = 1 << 30
HERE = Path(__file__).resolve().parent
#: What each contender process runs (its own small module: this one's imports would cost every run ~30 ms).
CHILD = HERE / "local_child.py"


# -- measuring -------------------------------------------------------------------------


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mib: float


def _measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[Sample, str]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024), out.decode()


def _sync() -> None:
    os.sync()
    time.sleep(0.5)


@dataclass
class Contender:
    name: str
    command: Callable[[list[Path], Path], list[str]]
    check: Callable[[str, list[Path], Path], None]
    env: dict[str, str] | None = None
    samples: dict[str, list[Sample]] = field(default_factory=dict)


def _digests(path: Path) -> tuple[str, str]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def _make_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size == size:
        return
    rnd = os.urandom(CHUNK)
    with open(path, "wb") as f:
        left = size
        i = 0
        while left:
            n = min(left, CHUNK)
            # vary every chunk so no two chunks are equal
            f.write(i.to_bytes(8, "little") + rnd[8:n] if n > 8 else rnd[:n])
            left -= n
            i += 1


def _warm(paths: list[Path]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(CHUNK):
                pass


def _contenders(expected: dict[str, tuple[str, str]]) -> list[Contender]:
    def ocs_cmd(sources: list[Path], dest: Path) -> list[str]:
        return [sys.executable, str(CHILD), "_ocs", str(dest), *map(str, sources)]

    def ocs_trusting_cmd(sources: list[Path], dest: Path) -> list[str]:
        return [*ocs_cmd([], dest), "--no-read-back", *map(str, sources)]

    def ocs_check(out: str, sources: list[Path], dest: Path) -> None:
        got = {r["path"]: (r["md5"], r["sha256"]) for r in map(json.loads, out.splitlines())}
        want = {s.name: expected[s.name] for s in sources}
        if got != want:
            raise RuntimeError("ocs_transfer reported hashes that differ from the source's")
        _check_sizes(sources, dest)

    def md5_cmd(sources: list[Path], dest: Path) -> list[str]:
        return [sys.executable, str(CHILD), "_md5", *map(str, sources)]

    def md5_check(out: str, sources: list[Path], dest: Path) -> None:
        got = {r["path"]: r["md5"] for r in map(json.loads, out.splitlines())}
        if got != {s.name: expected[s.name][0] for s in sources}:
            raise RuntimeError("read+md5 gave wrong hashes")

    def cp_cmd(sources: list[Path], dest: Path) -> list[str]:
        return ["cp", *map(str, sources), str(dest) + "/"]

    def disk_cmd(sources: list[Path], dest: Path) -> list[str]:
        return [sys.executable, str(CHILD), "_disk", str(dest), *map(str, sources)]

    def rclone_cmd(sources: list[Path], dest: Path) -> list[str]:
        src_dir = sources[0].parent
        if len(sources) == 1:
            return ["rclone", "copyto", str(sources[0]), str(dest / sources[0].name)]
        return ["rclone", "copy", str(src_dir), str(dest)]

    def sizes_only(out: str, sources: list[Path], dest: Path) -> None:
        _check_sizes(sources, dest)

    rclone_env = dict(os.environ)
    rclone_env["RCLONE_CONFIG"] = "/dev/null"  # no remotes needed; default settings
    rclone_env.pop("AWS_CA_BUNDLE", None)
    return [
        Contender("ocs_transfer", ocs_cmd, ocs_check),
        Contender("ocs_transfer, no read-back", ocs_trusting_cmd, ocs_check),
        Contender("cp", cp_cmd, sizes_only),
        Contender("rclone", rclone_cmd, sizes_only, env=rclone_env),
        Contender("read+md5 (limit)", md5_cmd, md5_check),
        Contender("disk limit (write + read-back, no hashing)", disk_cmd, sizes_only),
    ]


def _check_sizes(sources: list[Path], dest: Path) -> None:
    for s in sources:
        d = dest / s.name
        if not d.is_file() or d.stat().st_size != s.stat().st_size:
            raise RuntimeError(f"{d} is missing or has the wrong size")


def _run_case(case: str, sources: list[Path], work: Path, contenders: list[Contender], runs: int) -> None:
    _warm(sources)
    for run in range(runs):
        order = contenders[run % len(contenders):] + contenders[: run % len(contenders)]
        for c in order:
            dest = work / "dest"
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()
            _sync()
            sample, out = _measure(c.command(sources, dest), c.env)
            c.check(out, sources, dest)
            c.samples.setdefault(case, []).append(sample)
            total = sum(s.stat().st_size for s in sources)
            print(f"  {case} run {run + 1} {c.name:17s} {total / MiB / sample.wall:8.1f} MiB/s"
                  f"  cpu {sample.cpu:6.2f} s  rss {sample.rss_mib:7.1f} MiB", flush=True)
        shutil.rmtree(work / "dest", ignore_errors=True)


def _fmt(values: list[float], digits: int = 0) -> str:
    med = statistics.median(values)
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def _report(cases: dict[str, int], contenders: list[Contender], rss_2g: list[Sample], args: argparse.Namespace) -> str:
    lines = [
        "# Benchmark: local -> local (`benchmarks/local.py`)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}, "
        f"{_rclone_version()}, commit {_commit()}. {args.runs} runs per contender, alternated; "
        "median (min-max). Source warm in the page cache; destination on the same disk.",
        "",
        *([args.note, ""] if args.note else []),
        "ocs_transfer computes md5 and sha256 while copying, writes from the hashed buffers with O_DIRECT, reads",
        "every chunk back from the disk and compares it (`no read-back`: skips that second pass over the disk),",
        "publishes atomically (temp file, fsync, rename, directory fsync) and checks the size; its hashes were",
        "checked against the source's after every run. rclone (default settings) checks MD5 after each transfer:",
        "the MD5 of what it streamed against the source's; it writes to the final name and neither fsyncs nor",
        "reads the copy back (strace). cp neither hashes, verifies nor fsyncs.",
        "`disk limit` runs the store's default I/O pattern alone (O_DIRECT write, read-back from the disk, fsync,",
        "rename, directory fsync; 4 files at a time) with no hashing: the most the disk allows a copy that",
        "re-reads what it wrote.",
        "`read+md5 (limit)` only reads the source and computes its MD5 in one Python process (one core, no",
        "writing): the machine's read+MD5 limit at the time of the run, which PERFORMANCE.md's targets refer to",
        "(one file, >= 80 % of it).",
        "",
    ]
    for case, total in cases.items():
        lines += [f"## {case}", "", "| contender | MiB/s | CPU s / GiB | peak RSS MiB |", "|---|---|---|---|"]
        for c in contenders:
            samples = c.samples[case]
            lines.append(
                f"| {c.name} | {_fmt([total / MiB / s.wall for s in samples])} "
                f"| {_fmt([s.cpu / (total / GiB) for s in samples], 2)} "
                f"| {_fmt([s.rss_mib for s in samples])} |"
            )
        ours = statistics.median(total / MiB / s.wall for s in contenders[0].samples[case])
        for c in contenders[1:]:
            theirs = statistics.median(total / MiB / s.wall for s in c.samples[case])
            lines.append(f"\nocs_transfer / {c.name} (medians): {ours / theirs:.2f}x")
        lines.append("")
    if rss_2g:
        lines += [
            f"## ocs_transfer, one {args.huge / 1e9:g} GB file",
            "",
            f"Peak RSS {_fmt([s.rss_mib for s in rss_2g])} MiB, "
            f"{_fmt([args.huge / MiB / s.wall for s in rss_2g])} MiB/s over {len(rss_2g)} runs.",
            "",
        ]
    return "\n".join(lines)


def _rclone_version() -> str:
    try:
        out = subprocess.run(["rclone", "version"], capture_output=True, text=True, check=True).stdout
        return out.splitlines()[0]
    except (OSError, subprocess.CalledProcessError):
        return "rclone (version unknown)"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=HERE).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir on /tmp)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS-local.md")
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 runs, no results file")
    parser.add_argument("--huge", type=int, default=2_000_000_000, help="size of the peak-RSS file (bytes)")
    parser.add_argument("--note", default="", help="a sentence for the results file (what was measured, and how)")
    args = parser.parse_args(argv)
    big, many, count = (GiB, 10 * MiB, 100) if not args.quick else (64 * MiB, 1 * MiB, 20)
    if args.quick:
        args.runs, args.huge = 2, 128 * MiB
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ocs-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        single = [work / "single" / "big.bin"]
        multi = [work / "many" / f"f{i:03d}.bin" for i in range(count)]
        print("preparing source files ...", flush=True)
        _make_file(single[0], big)
        for p in multi:
            _make_file(p, many)
        expected = {p.name: _digests(p) for p in single + multi}
        contenders = _contenders(expected)
        cases = {
            f"one {big // MiB} MiB file": (single, big),
            f"{count} x {many // MiB} MiB files": (multi, count * many),
        }
        for case, (sources, _) in cases.items():
            print(f"{case}:", flush=True)
            _run_case(case, sources, work, contenders, args.runs)
        print(f"one {args.huge / 1e9:g} GB file, ocs_transfer peak RSS:", flush=True)
        huge = work / "huge" / "huge.bin"
        _make_file(huge, args.huge)
        expected[huge.name] = _digests(huge)
        ocs = _contenders(expected)[0]
        rss_2g = []
        for _ in range(3):
            dest = work / "dest"
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()
            _sync()
            sample, out = _measure(ocs.command([huge], dest))
            ocs.check(out, [huge], dest)
            rss_2g.append(sample)
            print(f"  rss {sample.rss_mib:.1f} MiB, {args.huge / MiB / sample.wall:.1f} MiB/s", flush=True)
        shutil.rmtree(work / "dest", ignore_errors=True)
        report = _report({k: v[1] for k, v in cases.items()}, contenders, rss_2g, args)
        print(report)
        if not args.quick:
            args.out.write_text(report + "\n")
            print(f"written to {args.out}")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
