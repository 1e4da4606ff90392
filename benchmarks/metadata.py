#!/usr/bin/env python3
"""Metadata benchmark: time and peak memory to read a data file's archive record.

Generates, in a temporary directory, a 64 MiB ``.fits`` (an LCO header over an
int32 image), its ``.fits.fz`` (astropy CompImageHDU, RICE), a ~70 MiB
``.tar.gz`` (a small PDF, then a FITS of incompressible float32 data) and a
1 GiB ``.fits`` (sparse data). Each file is read by ocs_transfer and by
``ocs-archive`` 0.5.0 (PyPI, installed into a throwaway virtual environment,
since it pins its own dependencies), each read in a fresh subprocess after a
warm-up read of a small example file, contenders alternating, ``--runs``
times. Per read it records the wall time of constructing the DataFile and its
archive record, the growth of peak RSS (``ru_maxrss``) over the warmed-up
process, and, in a second read in the same process, the tracemalloc peak.

    python benchmarks/metadata.py [--runs 5] [--ocs-archive-python PATH] [--out benchmarks/RESULTS-metadata.md]

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "data" / "coj1m011-kb05-20150219-0125-e90.fits"
MiB = 1024 * 1024

# Runs inside the measuring subprocess. argv: contender, warm-up file, file.
PROBE = r"""
import json, resource, sys, time, tracemalloc
contender, warm, path = sys.argv[1:4]
if contender == "ocs_transfer":
    from ocs_transfer.input import File, FileFactory
    from ocs_transfer.settings import Settings
    settings = Settings()
    def read(p):
        with open(p, "rb") as fp:
            df = FileFactory.get_datafile(File(fp, p, settings=settings), {}, settings=settings)
            return df.get_header_data().get_archive_frame_data()
else:
    from ocs_archive.input.file import File
    from ocs_archive.input.filefactory import FileFactory
    def read(p):
        with open(p, "rb") as fp:
            f = File(fp, p)
            df = FileFactory.get_datafile_class_for_extension(f.extension)(f, {})
            return df.get_header_data().get_archive_frame_data()
def status(field):
    with open("/proc/self/status") as fp:
        for line in fp:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
read(warm)
try:  # reset the peak-RSS mark (Linux), so the peak below belongs to this read
    with open("/proc/self/clear_refs", "w") as fp:
        fp.write("5")
    base = status("VmRSS")
except OSError:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
record = read(path)
elapsed = time.perf_counter() - t0
rss = max(0, status("VmHWM") - base)
tracemalloc.start()
read(path)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({"seconds": elapsed, "rss": rss, "traced": peak, "site": record["site_id"],
                  "date": record["observation_date"]}))
