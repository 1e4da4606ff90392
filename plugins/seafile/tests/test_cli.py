"""The ``ocs-transfer seafile`` helpers, and the results service's path end
to end through the CLI: ``dest import`` of a backend record, ``dest test``,
``schedule``, ``worker --until-idle``, ``status`` with the share link."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ocs_transfer.cli import main

from .conftest import PASSWORD, USER, token_for, token_of
from .fake_seafile import FakeSeafile


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None, ok: bool = True):
    """Run the CLI; ``.text`` is what a user sees (the console script prints
    our errors as one line)."""
    result = CliRunner().invoke(main, list(args), input=input, env=env or {}, catch_exceptions=True)
    error = result.exception if result.exception and not isinstance(result.exception, SystemExit) else None
    result.text = result.output + (f"error: {error}" if error else "")  # type: ignore[attr-defined]
    if ok:
        assert result.exit_code == 0, result.text + repr(result.exception)
    return result


def test_get_token_from_stdin(fake: FakeSeafile) -> None:
    out = run("seafile", "get-token", "--server", fake.url, "--username", USER, "--password-stdin",
              input=PASSWORD + "\n").stdout  # fmt: skip
    assert out.splitlines()[0] == token_of(fake)


def test_get_token_prompts_without_echo(fake: FakeSeafile) -> None:
    result = run("seafile", "get-token", "--server", fake.url, "--username", USER, input=PASSWORD + "\n")
    assert token_of(fake) in result.stdout
    assert PASSWORD not in result.output  # hidden input is not echoed


def test_get_token_wrong_password(fake: FakeSeafile) -> None:
    result = run("seafile", "get-token", "--server", fake.url, "--username", USER, "--password-stdin",
                 input="wrong\n", ok=False)  # fmt: skip
    assert result.exit_code != 0 and "refused the user name or password" in result.text


def test_get_token_two_factor(fake: FakeSeafile) -> None:
    token = fake.add_user("otp@example.edu", "pw", otp="123456")
    result = run("seafile", "get-token", "--server", fake.url, "--username", "otp@example.edu",
                 "--password-stdin", input="pw\n", ok=False)  # fmt: skip
    assert result.exit_code != 0 and "two-factor" in result.text and "--otp" in result.text
    good = run("seafile", "get-token", "--server", fake.url, "--username", "otp@example.edu", "--password-stdin",
               "--otp", "123456", input="pw\n")  # fmt: skip
    assert good.stdout.splitlines()[0] == token


def test_list_repos(fake: FakeSeafile) -> None:
    fake.add_repo("Results")
    fake.add_repo("Private", encrypted=True)
    env = {"SEAFILE_TOKEN": token_of(fake)}
    listed = json.loads(run("seafile", "list-repos", "--server", fake.url, "--json", env=env).stdout)
    by_name = {r["name"]: r for r in listed}
    assert by_name["Private"]["encrypted"] is True and by_name["Results"]["permission"] == "rw"
    assert {r["id"] for r in listed} == set(fake.repos)
    table = run("seafile", "list-repos", "--server", fake.url, env=env).stdout
    assert "Results" in table and "encrypted" in table.splitlines()[0]
    assert token_of(fake) not in table


def test_list_repos_with_a_library_token_shows_its_library(fake: FakeSeafile) -> None:
    repo = fake.add_repo("Results")
    fake.add_repo("Other")
    env = {"SEAFILE_TOKEN": fake.add_repo_token(repo.id, permission="r")}
    (listed,) = json.loads(run("seafile", "list-repos", "--server", fake.url, "--json", env=env).stdout)
    assert listed["id"] == repo.id and listed["name"] == "Results" and listed["permission"] == "r"
    bad = run("seafile", "list-repos", "--server", fake.url, env={"SEAFILE_TOKEN": "f" * 40}, ok=False)
    assert bad.exit_code != 0 and "refused the token" in bad.text


def test_bad_server_url_is_refused_at_once() -> None:
    result = run("seafile", "list-repos", "--server", "seafile.example.edu", env={"SEAFILE_TOKEN": "x"}, ok=False)
    assert "scheme and host" in result.text


def test_results_service_record_end_to_end(fake: FakeSeafile, tmp_path: Path, token_kind: str) -> None:
    """With an account token, and with a library API token in the record's
    ``token`` (found out by asking the server)."""
    repo = fake.add_repo("Results")
    token = token_for(fake, repo, token_kind)
    env = {"OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
           "OCS_TRANSFER_KEYS": "k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode(),
           "OCS_TRANSFER_ACTIVE_KEY": "k1"}  # fmt: skip
    record = {"storage_backend": "Seafile", "storage_backend_id": "seafile", "storage_backend_keep_days": "10",
              "storage_backend_config": json.dumps({"token": token, "repoid": repo.id})}  # fmt: skip
    imported = run("dest", "import", "-", "--option", f"server_url={fake.url}", input=json.dumps(record), env=env)
    assert "provider seafile" in imported.output
    assert "ok:" in run("dest", "test", "Seafile", env=env).output
    results = tmp_path / "results.zip"
    data = os.urandom(300_000)
    results.write_bytes(data)
    run("schedule", str(results), "--to", "Seafile", env=env)
    run("worker", "--until-idle", "--poll", "0.05", env=env)
    status = json.loads(run("status", "--json", env=env).stdout)
    (transfer,) = status["transfers"]
    assert transfer["state"] == "completed"
    (link,) = fake.share_links.values()
    # a library token's links cannot expire (the route takes no expiry)
    assert transfer["link"] == link["link"] and link["expire_days"] == (10 if token_kind == "account" else None)
    assert link["path"] == "/results.zip"
    assert fake.read(repo.id, "/results.zip") == data
    assert fake.files(repo.id) == ["results.zip"]  # nothing else (no probe, no partial) was left
    shown = run("status", env=env).stdout
    assert "completed" in shown and link["link"] in shown
    assert token not in "".join([imported.output, shown, json.dumps(status)])
    if token_kind == "repo":
        assert not [t for s, _, t in fake.log if s == "seahub" and t.startswith("/api2/repos")]  # via-repo-token only


@pytest.mark.parametrize("missing", ["token", "repoid"])
def test_import_of_an_incomplete_record_fails_at_test(fake: FakeSeafile, tmp_path: Path, missing: str) -> None:
    env = {"OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
           "OCS_TRANSFER_KEYS": "k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode(),
           "OCS_TRANSFER_ACTIVE_KEY": "k1"}  # fmt: skip
    config = {"token": token_of(fake), "repoid": fake.add_repo("r").id}
    del config[missing]
    record = {"storage_backend": "Seafile", "storage_backend_id": "seafile", "storage_backend_config": config}
    run("dest", "import", "-", "--option", f"server_url={fake.url}", input=json.dumps(record), env=env)
    result = run("dest", "test", "Seafile", env=env, ok=False)
    assert result.exit_code != 0 and ("repo_id" in result.text or "token" in result.text)


def test_no_credential_shows_anywhere(fake: FakeSeafile, tmp_path: Path, token_kind: str) -> None:
    """The secrets scan (issue 19) over the commands a user runs, every
    logger at DEBUG (httpx's, httpcore's): the account or library token stays
    out of the output, the log, the ledger and the hook's payloads."""
    from ocs_transfer.testing.secrets import SecretScan, cli_round_trip

    repo = fake.add_repo("Results")
    token = token_for(fake, repo, token_kind)
    scan = SecretScan()
    scan.add(f"the {token_kind} token", token)
    env = {"OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
           "OCS_TRANSFER_KEYS": "k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode(),
           "OCS_TRANSFER_ACTIVE_KEY": "k1"}  # fmt: skip
    record = {"storage_backend_id": "seafile", "storage_backend_config": {"token": token, "repoid": repo.id}}
    files = []
    for i in range(2):
        (tmp_path / f"r{i}.zip").write_bytes(os.urandom(200_000 + i))
        files.append(str(tmp_path / f"r{i}.zip"))
    with scan.debug_logging(), scan.hook_payloads() as payloads:
        status = cli_round_trip(scan, env, "sea", ["import", "-", "--option", f"server_url={fake.url}"], files,
                                input=json.dumps(record))  # fmt: skip
    assert [t["state"] for t in status["transfers"]] == ["completed"] * 2
    assert len(payloads) == 2 and any("httpx" in line or "httpcore" in line for line in scan.log_lines)
    scan.check_ledger(env["OCS_TRANSFER_LEDGER_URL"])
