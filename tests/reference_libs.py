"""Other libraries we promise to behave like, installed in their own virtual
environments and run in subprocesses on the same input as ours.

A reference environment is built once per machine (``pip install`` from the
package index, about 40 s) and cached under
``$OCS_TRANSFER_REFERENCE_VENVS`` (default ``~/.cache/ocs-transfer/reference-venvs``),
named by a hash of what it holds, so a change of versions builds a new one.
Building is locked (several checkouts may run tests at once) and atomic (a
half-built environment is never used).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

#: ocs_archive 0.5.0 with the astropy and numpy we use, so that a difference is ocs_archive's, not astropy's.
OCS_ARCHIVE_05 = ("ocs-archive==0.5.0", f"astropy=={version('astropy')}", f"numpy=={version('numpy')}")

_MARKER = ".ocs-transfer-reference-complete"


def _cache_root() -> Path:
    configured = os.environ.get("OCS_TRANSFER_REFERENCE_VENVS")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ocs-transfer" / "reference-venvs"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def reference_venv(name: str, requirements: Sequence[str]) -> Path:
    """The path of a virtual environment holding ``requirements``, built if needed."""
    key = hashlib.sha256(json.dumps([sys.version, *requirements]).encode()).hexdigest()[:12]
    root = _cache_root()
    target = root / f"{name}-{key}"
    if (target / _MARKER).exists():
        return target
    with _locked(root / f"{name}-{key}.lock"):
        if (target / _MARKER).exists():
            return target
        building = root / f".{name}-{key}.building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        venv.EnvBuilder(with_pip=True).create(building)
        done = subprocess.run(
            [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             *requirements],
            capture_output=True, text=True, timeout=900,
        )
        if done.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            raise RuntimeError(f"could not install {' '.join(requirements)}: {done.stderr[-3000:]}")
        (building / _MARKER).write_text(" ".join(requirements))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(building, target)  # venvs run from a moved directory through bin/python
    return target


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A child environment without this project's or AWS's settings, plus ``extra``."""
    keep = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "SYSTEMROOT", "PIP_CONFIG_FILE")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def run_python(python: Path | str, code: str, payload: Any = None, *, env: Mapping[str, str] | None = None,
               cwd: Path | str | None = None, timeout: float = 120) -> Any:
    """Run ``code`` with ``python``, ``payload`` as JSON on stdin; return the JSON
    its last line of output holds. A failure shows the child's stderr."""
    done = subprocess.run(
        [str(python), "-c", code], input=json.dumps(payload), env=clean_env(env), cwd=cwd,
        capture_output=True, text=True, timeout=timeout,
    )
    if done.returncode != 0:
        raise AssertionError(f"{python} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise AssertionError(f"{python} printed nothing:\n{done.stderr[-4000:]}")
    return json.loads(lines[-1])


class Reference:
    """Runs scripts with a reference library's Python, and the same scripts with
    ours (imports rewritten by ``imports``), on the same input."""

    def __init__(self, python: Path, imports: Sequence[tuple[str, str]] = ()) -> None:
        self.python = python
        self.imports = tuple(imports)

    def ported(self, code: str) -> str:
        """``code`` with only its imports (module paths) changed, as a user would."""
        for old, new in self.imports:
            code = code.replace(old, new)
        return code

    def run(self, code: str, payload: Any = None, **kw: Any) -> Any:
        return run_python(self.python, code, payload, **kw)

    def run_ours(self, code: str, payload: Any = None, **kw: Any) -> Any:
        return run_python(sys.executable, self.ported(code), payload, **kw)

    def both(self, code: str, payload: Any = None, **kw: Any) -> tuple[Any, Any]:
        """``(theirs, ours)`` for the same script and input."""
        return self.run(code, payload, **kw), self.run_ours(code, payload, **kw)