"""


def lco_header():  # type: ignore[no-untyped-def]
    from astropy.io import fits

    with fits.open(EXAMPLE) as hdul:
        header = hdul[0].header.copy()
    for key in ("BSCALE", "BZERO", "CHECKSUM", "DATASUM"):
        header.remove(key, ignore_missing=True)
    return header


def generate(tmp: Path) -> list[Path]:
    import numpy as np
    from astropy.io import fits

    header = lco_header()
    rng = np.random.default_rng(42)
    files = []

    image = rng.integers(0, 1000, size=(4096, 4096), dtype=np.int32)  # 64 MiB
    p = tmp / "coj1m011-kb05-20150219-0125-e90.fits"
    fits.PrimaryHDU(image, header).writeto(p)
    files.append(p)

    p = tmp / "coj1m011-kb05-20150219-0125-e90.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(image, header, compression_type="RICE_1")]).writeto(p)
    files.append(p)
    del image

    noise = rng.random((4096, 4992), dtype=np.float32)  # 78 MiB, about 70 MiB gzipped
    member = io.BytesIO()
    fits.PrimaryHDU(noise, header).writeto(member)
    del noise
    p = tmp / "lscnrs01-fl09-20171109-0049-e91.tar.gz"
    with gzip.open(p, "wb", compresslevel=1) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        pdf = b"%PDF-1.4\n" + bytes(64 * 1024)
        info = tarfile.TarInfo("lscnrs01-fl09-20171109-0049-e91/summary.pdf")
        info.size = len(pdf)
        tar.addfile(info, io.BytesIO(pdf))
        info = tarfile.TarInfo("lscnrs01-fl09-20171109-0049-e91/lscnrs01-fl09-20171109-0049-e91.fits")
        info.size = member.getbuffer().nbytes
        member.seek(0)
        tar.addfile(info, member)
    files.append(p)

    p = tmp / "coj1m011-kb05-20150219-0126-e90.fits"
    big = fits.PrimaryHDU(header=header)
    big.header["BITPIX"] = 16
    big.header["NAXIS"] = 2
    big.header.insert("NAXIS", ("NAXIS1", 32768), after=True)
    big.header.insert("NAXIS1", ("NAXIS2", 16384), after=True)
    raw = big.header.tostring().encode()
    with open(p, "wb") as fp:
        fp.write(raw)
        fp.truncate(len(raw) + 32768 * 16384 * 2)  # 1 GiB of (sparse) data
    files.append(p)
    return files


def ocs_archive_python(tmp: Path) -> str:
    env_dir = tmp / "ocs-archive-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "ocs-archive==0.5.0"], check=True)
    return str(py)


def measure(python: str, contender: str, path: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSERVATION_PORTAL")}
    out = subprocess.run([python, "-c", PROBE, contender, str(EXAMPLE), str(path)], check=True,
                         capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def summary(values: list[float], scale: float, fmt: str) -> str:
    vals = [v / scale for v in values]
    return f"{statistics.median(vals):{fmt}} ({min(vals):{fmt}}-{max(vals):{fmt}})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ocs-archive-python", help="a Python with ocs-archive==0.5.0 installed")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS-metadata.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ocs-metadata-bench-") as tmpdir:
        tmp = Path(tmpdir)
        print("generating files ...", flush=True)
        files = generate(tmp)
        old_py = args.ocs_archive_python or ocs_archive_python(tmp)
        pythons = {"ocs_transfer": sys.executable, "ocs_archive": old_py}
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for run in range(args.runs):
            for path in files:
                order = list(pythons) if run % 2 == 0 else list(reversed(pythons))
                for contender in order:
                    r = measure(pythons[contender], contender, path)
                    results.setdefault((contender, path.name), []).append(r)
                    print(f"run {run + 1} {contender:12} {path.name:45} {r['seconds'] * 1000:9.2f} ms"
                          f" rss +{r['rss'] / MiB:7.1f} MiB traced {r['traced'] / MiB:7.2f} MiB", flush=True)
        lines = [
            "# Metadata benchmark",
            "",
            f"`python benchmarks/metadata.py --runs {args.runs}`, {time.strftime('%Y-%m-%d', time.gmtime())},"
            f" {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}."
            " Each cell: median (min-max) over the runs; every read in a fresh process after a warm-up read"
            " (imports done), files in the page cache. Time = building the DataFile and its archive record."
            " RSS = growth of the process's peak RSS during that read; traced = tracemalloc peak of a second"
            " read. ocs_archive = `ocs-archive==0.5.0` from PyPI in its own virtual environment.",
            "",
            "| file | size | contender | time (ms) | peak RSS growth (MiB) | traced peak (MiB) |",
            "|---|---|---|---|---|---|",
        ]
        for path in files:
            size = path.stat().st_size / MiB
            for contender in pythons:
                rs = results[(contender, path.name)]
                cells = (
                    summary([r["seconds"] for r in rs], 1e-3, ".2f"),
                    summary([r["rss"] for r in rs], MiB, ".2f"),
                    summary([r["traced"] for r in rs], MiB, ".2f"),
                )
                lines.append(f"| `{path.name}` | {size:,.1f} MiB | {contender} | " + " | ".join(cells) + " |")
        lines += ["", "| file | time ratio ocs_archive / ocs_transfer (medians) |", "|---|---|"]
        for path in files:
            new = statistics.median(r["seconds"] for r in results[("ocs_transfer", path.name)])
            old = statistics.median(r["seconds"] for r in results[("ocs_archive", path.name)])
            lines.append(f"| `{path.name}` | {old / new:,.0f}x |")
        same = all(
            results[("ocs_transfer", p.name)][0]["site"] == results[("ocs_archive", p.name)][0]["site"]
            and results[("ocs_transfer", p.name)][0]["date"] == results[("ocs_archive", p.name)][0]["date"]
            for p in files
        )
        lines += [
            "",
            f"Both contenders returned the same site and observation date for every file: {same}.",
            "",
            "The `.fits.fz` is the 64 MiB image RICE-compressed; the `.tar.gz` holds a 64 KiB PDF and then a FITS"
            " of incompressible float32 data; the 1 GiB `.fits` has sparse data. The machine is shared, so the"
            " maxima include other jobs' noise; the medians are the numbers to quote. Target: <= 2 ms and"
            " <= 2 MiB extra per file.",
            "",
        ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
