#!/usr/bin/env python3
"""Mutation run over the safety-critical modules (not in CI: too slow).

Small deliberate bugs (mutants) are put into one module at a time by
cosmic-ray, and the tests that concern that module are run against each; a
mutant the tests still pass ("survived") is a bug the suite would not notice.
Every survivor is either killed by a new test or explained in
``benchmarks/RESULTS-mutation.md``. Re-run this when the modules change::

    .venv/bin/pip install cosmic-ray==8.7.0      # not a test dependency: only this script uses it
    .venv/bin/python benchmarks/mutation.py                      # every module, 8 min each
    .venv/bin/python benchmarks/mutation.py paths retry --budget 300 --sample 0
    .venv/bin/python benchmarks/mutation.py --list               # the modules and their tests

The run happens in a copy of the tree under a temporary directory (cosmic-ray
edits the module in place; a killed run must not leave a bug in the work
tree), with ``PYTHONPATH`` pointing the tests at the copy. Mutants are tried
in a random order fixed by ``--seed``, so a time budget samples the whole
module rather than its first lines. ``--sample N`` tries at most N mutants per
module (0: all). Results go to ``benchmarks/mutation-results/<module>.json``
(one record per mutant: operator, line, outcome, diff) and a summary to stdout.

cosmic-ray was chosen over mutmut because it runs an arbitrary test command
per mutant (our tests start real servers and subprocesses, which mutmut's
in-process trampolines do not reach) and works with Python 3.11 and this
layout as it is.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "mutation-results"
PY = Path(sys.executable)


@attrs.frozen
class Target:
    module: str  #: the file mutated, relative to the repo root
    tests: tuple[str, ...]  #: the test files that concern it
    functions: tuple[str, ...] = ()  #: only mutants inside these functions (empty: all)
    deferred: str = ""  #: why it is not run now (empty: it is)


TARGETS: dict[str, Target] = {
    "paths": Target("ocs_transfer/storage/paths.py", ("tests/storage/test_paths.py",)),
    "hashing": Target("ocs_transfer/storage/hashing.py", ("tests/storage/test_fsspec_store.py",)),
    "verify": Target(
        "ocs_transfer/storage/fsspec_store.py",
        ("tests/storage/test_fsspec_store.py", "tests/storage/test_conformance_memory.py",
         "tests/cloud/test_checksum_mismatch.py"),
        functions=("put", "_verify", "_discard"),
    ),
    "retry": Target("ocs_transfer/retry.py", ("tests/core/test_retry.py", "tests/core/test_exceptions.py")),
    "crypto": Target("ocs_transfer/transfer/crypto.py", ("tests/transfer/test_crypto.py",)),
    "fitsheader": Target(
        "ocs_transfer/input/fitsheader.py",
        ("tests/input/test_header_cards.py", "tests/input/test_bad_input.py", "tests/input/test_fits.py",
         "tests/input/test_header_fuzz.py", "tests/input/test_headers_property.py"),
    ),
    "engine": Target(
        "ocs_transfer/transfer/core.py",
        ("tests/transfer/test_engine.py", "tests/transfer/test_data_safety.py",
         "tests/transfer/test_completion_and_deletion.py", "tests/transfer/test_lifecycle_statemachine.py"),
        functions=("_record_success", "_record_failure", "_finished", "delete_source_if_done", "_delete_source",
                   "_undo_deleting"),
    ),
    "engine-lifecycle": Target(
        "ocs_transfer/transfer/lifecycle.py",
        ("tests/transfer/test_engine.py", "tests/transfer/test_data_safety.py",
         "tests/transfer/test_completion_and_deletion.py", "tests/transfer/test_lifecycle_statemachine.py"),
        functions=("reclaim", "finish_source_deletions"),
    ),
}


def _copy_tree(dest: Path) -> None:
    for name in ("ocs_transfer", "tests", "plugins", "examples", "pyproject.toml"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".venv"))
        else:
            shutil.copy2(src, dest / name)


def _annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the module's annotations are. Every module here starts with
    ``from __future__ import annotations``: annotations are never evaluated,
    so a mutant inside one (``str | None`` -> ``str - None``) cannot change
    behaviour. Such mutants are counted as equivalent and not run."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.arg):
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for a in annotations:
            if a is not None and a.end_lineno is not None and a.end_col_offset is not None:
                spans.append(((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)))
    return spans


def _in_annotation(mutation: dict[str, Any], spans: list[tuple[tuple[int, int], tuple[int, int]]]) -> bool:
    line, col = mutation["start_pos"]
    return any(start <= (line, col) < end for start, end in spans)


def _work_items(copy: Path, target: Target) -> list[dict[str, Any]]:
    """Every mutant cosmic-ray makes for the module, as dicts."""
    config = copy / "cosmic-ray.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{target.module}"\n'
        "timeout = 60.0\n"
        "excluded-modules = []\n"
        'test-command = "true"\n'
        '[cosmic-ray.distributor]\nname = "local"\n'
    )
    session = copy / "session.sqlite"
    cr = PY.parent / "cosmic-ray"
    subprocess.run([str(cr), "init", str(config), str(session)], cwd=copy, check=True)
    dump = subprocess.run([str(cr), "dump", str(session)], cwd=copy, check=True, capture_output=True, text=True)
    source = (copy / target.module).read_text()
    future = "from __future__ import annotations" in source
    spans = _annotation_spans(source) if future else []
    items = []
    for line in dump.stdout.splitlines():
        work, _result = json.loads(line)
        mutation = work["mutations"][0]
        if target.functions and mutation.get("definition_name") not in target.functions:
            continue
        mutation["in_annotation"] = _in_annotation(mutation, spans)
        items.append(mutation)
    return items


def _run_one(copy: Path, mutation: dict[str, object], test_command: str, timeout: float) -> dict[str, object]:
    cr = PY.parent / "cosmic-ray"
    args = [str(cr), "mutate-and-test", str(mutation["module_path"]), str(mutation["operator_name"]),
            str(mutation["occurrence"]), test_command]
    try:
        done = subprocess.run(args, cwd=copy, capture_output=True, text=True, timeout=timeout)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        result = {"worker_outcome": "timeout", "test_outcome": "killed", "diff": "", "output": "timed out"}
        # the worker was killed mid-run: put the module back from the work tree
        shutil.copy2(ROOT / str(mutation["module_path"]), copy / str(mutation["module_path"]))
    except (ValueError, IndexError):
        result = {"worker_outcome": "abnormal", "test_outcome": "incompetent", "diff": "", "output": done.stderr}
    return {
        "operator": mutation["operator_name"],
        "occurrence": mutation["occurrence"],
        "line": mutation["start_pos"][0] if isinstance(mutation["start_pos"], list) else None,
        "function": mutation.get("definition_name"),
        "outcome": result.get("test_outcome"),
        "worker": result.get("worker_outcome"),
        "diff": result.get("diff", ""),
    }


def run_target(
    name: str, target: Target, *, budget: float, sample: int, seed: int, survivors_of: dict[str, Any] | None = None
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"mutation-{name}-") as tmp:
        copy = Path(tmp)
        _copy_tree(copy)
        items = _work_items(copy, target)
        random.Random(seed).shuffle(items)
        if survivors_of is not None:  # only the mutants that survived the recorded run
            keep = {(r["operator"], r["occurrence"]) for r in survivors_of["results"] if r["outcome"] == "survived"}
            items = [m for m in items if (m["operator_name"], m["occurrence"]) in keep]
        if sample:
            items = items[:sample]
        env_py = f"env PYTHONPATH={copy} {PY}"
        test_command = f"{env_py} -m pytest -x -q -p no:cacheprovider {' '.join(target.tests)}"
        annotation_only = [m for m in items if m["in_annotation"]]
        items = [m for m in items if not m["in_annotation"]]
        started = time.monotonic()
        baseline = subprocess.run(test_command.split(), cwd=copy, capture_output=True, text=True)
        if baseline.returncode != 0:
            print(f"{name}: the tests fail without any mutant; not run:\n{baseline.stdout[-3000:]}", flush=True)
            return {"module": target.module, "tried": 0, "mutants": len(items), "killed": 0, "survived": 0,
                    "incompetent": 0, "results": []}
        per_mutant = max(30.0, 5 * (time.monotonic() - started))
        results = []
        deadline = time.monotonic() + budget
        for mutation in items:
            if time.monotonic() > deadline:
                break
            results.append(_run_one(copy, mutation, test_command, per_mutant))
    survived = [r for r in results if r["outcome"] == "survived"]
    summary = {
        "module": target.module,
        "tests": list(target.tests),
        "mutants": len(items),
        "tried": len(results),
        "killed": sum(r["outcome"] == "killed" for r in results),
        "survived": len(survived),
        "incompetent": sum(r["outcome"] == "incompetent" for r in results),
        "equivalent_in_annotations": len(annotation_only),
        "seed": seed,
        "results": results,
    }
    OUT.mkdir(exist_ok=True)
    if survivors_of is not None:
        summary["rerun_of_survivors"] = True
        summary["first_run"] = {k: survivors_of[k] for k in ("mutants", "tried", "killed", "survived")}
    (OUT / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default: all not deferred)")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds per module (default 480)")
    parser.add_argument("--sample", type=int, default=0, help="at most this many mutants per module (0: all)")
    parser.add_argument("--seed", type=int, default=20, help="order in which mutants are tried")
    parser.add_argument("--list", action="store_true", help="show the modules and their tests, run nothing")
    parser.add_argument("--survivors", action="store_true",
                        help="try again only the mutants that survived the run recorded in mutation-results/")
    args = parser.parse_args()
    if args.list:
        for name, t in TARGETS.items():
            deferred = f"  [deferred: {t.deferred}]" if t.deferred else ""
            print(f"{name:11} {t.module}  <- {', '.join(t.tests)}{deferred}")
        return 0
    if shutil.which("cosmic-ray", path=str(PY.parent)) is None:
        print("cosmic-ray is not installed: .venv/bin/pip install cosmic-ray==8.7.0", file=sys.stderr)
        return 2
    names = args.targets or [n for n, t in TARGETS.items() if not t.deferred]
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")  # the copy must not keep stale bytecode of a mutant
    for name in names:
        previous = None
        if args.survivors:
            previous = json.loads((OUT / f"{name}.json").read_text())
        s = run_target(name, TARGETS[name], budget=args.budget, sample=args.sample, seed=args.seed,
                       survivors_of=previous)
        print(f"{name}: {s['tried']}/{s['mutants']} tried, {s['killed']} killed, {s['survived']} survived,"
              f" {s['incompetent']} incompetent, {s.get('equivalent_in_annotations', 0)} in annotations (not run)",
              flush=True)
        for r in s["results"]:  # type: ignore[attr-defined]
            if r["outcome"] == "survived":
                print(f"  survived: line {r['line']} {r['operator']} in {r['function']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
