"""The way users reach Dropbox: import the results service's backend record,
test it, schedule files, run the worker, see them completed with links; and
authorize an account (library functions and the CLI)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from fake_dropbox import FakeDropbox

from ocs_transfer.cli import main

DATA = Path("/work/shared/data/lco")


def _env(tmp_path: Path) -> dict[str, str]:
    key = base64.b64encode(os.urandom(32)).decode()
    return {"OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}", "OCS_TRANSFER_KEYS": f"k1:{key}",
            "OCS_TRANSFER_ACTIVE_KEY": "k1", "OCS_TRANSFER_CHUNK_SIZE": "4194304"}  # fmt: skip


def _run(env: dict[str, str], *args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_import_test_schedule_work_status(fake: FakeDropbox, tmp_path: Path) -> None:
    env = _env(tmp_path)
    record = {
        "storage_backend": "Ada's Dropbox",
        "storage_backend_id": "dropbox",
        "storage_backend_config": {
            "app_key": fake.app_key, "app_secret": fake.app_secret, "refresh_token": fake.refresh_token,
            # where the results service's record would say nothing (the real Dropbox), the test points at the fake
            "api_url": fake.url, "content_url": fake.url, "root": "/fits-data",
        },
    }  # fmt: skip
    (tmp_path / "record.json").write_text(json.dumps(record))
    out = _run(env, "dest", "import", str(tmp_path / "record.json"), "--name", "adabox")
    assert "provider dropbox" in out
    shown = json.loads(_run(env, "dest", "show", "adabox", "--json"))
    assert shown["credential_fields"] == ["app_key", "app_secret", "refresh_token"]
    assert fake.refresh_token not in json.dumps(shown)
    out = _run(env, "dest", "test", "adabox")
    assert "ok" in out.lower() and fake.names() == []  # the probe was written and removed
    files = sorted(DATA.glob("*.fits*"))[:2] if DATA.exists() else []
    if not files:
        pytest.skip("the LCO sample files are not on this machine")
    local = []
    for f in files:
        shutil.copy(f, tmp_path / f.name)
        local.append(str(tmp_path / f.name))
    _run(env, "schedule", *local, "--to", "adabox", "--target", "M31")
    _run(env, "worker", "--until-idle", "--poll", "0.01", "--threads", "2")
    status = json.loads(_run(env, "status", "--json"))
    assert status["counts"]["adabox"] == {"completed": len(local)}
    for transfer in status["transfers"]:
        assert transfer["state"] == "completed" and transfer["link"].startswith(fake.url + "/s/")
    stored = {name.rsplit("/", 1)[-1]: hashlib.sha256(fake.read(name)).hexdigest() for name in fake.names()}
    assert stored == {Path(p).name: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in local}
    assert "completed" in _run(env, "status")


def test_authorize_library_functions(fake: FakeDropbox) -> None:
    from ocs_transfer_dropbox.auth import authorize_url, exchange_code

    request = authorize_url(fake.app_key, "https://portal.example.org/dropbox/callback")
    query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
    assert query["token_access_type"] == "offline" and query["code_challenge_method"] == "S256"
    assert query["state"] == request.state and query["client_id"] == fake.app_key
    assert request.code_verifier.reveal() not in request.url
    code = fake.issue_code(query["code_challenge"], query["redirect_uri"])
    result = exchange_code(fake.app_key, code, request.code_verifier, redirect_uri=query["redirect_uri"],
                           api_url=fake.url)  # fmt: skip
    assert result.email == fake.email and result.refresh_token.reveal() in fake.refresh_tokens
    assert result.refresh_token.reveal() not in repr(result)
    from ocs_transfer.exceptions import CredentialError

    with pytest.raises(CredentialError, match="start the authorization again"):
        exchange_code(fake.app_key, code, request.code_verifier, redirect_uri=query["redirect_uri"], api_url=fake.url)


def test_authorize_command_stores_into_a_destination(
    fake: FakeDropbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ocs_transfer_dropbox import auth

    env = _env(tmp_path)
    _run(env, "dest", "add", "box", "--provider", "dropbox", "--option", f"api_url={fake.url}",
         "--option", f"content_url={fake.url}")  # fmt: skip
    made = []
    original = auth.authorize_url

    def remember(*args: object, **kw: object) -> auth.AuthorizeRequest:
        request = original(*args, **kw)  # type: ignore[arg-type]
        made.append(request)
        return request

    # the user's browser step: the fake issues the code for the challenge the command printed
    monkeypatch.setattr("ocs_transfer_dropbox.cli.authorize_url", remember)
    runner = CliRunner()

    def code_for_printed_url() -> str:
        query = parse_qs(urlsplit(made[-1].url).query)
        return fake.issue_code(query["code_challenge"][0], "")

    command = ["dropbox", "authorize", "--app-key", fake.app_key, "--app-secret", fake.app_secret, "--dest", "box",
               "--api-url", fake.url]  # fmt: skip
    result = runner.invoke(main, [*command, "--code", "placeholder"], env=env)
    assert result.exit_code != 0  # a wrong code is refused clearly
    assert "start the authorization again" in result.output + str(result.exception)
    made.clear()
    original_prompt = __import__("click").prompt
    monkeypatch.setattr(
        "click.prompt", lambda text, **kw: code_for_printed_url() if text == "code" else original_prompt(text, **kw)
    )
    result = runner.invoke(main, command, env=env)
    assert result.exit_code == 0, result.output
    assert f"authorized as {fake.email}" in result.output
    assert "ok" in _run(env, "dest", "test", "box").lower()


def test_no_credential_shows_anywhere(fake: FakeDropbox, tmp_path: Path) -> None:
    """The secrets scan (issue 19) over the commands above, every logger at
    DEBUG (the SDK's, urllib3's): the app secret, the refresh token and every
    access token the fake issued stay out of the output, the log, the ledger
    and the hook's payloads."""
    from ocs_transfer.testing.secrets import SecretScan, cli_round_trip

    scan = SecretScan()
    env = _env(tmp_path)
    scan.add("the app secret", fake.app_secret)
    scan.add("the refresh token", fake.refresh_token)
    record = {"storage_backend_id": "dropbox", "storage_backend_config": {
        "app_key": fake.app_key, "app_secret": fake.app_secret, "refresh_token": fake.refresh_token,
        "api_url": fake.url, "content_url": fake.url, "root": "/fits-data"}}  # fmt: skip
    (tmp_path / "record.json").write_text(json.dumps(record))
    files = []
    for i in range(3):
        (tmp_path / f"frame{i}.fits").write_bytes(os.urandom(100_000 + i))
        files.append(str(tmp_path / f"frame{i}.fits"))
    with scan.debug_logging(), scan.hook_payloads() as payloads:
        status = cli_round_trip(scan, env, "box", ["import", str(tmp_path / "record.json")], files)
        assert fake.access_tokens, "the fake issued no access token: the scan would miss them"
        for i, token in enumerate(fake.access_tokens):
            scan.add(f"access token {i}", token)
    assert [t["state"] for t in status["transfers"]] == ["completed"] * 3
    assert len(payloads) == 3 and any("dropbox" in line for line in scan.log_lines)
    scan.check_ledger(env["OCS_TRANSFER_LEDGER_URL"])
