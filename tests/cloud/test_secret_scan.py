"""The secrets scan (issue 19) over S3 and the file server: every logger at
DEBUG (botocore, urllib3, httpx, fsspec, ...), the commands a user runs —
`dest add` with credentials, `dest show`/`list`/`test`, `schedule`, `worker`,
`status`, a destination with wrong credentials failing — and then no
credential, in any form (see ``ocs_transfer.testing.secrets``), in the
output, the log, the stores' and errors' texts, the ledger's tables or the
hook's payloads. The Dropbox, Drive and Seafile plugins run the same scan
over their own end-to-end tests.

GCS is not here: its emulator takes no credentials, so there is nothing to
leak; its service-account JSON goes through the same `Secret` handling as
the others (tests/cloud/test_gcs.py checks its repr)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocs_transfer import plugins
from ocs_transfer.redact import Secret
from ocs_transfer.testing.secrets import SecretScan
from ocs_transfer.testing.servers import S3Endpoint

from .conftest import make_bucket

SESSION_TOKEN = "IQoJb3JpZ2luX2VjE" + uuid.uuid4().hex + "SeSsIoN" + "Z" * 30
KEY_ID = "ASIA" + uuid.uuid4().hex[:16].upper()


def ledger_env(tmp_path: Path, scan: SecretScan) -> dict[str, str]:
    key = base64.b64encode(os.urandom(32)).decode()
    scan.add("the ledger key", key)
    return {"OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}", "OCS_TRANSFER_KEYS": f"k1:{key}",
            "OCS_TRANSFER_ACTIVE_KEY": "k1", "OCS_TRANSFER_RETRY_DELAYS": "0"}  # fmt: skip


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    from ocs_transfer_local.server import FileServer, ServerConfig

    root = tmp_path / "served"
    root.mkdir()
    token, key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    config = ServerConfig(root=root, port=0, tokens=(Secret(token),), signing_key=Secret(key), threads=4)
    with FileServer(config) as server:
        yield server.url, token, key


def test_no_credential_reaches_output_logs_ledger_or_hooks(
    moto_endpoint: S3Endpoint, served: tuple[str, str, str], tmp_path: Path, all_plugins: None
) -> None:
    url, token, signing_key = served
    wrong_token = secrets.token_urlsafe(32)
    scan = SecretScan()
    for name, value in [("the S3 session token", SESSION_TOKEN), ("the S3 key id", KEY_ID),
                        ("the S3 secret key", moto_endpoint.secret + "-scan"), ("the file server token", token),
                        ("the signing key", signing_key), ("the wrong token", wrong_token)]:  # fmt: skip
        scan.add(name, value)
    env = ledger_env(tmp_path, scan)

    def cli(*args: str, input: str | None = None, ok: bool = True) -> str:
        return scan.run_cli(env, *args, input=input, ok=ok)

    bucket = make_bucket(moto_endpoint)
    src = tmp_path / "night"
    src.mkdir()
    for i in range(3):
        (src / f"frame{i}.fits").write_bytes(os.urandom(50_000 + i))

    with scan.debug_logging(), scan.hook_payloads() as payloads:
        s3_creds = json.dumps({"key": KEY_ID, "secret": moto_endpoint.secret + "-scan", "token": SESSION_TOKEN})
        cli("dest", "add", "cloud", "--provider", "s3", "--scope", "personal", "--option", f"bucket={bucket}",
            "--option", f"endpoint_url={moto_endpoint.url}", "--option", "addressing_style=path",
            "--option", "region=us-east-1", "--credentials-file", "-", input=s3_creds)  # fmt: skip
        cli("dest", "add", "files", "--provider", "webdav", "--option", f"url={url}",
            "--option", f"link_server_url={url}", "--credentials-file", "-",
            input=json.dumps({"token": token, "signing_key": signing_key}))  # fmt: skip
        cli("dest", "add", "wrong", "--provider", "webdav", "--option", f"url={url}", "--credential", "token",
            input=wrong_token + "\n")  # fmt: skip
        for name in ("cloud", "files", "wrong"):
            cli("dest", "show", name)
            cli("dest", "show", name, "--json")
        cli("dest", "list")
        cli("dest", "test", "cloud")
        cli("dest", "test", "files")
        refused = cli("dest", "test", "wrong", ok=False)
        assert "401" in refused or "credential" in refused.lower()  # it did fail, and said why
        cli("schedule", *map(str, sorted(src.iterdir())), "--to", "cloud", "--to", "files", "--to", "wrong")
        cli("worker", "--until-idle", "--poll", "0.05")
        status = json.loads(cli("status", "--json"))
        cli("status")
        cli("dest", "list", "--json")

    states = {(t["destination_name"], t["state"]) for t in status["transfers"]}
    assert states == {("cloud", "completed"), ("files", "completed"), ("wrong", "failed")}, states
    # the scan was not vacuous: the libraries logged their requests, with the headers
    log = "\n".join(scan.log_lines)
    assert "botocore" in log and "x-amz-security-token" in log.lower()
    assert len(payloads) == 9
    rows = scan.check_ledger(env["OCS_TRANSFER_LEDGER_URL"])
    assert rows >= 3 + 9
    # stores and their configurations, as code would print them
    from ocs_transfer.settings import Settings
    from ocs_transfer.transfer.crypto import KeyRing
    from ocs_transfer.transfer.destinations import Destinations
    from ocs_transfer.transfer.ledger import Ledger

    ledger = Ledger(env["OCS_TRANSFER_LEDGER_URL"])
    try:
        dests = Destinations(ledger, KeyRing.parse(env["OCS_TRANSFER_KEYS"], "k1"), settings=Settings())
        for name in ("cloud", "files"):
            with dests.open_store(name) as store:
                scan.check(f"the {name} store", store, getattr(store, "config", None), getattr(store, "fs", None))
    finally:
        ledger.close()
    plugins.reset()
