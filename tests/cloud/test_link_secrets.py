"""Secrets in links and debug logs (issue 11, point 8): a completed S3
transfer with temporary credentials stores no presigned link (it would hold
the session token and the key id), `status --json` and hooks show none, links
are made when asked for, and `-vv` (botocore's DEBUG output included) never
prints the session token, the secret key or a signature. The real command
line, as a subprocess, against moto."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from ocs_transfer.redact import RedactingFilter, redact_credentials
from ocs_transfer.testing.secrets import SecretScan
from ocs_transfer.testing.servers import S3Endpoint

from .conftest import make_bucket

SESSION_TOKEN = "FwoGZXIvYXdzE" + uuid.uuid4().hex + "SeSsIoNtOkEn" + "A" * 40
KEY_ID = "ASIA" + uuid.uuid4().hex[:16].upper()


def _run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from ocs_transfer.cli import run; run()", *args]
    done = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_no_stored_links_and_no_tokens_in_debug_logs(moto_endpoint: S3Endpoint, tmp_path: Path) -> None:
    bucket = make_bucket(moto_endpoint)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OCS_TRANSFER_"))},
        "OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
        "OCS_TRANSFER_KEYS": f"k1:{base64.b64encode(os.urandom(32)).decode()}",
        "OCS_TRANSFER_ACTIVE_KEY": "k1",
    }
    creds = json.dumps({"key": KEY_ID, "secret": moto_endpoint.secret + "x", "token": SESSION_TOKEN})
    outputs = []
    outputs.append(_run(env, "-vv", "dest", "add", "cloud", "--provider", "s3", "--scope", "personal",
                        "--option", f"bucket={bucket}", "--option", f"endpoint_url={moto_endpoint.url}",
                        "--option", "addressing_style=path", "--option", "region=us-east-1",
                        "--credentials-file", "-", stdin=creds))  # fmt: skip
    src = tmp_path / "night"
    src.mkdir()
    (src / "frame.fits").write_bytes(os.urandom(300_000))
    outputs.append(_run(env, "-vv", "schedule", str(src / "frame.fits"), "--to", "cloud"))
    worker = _run(env, "-vv", "worker", "--until-idle", "--poll", "0.1")
    outputs.append(worker)
    status = _run(env, "-vv", "status", "--json")
    outputs.append(status)
    [transfer] = json.loads(status.stdout)["transfers"]
    assert transfer["state"] == "completed", transfer
    # botocore did log at DEBUG (the check below is not vacuous) ...
    assert "botocore" in worker.stderr and "x-amz-security-token" in worker.stderr.lower()
    # ... but no value of the session token, the key id or the secret appears anywhere, in any form
    scan = SecretScan()
    for name, secret in (("the session token", SESSION_TOKEN), ("the key id", KEY_ID),
                         ("the secret key", moto_endpoint.secret + "x")):  # fmt: skip
        scan.add(name, secret)
    scan.check("the commands' output", "".join(o.stdout + o.stderr for o in outputs))
    assert transfer["link"] == ""  # nothing signed is kept in the ledger
    scan.check_ledger(env["OCS_TRANSFER_LEDGER_URL"])
    scan.check("the ledger file", (tmp_path / "ledger.sqlite3").read_bytes().decode("latin-1"))


def test_links_are_made_when_asked(moto_endpoint: S3Endpoint, tmp_path: Path) -> None:
    """The on-demand link works (the object is fetchable with it)."""
    from ocs_transfer.settings import Settings
    from ocs_transfer.transfer.crypto import KeyRing
    from ocs_transfer.transfer.destinations import Destinations
    from ocs_transfer.transfer.ledger import Ledger

    bucket = make_bucket(moto_endpoint)
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite3'}")
    ledger.migrate()
    try:
        dests = Destinations(ledger, KeyRing.parse(f"k1:{base64.b64encode(os.urandom(32)).decode()}", "k1"),
                             settings=Settings())  # fmt: skip
        dests.add("cloud", "s3", credentials={"key": moto_endpoint.key, "secret": moto_endpoint.secret},
                  options={"bucket": bucket, "endpoint_url": moto_endpoint.url, "addressing_style": "path",
                           "region": "us-east-1"})  # fmt: skip
        import io

        with dests.open_store("cloud") as store:
            stored = store.put(io.BytesIO(b"hello link"), "a/b.fits")
        url = dests.link("cloud", stored.path, stored.version_id)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"hello link"
    finally:
        ledger.close()


@pytest.mark.parametrize(
    "line",
    [
        "{'X-Amz-Security-Token': b'%s', 'Authorization': b'AWS4-HMAC-SHA256 Credential=%s/2026/us-east-1/s3'}",
        "x-amz-security-token:%s\nhost:127.0.0.1 %s",
        "GET /b/k?X-Amz-Credential=%s%%2F2026&X-Amz-Security-Token=%s&X-Amz-Signature=0ff1ce",
        "headers={'Authorization': 'Bearer %s'} id=%s",
    ],
)
def test_filter_redacts_what_http_libraries_print(line: str) -> None:
    record = logging.LogRecord("botocore.endpoint", logging.DEBUG, __file__, 1, line, (SESSION_TOKEN, KEY_ID), None)
    assert RedactingFilter().filter(record)
    text = record.getMessage()
    assert SESSION_TOKEN not in text and KEY_ID not in text and "0ff1ce" not in text
    assert redact_credentials(line % (SESSION_TOKEN, KEY_ID)) == text
