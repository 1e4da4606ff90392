"""What a new user hit (issue 12), each through the CLI as the docs show it."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ocs_transfer.cli import main
from ocs_transfer.settings import Settings
from ocs_transfer.storage import get_store
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine
from ocs_transfer.transfer.ledger import Ledger

from .conftest import FAULTS, data_for, unique_root
from .test_cli import Cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
FITS = sorted(EXAMPLES.glob("*.fits*"))
PDF_META = ["-m", "PROPID=LCO2015", "-m", "DATE-OBS=2015-02-19T13:56:05", "-m", "DAY-OBS=20150219",
            "-m", "INSTRUME=fa13", "-m", "SITEID=cpt", "-m", "TELID=1m0a", "-m", "OBSTYPE=EXPOSE", "-m", "BLKUID=1",
            "-m", "OBJECT=NGC 2070"]  # fmt: skip


@pytest.fixture
def cli(tmp_path: Path, faulty_provider: None) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def local_cli(tmp_path: Path, all_plugins: None) -> Cli:
    return Cli(tmp_path)


def _engine(cli: Cli) -> Engine:
    settings = Settings.from_env(cli.env)
    ledger = Ledger.from_settings(settings)
    return Engine(ledger, Destinations(ledger, KeyRing.from_settings(settings), settings=settings), settings=settings)


# -- destinations ------------------------------------------------------------------------


def test_edit_merges_options_and_unset_removes_one(cli: Cli) -> None:
    root = unique_root("merge")
    cli("dest", "add", "m", "--provider", "memory", "--option", f"root={root}")
    cli("dest", "edit", "m", "--option", "link_base_url=https://files.example.org/m")
    shown = json.loads(cli("dest", "show", "m", "--json").output)
    assert shown["options"] == {"root": root, "link_base_url": "https://files.example.org/m"}
    cli("dest", "edit", "m", "--unset-option", "link_base_url")
    assert json.loads(cli("dest", "show", "m", "--json").output)["options"] == {"root": root}
    bad = cli("dest", "edit", "m", "--unset-option", "nosuch", ok=False)
    assert bad.exit_code != 0 and "no option 'nosuch'" in str(bad.exception)


@pytest.mark.parametrize(
    ("provider", "options", "says"),
    [
        ("local", [], "needs option root"),
        ("memory", ["--option", "bogus=1"], "no option 'bogus'"),
        ("webdav", ["--option", "url=ftp://x"], "http:// or https://"),
        ("local", ["--option", "root=/tmp/x", "--option", "create_root=maybe"], "true or false"),
    ],
)
def test_add_checks_options_against_the_providers_config(
    local_cli: Cli, provider: str, options: list[str], says: str
) -> None:
    bad = local_cli("dest", "add", "d", "--provider", provider, *options, ok=False)
    assert bad.exit_code != 0 and says in str(bad.exception)
    assert "no destinations" in local_cli("dest", "list").output  # nothing was created


def test_add_refuses_a_local_root_that_is_a_file(local_cli: Cli, tmp_path: Path) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder")
    bad = local_cli("dest", "add", "d", "--provider", "local", "--option", f"root={afile}", ok=False)
    assert bad.exit_code != 0 and "is a file" in str(bad.exception) and str(afile) in str(bad.exception)
    assert "no destinations" in local_cli("dest", "list").output  # nothing was created
    local_cli("dest", "add", "d", "--provider", "local", "--option", f"root={tmp_path / 'archive'}")
    bad = local_cli("dest", "edit", "d", "--option", f"root={afile}", ok=False)
    assert "is a file" in str(bad.exception)
    assert afile.read_text() == "not a folder"


def test_edit_checks_options_too(cli: Cli) -> None:
    cli("dest", "add", "m", "--provider", "memory", "--option", f"root={unique_root('e')}")
    bad = cli("dest", "edit", "m", "--option", "rooot=/x", ok=False)
    assert "no option 'rooot'" in str(bad.exception)


def test_dest_test_without_credentials_needs_no_key_ring(cli: Cli) -> None:
    del cli.env["OCS_TRANSFER_KEYS"], cli.env["OCS_TRANSFER_ACTIVE_KEY"]
    cli("dest", "add", "plain", "--provider", "memory", "--option", f"root={unique_root('plain')}")
    assert "ok:" in cli("dest", "test", "plain").output


def test_dest_test_leaves_no_probe_folder(local_cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    local_cli("dest", "add", "disk", "--provider", "local", "--option", f"root={root}")
    assert "ok:" in local_cli("dest", "test", "disk").output
    assert list(root.iterdir()) == []


def test_dest_remove_of_a_missing_destination_fails_before_asking(cli: Cli) -> None:
    result = cli("dest", "remove", "nosuch", input="y\n", ok=False)
    assert result.exit_code != 0 and "no destination 'nosuch'" in str(result.exception)
    assert "remove destination" not in result.output


def test_dest_show_prints_readable_values(cli: Cli) -> None:
    root = unique_root("show")
    cli("dest", "add", "s", "--provider", "faulty-memory", "--option", f"root={root}", "--credentials-file", "-",
        input=json.dumps({"token": "t-1"}))  # fmt: skip
    out = cli("dest", "show", "s").output
    assert f"root={root}" in out and "{" not in out and "(" not in out and "None" not in out
    assert any(line.split() == ["credential_fields", "token"] for line in out.splitlines())


def test_comment_and_description_have_help(cli: Cli) -> None:
    out = " ".join(cli("dest", "add", "--help").output.split())
    assert "--comment TEXT" in out and "dest show" in out and "users who pick it" in out


def test_bad_numbers_are_refused(cli: Cli) -> None:
    assert cli("purge", "--days", "-1", ok=False).exit_code == 2
    assert cli("worker", "--threads", "0", "--until-idle", ok=False).exit_code == 2


# -- status ----------------------------------------------------------------------------------


def test_status_without_a_ledger_says_so_and_creates_none(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "nowhere.sqlite3"
    cli.env["OCS_TRANSFER_LEDGER_URL"] = f"sqlite:///{db}"
    result = cli("status", ok=False)
    assert result.exit_code != 0 and "there is no ledger" in str(result.exception)
    assert not db.exists()


def test_status_never_cuts_links_and_marks_cut_errors(cli: Cli) -> None:
    src = "memory:/" + unique_root("stsrc")
    store = get_store(src)
    for name in ("a.fits", "b.fits"):
        store.put(io.BytesIO(data_for(name, 1000)), name)
    base = "https://files.example.org/" + "very-long-segment/" * 8
    good, bad = unique_root("good"), unique_root("bad")
    cli("dest", "add", "good", "--provider", "faulty-memory", "--option", f"root={good}", "--option",
        f"link_base_url={base}")  # fmt: skip
    cli("dest", "add", "bad", "--provider", "faulty-memory", "--option", f"root={bad}")
    FAULTS[bad] = ["never"]
    cli("schedule", "a.fits", "--to", "good", "--source", src)
    cli("schedule", "b.fits", "--to", "bad", "--source", src)
    cli("worker", "--until-idle", "--poll", "0.01")
    out = cli("status").output
    assert base + "a.fits" in out
    assert "[...cut: `ocs-transfer status 2` shows it whole]" in out
    failed = json.loads(cli("status", "--json").output)["transfers"][1]
    whole = cli("status", "2").output
    assert failed["last_error"] in whole and "retry 2 --refresh" in whole
    assert "b.fits" in cli("status", "bad").output and "a.fits" not in cli("status", "bad").output


def test_status_shows_the_worker_and_heartbeat_of_a_running_transfer_not_an_old_error(cli: Cli) -> None:
    src = "memory:/" + unique_root("runsrc")
    get_store(src).put(io.BytesIO(data_for("r.fits", 1000)), "r.fits")
    cli("dest", "add", "d", "--provider", "faulty-memory", "--option", f"root={unique_root('run')}")
    cli("schedule", "r.fits", "--to", "d", "--source", src)
    cli("cancel", "1")
    cli("retry", "1")
    engine = _engine(cli)
    [(transfer_id, _)] = engine.claim(1)  # a worker took it and is running it
    line = next(li for li in cli("status").output.splitlines() if li.startswith(f"{transfer_id} "))
    assert f"running on {engine.worker_id}, heartbeat 0 s ago" in line and "cancelled" not in line
    engine.ledger.close()


# -- retry --refresh ---------------------------------------------------------------------------


def test_retry_refresh_uses_the_fixed_destination(local_cli: Cli, tmp_path: Path) -> None:
    cli = local_cli
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(FITS[0], source)
    missing, fixed = tmp_path / "not-there", tmp_path / "archive"
    fixed.mkdir()
    cli("dest", "add", "disk", "--provider", "local", "--option", f"root={missing}", "--option",
        "create_root=false", "--layout", "flat")  # fmt: skip
    cli("schedule", str(source / FITS[0].name), "--to", "disk")
    cli("worker", "--until-idle", "--poll", "0.01")
    error = json.loads(cli("status", "--json").output)["transfers"][0]["last_error"]
    assert "does not exist" in error and "retry 1 --refresh" in error
    cli("dest", "edit", "disk", "--option", f"root={fixed}")
    cli("retry", "1")  # as scheduled: fails the same way
    cli("worker", "--until-idle", "--poll", "0.01")
    assert json.loads(cli("status", "--json").output)["transfers"][0]["state"] == "failed"
    cli("retry", "1", "--refresh")
    cli("worker", "--until-idle", "--poll", "0.01")
    assert json.loads(cli("status", "--json").output)["transfers"][0]["state"] == "completed"
    assert (fixed / FITS[0].name).read_bytes() == FITS[0].read_bytes()
    assert (source / FITS[0].name).exists()  # nothing lost: the source stays


def test_retry_refresh_checks_the_new_path_as_schedule_does(local_cli: Cli, tmp_path: Path) -> None:
    cli = local_cli
    root = tmp_path / "archive"
    cli("dest", "add", "disk", "--provider", "local", "--option", f"root={root}", "--layout", "flat")
    nights = {}
    for night in ("night1", "night2"):
        path = tmp_path / night / FITS[0].name
        path.parent.mkdir()
        path.write_bytes(night.encode() * 1000)
        nights[night] = path
    cli("schedule", str(nights["night1"]), "--to", "disk")
    cli("cancel", "1")
    cli("schedule", str(nights["night2"]), "--to", "disk")  # 1 is cancelled: the path is free for 2
    refused = cli("retry", "1", "--refresh", ok=False)
    assert refused.exit_code != 0 and "already the target of transfer 2" in str(refused.exception)
    assert "was not refreshed" in str(refused.exception) and str(nights["night1"].parent) in str(refused.exception)
    states = {t["id"]: t["state"] for t in json.loads(cli("status", "--json").output)["transfers"]}
    assert states == {1: "cancelled", 2: "pending"}
    cli("worker", "--until-idle", "--poll", "0.01")
    assert (root / FITS[0].name).read_bytes() == b"night2" * 1000
    assert nights["night1"].read_bytes() == b"night1" * 1000  # nothing lost: both sources stay
    assert nights["night2"].read_bytes() == b"night2" * 1000


# -- schedule reads the files -----------------------------------------------------------------


def test_schedule_reads_each_files_metadata_for_the_layouts(local_cli: Cli, tmp_path: Path) -> None:
    cli = local_cli
    data = tmp_path / "data"
    shutil.copytree(EXAMPLES, data)
    roots = {name: tmp_path / name for name in ("bt", "bpt", "arch", "tpl")}
    layouts = ["by_target", "by_project_and_target", "archive", "{site}/{instrument}/{target}/{filename}"]
    for (name, root), layout in zip(roots.items(), layouts, strict=True):
        cli("dest", "add", name, "--provider", "local", "--option", f"root={root}", "--layout", layout)
    out = cli("schedule", str(data), "--include", "*.fits*", "--to", "bt", "--to", "bpt", "--to", "arch",
              "--to", "tpl").output  # fmt: skip
    assert len(out.strip().splitlines()) == 4 * len(FITS)
    sent = cli("send", *map(str, FITS), "--to", str(tmp_path / "sent"), "--layout", "archive", "--json")
    archive_paths = {r["path"] for r in json.loads(sent.output)}
    # the PDF has no headers: -m gives them
    cli("schedule", str(data / "cptnrs03-fa13-20150219-0001-e92-summary.pdf"), "--to", "bt", *PDF_META)
    cli("worker", "--until-idle", "--poll", "0.01")
    assert {t["state"] for t in json.loads(cli("status", "--json").output)["transfers"]} == {"completed"}
    arch = {p.relative_to(roots["arch"]).as_posix() for p in roots["arch"].rglob("*") if p.is_file()}
    assert arch == archive_paths
    targets = {p.parent.name for p in roots["bt"].rglob("*") if p.is_file()}
    assert "NGC 2070" in targets and len(targets) >= 2  # each file under its own OBJECT
    projects = {p.parent.parent.name for p in roots["bpt"].rglob("*") if p.is_file()}
    assert projects and "" not in projects
    for path in FITS:  # nothing lost: every source is still there, each copy is whole
        assert (data / path.name).read_bytes() == path.read_bytes()
        assert sum(1 for p in roots["tpl"].rglob(path.name)) == 1


def test_schedule_without_headers_says_to_use_m(local_cli: Cli, tmp_path: Path) -> None:
    local_cli("dest", "add", "bt", "--provider", "local", "--option", f"root={tmp_path / 'bt'}", "--layout",
              "by_target")  # fmt: skip
    bad = local_cli("schedule", str(EXAMPLES / "cptnrs03-fa13-20150219-0001-e92-summary.pdf"), "--to", "bt",
                    ok=False)  # fmt: skip
    assert "-m KEY=VALUE" in str(bad.exception)
    assert json.loads(local_cli("status", "--json").output)["transfers"] == []


# -- worker ----------------------------------------------------------------------------------


def test_worker_live_line(cli: Cli) -> None:
    src = "memory:/" + unique_root("livesrc")
    get_store(src).put(io.BytesIO(data_for("l.fits", 1000)), "l.fits")
    cli("dest", "add", "d", "--provider", "faulty-memory", "--option", f"root={unique_root('live')}")
    cli("schedule", "l.fits", "--to", "d", "--source", src)
    result = CliRunner().invoke(main, ["worker", "--until-idle", "--poll", "0.01", "--live"], env=cli.env)
    assert result.exit_code == 0, result.output
    assert "worker: 0 running, 1 finished" in result.stderr


def test_worker_logs_plain_lines_when_not_on_a_terminal(cli: Cli) -> None:
    src = "memory:/" + unique_root("plainsrc")
    get_store(src).put(io.BytesIO(data_for("p.fits", 1000)), "p.fits")
    cli("dest", "add", "d", "--provider", "faulty-memory", "--option", f"root={unique_root('plain')}")
    cli("schedule", "p.fits", "--to", "d", "--source", src)
    result = CliRunner().invoke(main, ["worker", "--until-idle", "--poll", "0.01"], env=cli.env)
    assert "transfer 1 completed: p.fits -> d:p.fits" in result.stderr
    assert "\x1b[" not in result.stderr


# -- send ----------------------------------------------------------------------------------------


def test_send_pdf_and_jpeg_with_metadata_and_directories(local_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    thumb = ["-m", "frame_basename=tfn0m419-sq32-20240426-0097-e91", "-m", "size=small", "-m", "DAY-OBS=20240426"]
    r1 = local_cli("send", str(EXAMPLES / "cptnrs03-fa13-20150219-0001-e92-summary.pdf"), "--to", str(out),
                   "--layout", "flat", *PDF_META, "--json")  # fmt: skip
    r2 = local_cli("send", str(EXAMPLES / "tfn0m419-sq32-20240426-0097-e91-small.jpg"), "--to", str(out),
                   "--layout", "flat", *PDF_META, *thumb, "--json", ok=False)  # fmt: skip
    assert json.loads(r1.output)[0]["ok"], r1.output
    assert r2.exit_code == 0, local_cli.outputs[-1]
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    for i, path in enumerate(FITS):
        shutil.copy(path, tree / ("a/b" if i % 2 else "a") / path.name)
    (tree / "a" / "notes.txt").write_text("not data")
    dirs = local_cli("send", str(tree), "--include", "*.fits*", "--exclude", "*e00*", "--to", str(tmp_path / "d"),
                     "--layout", "flat", "--json")  # fmt: skip
    sent = sorted(Path(r["file"]).name for r in json.loads(dirs.output))
    assert sent == sorted(p.name for p in FITS if "e00" not in p.name)


def test_send_to_a_ledger_destination_uses_its_layout_path_and_credentials(cli: Cli) -> None:
    root = unique_root("ledger-send")
    cli("dest", "add", "team", "--provider", "faulty-memory", "--option", f"root={root}", "--path", "/obs",
        "--layout", "flat", "--credentials-file", "-", input=json.dumps({"token": "tok-123"}))  # fmt: skip
    [r] = json.loads(cli("send", str(FITS[0]), "--to", "team", "--json").output)
    assert r["ok"] and r["path"] == f"obs/{FITS[0].name}"
    assert get_store("memory", root=root).get_file_size(r["path"]) == FITS[0].stat().st_size


def test_send_json_matches_the_docs(local_cli: Cli, tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "storage.md").read_text()
    bullet = " ".join(docs[docs.index("- `--json` prints"):].split("\n- ")[0].split())
    keys = [k for k in re.findall(r"`([a-z0-9_]+)`", bullet) if k != "json"]
    out = local_cli("send", str(FITS[0]), "--to", str(tmp_path / "j"), "--json").output
    results = json.loads(out)
    assert "a JSON list" in bullet and isinstance(results, list)
    assert set(results[0]) | {"error"} == set(keys)


def test_send_progress_shows_bytes_rate_and_eta(local_cli: Cli, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["send", *map(str, FITS), "--to", str(tmp_path / "p"), "--progress"],
                                env=local_cli.env)  # fmt: skip
    assert result.exit_code == 0, result.output
    err = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stderr)
    assert (f"all {len(FITS)} file(s)" in err and "kB" in err and "/s" in err) or "?" in err
    assert "0:00:00" in err  # the ETA column


def test_a_server_that_is_down_gives_one_error_and_no_clean_up_warning(
    local_cli: Cli, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ocs_transfer.testing.servers import free_port

    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"token": "t"}))
    down = f"webdav+http://127.0.0.1:{free_port()}/dav"
    args = ["send", str(FITS[0]), "--to", down, "--credentials-file", str(creds), "--no-progress"]
    result = CliRunner().invoke(main, args, env=local_cli.env)
    assert result.exit_code == 1
    assert "Connection refused" in result.stderr
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [w for w in warnings if "could not remove" in w], warnings
