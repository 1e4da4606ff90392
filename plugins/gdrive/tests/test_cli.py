"""End to end through the command line: authorize (a person's consent flow,
in a real subprocess), dest add, dest test, schedule, worker, status, and the
nothing-lost check against the fake Drive."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result
from fake_drive import FakeDrive
from gdrive_helpers import make_store
from ocs_transfer_gdrive.auth import authorize_url, exchange_code, parse_code
from ocs_transfer_gdrive.store import GdriveStore

from ocs_transfer.cli import main
from ocs_transfer.exceptions import ConfigurationError, CredentialError
from ocs_transfer.settings import Settings
from ocs_transfer.transfer.destinations import check_endpoints


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        key = base64.b64encode(os.urandom(32)).decode()
        self.env = {"OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
                    "OCS_TRANSFER_KEYS": f"k1:{key}", "OCS_TRANSFER_ACTIVE_KEY": "k1",
                    "OCS_TRANSFER_CHUNK_SIZE": str(1 << 20), "GOOGLE_AUTH_TRUST_BOUNDARY_ENABLED": "false"}  # fmt: skip
        self.outputs: list[str] = []

    def __call__(self, *args: str, input: str | None = None, ok: bool = True) -> Result:
        result = CliRunner().invoke(main, list(args), env=self.env, input=input, catch_exceptions=True)
        text = result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            text += "".join(traceback.format_exception(result.exception))
        self.outputs.append(text)
        if ok:
            assert result.exit_code == 0, text
        return result


def consent(url: str) -> str:
    """What the browser does: open the consent URL, land on the redirect URI."""
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    return str(response.headers["Location"])


def test_authorize_url_and_code_exchange(drive: FakeDrive) -> None:
    client, secret = next(iter(drive.clients.items()))
    request = authorize_url(client, "http://127.0.0.1:8765/callback", auth_url=f"{drive.url}/o/oauth2/v2/auth")
    assert "code_challenge_method=S256" in request.url and f"state={request.state}" in request.url
    assert "access_type=offline" in request.url
    code = parse_code(consent(request.url), request.state)
    result = exchange_code(client, secret, code, request, token_url=drive.token_url, api_url=drive.url)
    assert result.email == "observer@example.org"
    assert "1//" not in repr(result)
    store = make_store(drive, {"client_id": client, "client_secret": secret,
                               "refresh_token": result.refresh_token.reveal()})  # fmt: skip
    assert store.test_connection().ok


def test_code_exchange_refusals(drive: FakeDrive) -> None:
    client, secret = next(iter(drive.clients.items()))
    request = authorize_url(client, "http://127.0.0.1:8765/", auth_url=f"{drive.url}/o/oauth2/v2/auth")
    other = authorize_url(client, "http://127.0.0.1:8765/")
    location = consent(request.url)
    with pytest.raises(CredentialError, match="state does not match"):
        parse_code(location, other.state)
    with pytest.raises(CredentialError, match="authorize again"):  # wrong PKCE verifier
        exchange_code(client, secret, parse_code(location, request.state), other, token_url=drive.token_url,
                      api_url=drive.url)  # fmt: skip
    with pytest.raises(ConfigurationError, match="loopback"):
        exchange_code(client, secret, "x", request, token_url="http://example.org/token")


def test_endpoint_options_are_checked(drive: FakeDrive) -> None:
    creds = drive.credentials()
    for bad, why in ((f"{drive.url}/drive", "no path"), ("http://example.org", "loopback"), ("ftp://x", "https")):
        with pytest.raises(ConfigurationError, match=why):
            GdriveStore.from_config(GdriveStore.Config(api_url=bad), creds)
    listed = Settings(endpoint_allowlist=("www.googleapis.com", "oauth2.googleapis.com"))
    check_endpoints({}, listed, "gdrive")  # the defaults are allowed
    for option in ("api_url", "token_url"):
        with pytest.raises(ConfigurationError, match="OCS_TRANSFER_ENDPOINT_ALLOWLIST"):
            check_endpoints({option: drive.url}, listed, "gdrive")
    with pytest.raises(ConfigurationError, match="share_domain"):
        GdriveStore.Config(share="domain_reader")


def test_share_links(drive: FakeDrive) -> None:
    import io

    for share, want in (("none", []), ("anyone_reader", [("anyone", None)]),
                        ("domain_reader", [("domain", "example.org")])):  # fmt: skip
        store = make_store(drive, share=share, share_domain="example.org")
        store.put(io.BytesIO(b"x"), f"{share}.fits")
        first, again = store.get_url(f"{share}.fits"), store.get_url(f"{share}.fits")
        assert first == again and first.startswith("https://drive.google.com/file/d/")
        file_id = first.split("/d/")[1].split("/")[0]
        perms = drive.permissions.get(file_id, [])
        assert [(p["type"], p.get("domain")) for p in perms] == want  # granted once, not per link
        assert all(p["role"] == "reader" for p in perms)


def test_dest_import_of_a_record_with_token_url(drive: FakeDrive, tmp_path: Path) -> None:
    """token_url is an option (its name has "token" in it): the provider's declared
    credential fields say what is a credential, not how a name looks."""
    cli = Cli(tmp_path)
    creds = drive.credentials()
    record = {"storage_backend": "Drive", "storage_backend_id": "gdrive",
              "storage_backend_config": {**creds, "token_url": drive.token_url, "api_url": drive.url,
                                         "root": "imported"}}  # fmt: skip
    cli("dest", "import", "-", input=json.dumps(record))
    shown = json.loads(cli("dest", "show", "Drive", "--json").output)
    assert shown["options"]["token_url"] == drive.token_url
    assert sorted(shown["credential_fields"]) == sorted(creds)
    assert "ok:" in cli("dest", "test", "Drive").output
    for text in cli.outputs:
        assert not [v for v in creds.values() if v in text]


def test_end_to_end_through_the_cli(drive: FakeDrive, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    client, secret = next(iter(drive.clients.items()))
    options = ["--option", f"api_url={drive.url}", "--option", f"token_url={drive.token_url}",
               "--option", "share=anyone_reader"]  # fmt: skip
    cli("dest", "add", "drive", "--provider", "gdrive", "--path", "fits-data", *options, "--credentials-file", "-",
        input=json.dumps({"client_id": client, "client_secret": secret}))
    # a person authorizes: the command prints the URL, they consent and paste back where they landed
    env = {**os.environ, **cli.env}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ocs_transfer.cli import run; run()", "gdrive", "authorize", "--dest", "drive",
         "--auth-url", f"{drive.url}/o/oauth2/v2/auth"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    url = proc.stdout.readline().strip()
    assert url.startswith(f"{drive.url}/o/oauth2/v2/auth?")
    out, err = proc.communicate(consent(url) + "\n", timeout=60)
    assert proc.returncode == 0, err
    assert "authorized as observer@example.org" in err and "1//" not in out + err
    assert "ok:" in cli("dest", "test", "drive").output
    sources = {}
    for name, size in (("a.fits", 1000), ("b.fits", 3 * (1 << 20) + 5)):
        path = tmp_path / name
        path.write_bytes(os.urandom(size))
        sources[name] = path.read_bytes()
    cli("schedule", *(str(tmp_path / n) for n in sources), "--to", "drive")
    cli("worker", "--until-idle", "--poll", "0.01")
    status = cli("status").output
    assert "completed" in status and "https://drive.google.com/file/d/" in status
    data: dict[str, Any] = json.loads(cli("status", "--json").output)
    assert data["counts"]["drive"] == {"completed": 2}
    # nothing lost: Drive holds exactly the files, byte for byte, and nothing else
    assert drive.paths() == [f"fits-data/{n}" for n in sorted(sources)]
    for f in drive.live():
        if f["name"] in sources:
            assert hashlib.sha256(drive.content(f["id"])).digest() == hashlib.sha256(sources[f["name"]]).digest()
    assert all(t["state"] == "completed" and t["link"] for t in data["transfers"])
    for text in cli.outputs:
        assert secret not in text


def test_no_credential_shows_anywhere(drive: FakeDrive, tmp_path: Path) -> None:
    """The secrets scan (issue 19) over a destination's commands, every logger
    at DEBUG (google-auth's, requests', urllib3's): the client secret, the
    refresh token and every access token the fake issued stay out of the
    output, the log, the ledger and the hook's payloads."""
    from ocs_transfer.testing.secrets import SecretScan, cli_round_trip

    scan = SecretScan()
    env = Cli(tmp_path).env
    creds = drive.credentials()
    scan.add("the client secret", creds["client_secret"])
    scan.add("the refresh token", creds["refresh_token"])
    files = []
    for i, size in enumerate((1000, 3 * (1 << 20) + 5)):
        (tmp_path / f"f{i}.fits").write_bytes(os.urandom(size))
        files.append(str(tmp_path / f"f{i}.fits"))
    add = ["--provider", "gdrive", "--path", "fits-data", "--option", f"api_url={drive.url}",
           "--option", f"token_url={drive.token_url}", "--option", "share=anyone_reader", "--credentials-file", "-"]
    with scan.debug_logging(), scan.hook_payloads() as payloads:
        status = cli_round_trip(scan, env, "drive", add, files, input=json.dumps(creds))
        assert drive.access_tokens, "the fake issued no access token: the scan would miss them"
        for i, token in enumerate(drive.access_tokens):
            scan.add(f"access token {i}", token)
    assert [t["state"] for t in status["transfers"]] == ["completed"] * 2
    assert len(payloads) == 2 and any("google" in line or "urllib3" in line for line in scan.log_lines)
    scan.check_ledger(env["OCS_TRANSFER_LEDGER_URL"])
