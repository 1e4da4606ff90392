"""``ocs-transfer send`` on the example files shipped in the repo."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from ocs_transfer import plugins
from ocs_transfer.cli import main
from ocs_transfer.input import open_datafile
from ocs_transfer.storage import get_store


@pytest.fixture
def fits_files(examples_dir: Path) -> list[Path]:
    files = sorted(examples_dir.glob("*.fits*"))
    assert files
    return files


def _send(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["send", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_send_archive_layout_json(builtin_plugins_only: None, fits_files: list[Path]) -> None:
    dest = f"memory://send-{uuid.uuid4().hex}"
    code, out, err = _send(*map(str, fits_files), "--to", dest, "--layout", "archive", "--json")
    assert code == 0, err
    results = json.loads(out)
    assert [r["file"] for r in results] == [str(f) for f in fits_files]
    store = get_store(dest)
    for source, r in zip(fits_files, results, strict=True):
        data = source.read_bytes()
        assert r["ok"] is True
        assert r["md5"] == hashlib.md5(data).hexdigest()
        assert r["sha256"] == hashlib.sha256(data).hexdigest()
        assert r["size"] == len(data)
        # The archive layout is ocs_archive's path, which the data file also knows.
        with open_datafile(source) as data_file:
            assert r["path"] == data_file.get_filestore_path()
        with store.get_fileobj(r["path"]) as f:
            assert f.read() == data


def test_send_table_and_plain_progress_lines(builtin_plugins_only: None, fits_files: list[Path]) -> None:
    dest = f"memory://send-{uuid.uuid4().hex}"
    code, out, err = _send(*map(str, fits_files), "--to", dest)
    assert code == 0, err
    for f in fits_files:
        assert _md5(f) in out
        assert f"stored {f} -> " in err  # not a terminal: one plain line per file
    paths = {o.path for o in get_store(dest).list()}
    assert len(paths) == len(fits_files)
    assert all(p.count("/") == 1 for p in paths)  # by_target: target/file


def test_target_and_project_override(builtin_plugins_only: None, fits_files: list[Path]) -> None:
    dest = f"memory://send-{uuid.uuid4().hex}"
    code, out, err = _send(str(fits_files[0]), "--to", dest, "--layout", "by_project_and_target",
                           "--target", "M31/M32", "--project", "my project", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["path"] == f"my project/M31_M32/{fits_files[0].name}"


def test_template_layout(builtin_plugins_only: None, fits_files: list[Path]) -> None:
    dest = f"memory://send-{uuid.uuid4().hex}"
    code, out, err = _send(str(fits_files[0]), "--to", dest, "--layout", "{year}/{site}/{filename}", "--json")
    assert code == 0, err
    path = json.loads(out)[0]["path"]
    assert path.endswith("/" + fits_files[0].name) and path[:2] == "20"


@pytest.mark.parametrize("transfers", ["1", "3"])
def test_bad_files_are_reported_and_skipped(
    builtin_plugins_only: None, fits_files: list[Path], tmp_path: Path, transfers: str
) -> None:
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(fits_files[0].read_bytes()[:100])
    missing = tmp_path / "missing.fits"
    dest = f"memory://send-{uuid.uuid4().hex}"
    code, out, err = _send(str(truncated), str(fits_files[0]), str(missing), "--to", dest, "--json",
                           "--transfers", transfers)  # fmt: skip
    assert code == 1
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 2
    assert str(truncated) in error_lines[0] and str(missing) in error_lines[1]
    results = json.loads(out)
    assert [r["ok"] for r in results] == [False, True, False]
    assert {o.path for o in get_store(dest).list()} == {results[1]["path"]}


def test_unknown_layout_is_a_usage_error(builtin_plugins_only: None, fits_files: list[Path]) -> None:
    code, _, err = _send(str(fits_files[0]), "--to", "memory://x", "--layout", "by_telescope")
    assert code == 2
    assert "by_target" in err and "archive" in err


def test_unknown_template_field_is_a_usage_error(builtin_plugins_only: None, fits_files: list[Path]) -> None:
    code, _, err = _send(str(fits_files[0]), "--to", "memory://x", "--layout", "{telescope}/{filename}")
    assert code == 2
    assert "telescope" in err and "instrument" in err


def test_send_to_a_local_directory(all_plugins: None, fits_files: list[Path], tmp_path: Path) -> None:
    if "local" not in plugins.providers():
        pytest.skip("the local provider (ocs-transfer-local) is not installed")
    archive = tmp_path / "archive"
    code, out, err = _send(*map(str, fits_files), "--to", str(archive), "--layout", "archive", "--json")
    assert code == 0, err
    for source, r in zip(fits_files, json.loads(out), strict=True):
        assert (archive / r["path"]).read_bytes() == source.read_bytes()
    on_disk = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file())
    assert on_disk == sorted(r["path"] for r in json.loads(out))


def test_send_many_small_files_several_at_once(all_plugins: None, fits_files: list[Path], tmp_path: Path) -> None:
    """``--transfers 4``: 40 small files stored four at a time; the results
    (and the plain progress lines) come in the order of the files, every
    file is whole, and no temporary is left."""
    if "local" not in plugins.providers():
        pytest.skip("the local provider (ocs-transfer-local) is not installed")
    import numpy as np
    from astropy.io import fits

    with fits.open(next(f for f in fits_files if f.suffix == ".fits")) as example:
        header = example[0].header
    source = tmp_path / "frames"
    source.mkdir()
    for i in range(40):  # 5,760 bytes each: one header block, one data block
        frame = fits.PrimaryHDU(np.full((8, 8), i, dtype=np.int16))
        for key in ("PROPID", "DATE-OBS", "DAY-OBS", "INSTRUME", "SITEID", "TELID", "OBSTYPE", "BLKUID", "OBJECT"):
            frame.header[key] = header[key]
        frame.writeto(source / f"frame-{i:02d}.fits")
    archive = tmp_path / "archive"
    code, out, err = _send(str(source), "--to", str(archive), "--layout", "flat", "--transfers", "4", "--json")
    assert code == 0, err
    results = json.loads(out)
    files = sorted(source.iterdir())
    assert [r["file"] for r in results] == [str(f) for f in files]
    for f, r in zip(files, results, strict=True):
        assert r["ok"] and r["path"] == f.name
        assert r["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
        assert (archive / f.name).read_bytes() == f.read_bytes()
    assert sorted(p.name for p in archive.iterdir()) == [f.name for f in files]  # nothing hidden left
    code, _, err = _send(str(source), "--to", str(tmp_path / "again"), "--layout", "flat", "--transfers", "4")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("stored ")]
    assert lines == [f"stored {f} -> {f.name} ({f.stat().st_size / 1024:.1f} KiB)" for f in files]


def test_transfers_must_be_positive(builtin_plugins_only: None, fits_files: list[Path]) -> None:
    code, _, err = _send(str(fits_files[0]), "--to", "memory://x", "--transfers", "0")
    assert code == 2
    assert "--transfers" in err


@pytest.mark.parametrize("url", ["memory://[x", "s3://[bucket/prefix", "memory://run?link_base_url=https://[x"])
def test_a_destination_url_python_cannot_split_is_a_clear_error(
    builtin_plugins_only: None, fits_files: list[Path], url: str
) -> None:
    """Found by tests/storage/test_config_fuzz.py: urlsplit's ValueError was a traceback."""
    code, out, err = _send(str(fits_files[0]), "--to", url)
    assert code != 0 and "Traceback" not in out + err
    assert "[brackets]" in err or "https://" in err, err
