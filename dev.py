#!/usr/bin/env python3
"""Set up and run ocs_transfer's everyday jobs with nothing but Python.

    python3 dev.py demo    # set up .venv, store the example files under ./demo (local disk, SQLite ledger)
    python3 dev.py test    # set up .venv, run ruff, mypy and the whole test suite

The virtual environment lives in ``.venv`` beside this file and is created on
first use; later runs reinstall only when a pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
PLUGINS = ["local", "dropbox", "gdrive", "seafile", "_template"]
#: Example packages under examples/, installed too so their tests run with the suite.
EXAMPLE_PACKAGES = ["ocs-transfer-scratch"]
EXTRAS = "s3,gcs,postgres,queue,celery,test"


def _run(*args: str | Path, **kw: object) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def _stamp() -> str:
    h = hashlib.sha256()
    examples = [ROOT / "examples" / n / "pyproject.toml" for n in EXAMPLE_PACKAGES]
    for p in [ROOT / "pyproject.toml", *(ROOT / "plugins" / n / "pyproject.toml" for n in PLUGINS), *examples]:
        h.update(p.read_bytes())
    return h.hexdigest()


def setup() -> None:
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    marker = VENV / ".ocs-transfer-installed"
    stamp = _stamp()
    if not marker.exists() or marker.read_text() != stamp:
        editable = [f"-e{ROOT}[{EXTRAS}]"] + [f"-e{ROOT / 'plugins' / n}" for n in PLUGINS]
        editable += [f"-e{ROOT / 'examples' / n}" for n in EXAMPLE_PACKAGES]
        _run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        _run(PY, "-m", "pip", "install", "--quiet", *editable)
        marker.write_text(stamp)
    _compile()


def _compile() -> None:
    """Bytecode for our own packages, as pip makes for an installed wheel.

    Editable installs get none, and where PYTHONDONTWRITEBYTECODE is set (as on
    this project's machines) Python never caches it, so every process would
    compile our modules again: about 30 ms of each command's start. Only
    changed files are compiled.
    """
    packages = [ROOT / "ocs_transfer", *(p for n in PLUGINS for p in (ROOT / "plugins" / n).glob("ocs_transfer_*"))]
    subprocess.run([str(PY), "-m", "compileall", "-q", *map(str, packages)], check=True, stdout=subprocess.DEVNULL)


def test(extra: list[str]) -> int:
    setup()
    _run(BIN / "ruff", "check", "ocs_transfer", "plugins", "tests", "benchmarks", "dev.py")
    _run(BIN / "mypy")
    return subprocess.run([str(PY), "-m", "pytest", *extra], cwd=ROOT).returncode


def demo() -> int:
    """The main job on the embedded default: local disk and a SQLite ledger,
    everything under ./demo (recreated on each run)."""
    setup()
    import shutil

    work = ROOT / "demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    examples = sorted(str(p) for p in (ROOT / "examples" / "data").glob("*.fits*"))
    cli = str(BIN / "ocs-transfer")
    env = {**os.environ, "OCS_TRANSFER_LEDGER_URL": f"sqlite:///{work / 'ledger.sqlite3'}"}
    steps = [
        # 1. Store the files now, in the archive layout, verified.
        [cli, "send", *examples, "--to", str(work / "archive"), "--layout", "archive"],
        # 2. Copy them to a destination through the ledger, as a scheduler would.
        [cli, "dest", "add", "copies", "--provider", "local", "--option", f"root={work / 'copies'}",
         "--layout", "flat", "--description", "demo destination on local disk"],
        [cli, "schedule", *examples, "--to", "copies"],
        [cli, "worker", "--until-idle"],
        [cli, "status"],
    ]  # fmt: skip
    for cmd in steps:
        print("+", " ".join(os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c for c in cmd), flush=True)
        code = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        if code:
            return code
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "setup"):
        print(__doc__)
        return 2
    if argv[0] == "setup":
        setup()
        return 0
    try:
        return demo() if argv[0] == "demo" else test(argv[1:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
