"""Migration: an ingester-shaped service written for ocs_archive 0.5 runs on
ocs_transfer after only its imports change, and does the same as on
ocs_archive 0.5.0: the same archive records, the same version sets, the same
files at the same paths, the same links, sizes and bytes back, and nothing
left after deleting. Here on a local directory; tests/cloud/test_ocs_archive_compat.py
runs it against a moto S3 server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .ingester_05 import SCRIPT, assert_same_results, inputs


def run_both(ocs_archive_05: Any, tmp_path: Path, examples: Path, env: dict[str, str]) -> tuple[Any, Any]:
    src = tmp_path / "src"
    src.mkdir()
    items = inputs(examples, src)
    out = []
    for side in ("theirs", "ours"):
        root = tmp_path / side
        root.mkdir()
        side_env = {k: v.replace("{root}", str(root)) for k, v in env.items()}
        runner = ocs_archive_05.run if side == "theirs" else ocs_archive_05.run_ours
        out.append(runner(SCRIPT, items, env=side_env, cwd=tmp_path))
    return out[0], out[1]


def test_ingester_script_on_a_local_directory(ocs_archive_05: Any, examples_dir: Path, tmp_path: Path) -> None:
    env = {"FILESTORE_TYPE": "local", "FILESYSTEM_STORAGE_ROOT_DIR": "{root}",
           "FILESYSTEM_STORAGE_BASE_URL": "http://archive.example/files/"}
    theirs, ours = run_both(ocs_archive_05, tmp_path, examples_dir, env)
    assert "from ocs_archive" not in ocs_archive_05.ported(SCRIPT)  # only the imports changed: see OCS_ARCHIVE_IMPORTS
    assert_same_results(ours["results"], theirs["results"])
    assert ours["stored"] == theirs["stored"] and len(ours["stored"]) == len(list(examples_dir.iterdir()))
    assert ours["left"] == theirs["left"] == []
    by_name = {r["name"]: r for r in ours["results"]}
    assert by_name["broken.fits"] == {"name": "broken.fits", "error": "DoNotRetryError"}
    fz = by_name["coj1m011-kb05-20150219-0125-e90.fits.fz"]
    assert fz["url"] == "http://archive.example/files/" + fz["store_path"]
    assert fz["version"]["key"] == fz["version"]["md5"] and fz["version"]["extension"] == ".fits.fz"


def test_unset_filestore_type_is_refused_not_a_silent_dummy(ocs_archive_05: Any, examples_dir: Path,
                                                             tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    items = inputs(examples_dir, src)[:1]
    # (ocs_archive 0.5 falls back to its dummy store here, and reports the file stored while keeping nothing.)
    ours = ocs_archive_05.run_ours(SCRIPT, items, env={}, cwd=tmp_path)
    assert ours["results"][0] == {"name": items[0]["path"].rsplit("/", 1)[-1], "error": "DoNotRetryError"}
    dummy_theirs = ocs_archive_05.run(SCRIPT, items, env={"FILESTORE_TYPE": "dummy"}, cwd=tmp_path)
    dummy_ours = ocs_archive_05.run_ours(SCRIPT, items, env={"FILESTORE_TYPE": "dummy"}, cwd=tmp_path)
    # asked for explicitly, the dummy store behaves as ocs_archive's
    assert_same_results(dummy_ours.pop("results"), dummy_theirs.pop("results"))
    assert dummy_ours == dummy_theirs


@pytest.mark.parametrize("kind", ["connection", "specification"])
def test_store_errors_are_ocs_archive_classes(ocs_archive_05: Any, examples_dir: Path, tmp_path: Path,
                                              kind: str) -> None:
    from ocs_transfer.testing.servers import free_port

    src = tmp_path / "src"
    src.mkdir()
    items = inputs(examples_dir, src)[:1]
    if kind == "connection":  # nothing listens there: a retry may pass
        env = {"FILESTORE_TYPE": "s3", "BUCKET": "b", "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
               "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_MAX_ATTEMPTS": "1"}
        expected = "BackoffRetryError"
    else:
        env = {"FILESTORE_TYPE": "ftp"}
        expected = "DoNotRetryError"
    theirs = ocs_archive_05.run(SCRIPT, items, env=env, cwd=tmp_path, timeout=300)
    ours = ocs_archive_05.run_ours(SCRIPT, items, env=env, cwd=tmp_path, timeout=300)
    assert theirs["results"][0]["error"] == ours["results"][0]["error"] == expected
