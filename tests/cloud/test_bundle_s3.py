"""`ocs-transfer bundle` to S3 (moto): the zip goes up as a multipart
upload of unknown size, S3 holds exactly what was hashed, the presigned link
downloads it, and its expiry is the bundle's --keep-days (S3 allows links of
at most 7 days: a longer retention gets a 7-day link, and says so)."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from ocs_transfer.cli import main
from ocs_transfer.testing.bundles import assert_bundle_holds, local_tree
from ocs_transfer.testing.servers import S3Endpoint

from .conftest import admin_client, make_bucket, pattern

FILES = {
    "night/a.fits.fz": pattern(7 * 1024 * 1024, seed=3),  # more than one 5 MiB part, stored
    "night/b.fits": pattern(3 * 1024 * 1024, seed=5),  # deflated
    "night/c.jpg": pattern(100_000, seed=9),
}


def _bundle(ep: S3Endpoint, bucket: str, tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    env = {"AWS_ACCESS_KEY_ID": ep.key, "AWS_SECRET_ACCESS_KEY": ep.secret, "AWS_DEFAULT_REGION": ep.region,
           "S3_ENDPOINT_URL": ep.url, "OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'none.db'}",
           "OCS_TRANSFER_CHUNK_SIZE": str(5 * 1024 * 1024)}  # fmt: skip
    result = CliRunner().invoke(main, ["bundle", str(tmp_path / "night"), "--to", f"s3://{bucket}/users/42",
                                       "--option", "addressing_style=path", "--json", *args], env=env)  # fmt: skip
    assert result.exit_code == 0, result.output + (result.stderr if result.stderr_bytes else "")
    return json.loads(result.stdout), result.stderr


def test_bundle_to_s3_with_a_presigned_link(moto_endpoint: S3Endpoint, tmp_path: Path) -> None:
    local_tree(tmp_path, FILES)
    bucket = make_bucket(moto_endpoint)
    before = time.time()
    out, said = _bundle(moto_endpoint, bucket, tmp_path, "--name", "results.zip", "--keep-days", "2")
    assert "note:" not in said
    body = admin_client(moto_endpoint).get_object(Bucket=bucket, Key="users/42/results.zip")["Body"].read()
    assert out["path"] == "results.zip" and out["sha256"] == hashlib.sha256(body).hexdigest()
    assert out["md5"] == hashlib.md5(body, usedforsecurity=False).hexdigest() and out["version_id"]
    assert_bundle_holds(body, FILES)
    assert httpx.get(out["link"], timeout=10).content == body
    expires = datetime.fromisoformat(out["expires"]).timestamp()
    assert before + 2 * 86400 - 1 <= expires <= time.time() + 2 * 86400 + 1
    again, said = _bundle(moto_endpoint, bucket, tmp_path, "--name", "again.zip", "--keep-days", "30")
    assert "links live at most until" in said
    assert again["sha256"] == out["sha256"]  # the same files, the same bytes
    capped = datetime.fromisoformat(again["expires"]).timestamp()
    assert capped <= time.time() + 7 * 86400 + 1  # S3's longest link, not 30 days


def test_bundle_to_an_s3_destination_of_the_ledger(moto_endpoint: S3Endpoint, tmp_path: Path) -> None:
    """The ledger keeps no presigned link (it holds credentials): `bundle`
    makes one for its answer, living until the bundle expires."""
    import base64
    import os

    local_tree(tmp_path, FILES)
    bucket = make_bucket(moto_endpoint)
    env = {"OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
           "OCS_TRANSFER_KEYS": f"k1:{base64.b64encode(os.urandom(32)).decode()}", "OCS_TRANSFER_ACTIVE_KEY": "k1",
           "OCS_TRANSFER_CHUNK_SIZE": str(5 * 1024 * 1024)}  # fmt: skip
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(main, list(args), env=env, input=stdin)
        assert result.exit_code == 0, result.output + (result.stderr if result.stderr_bytes else "")
        return result.stdout

    creds = json.dumps({"key": moto_endpoint.key, "secret": moto_endpoint.secret})
    run("dest", "add", "cloud", "--provider", "s3", "--option", f"bucket={bucket}", "--option",
        f"endpoint_url={moto_endpoint.url}", "--option", "addressing_style=path", "--option", "region=us-east-1",
        "--path", "users/42", "--credentials-file", "-", stdin=creds)  # fmt: skip
    before = time.time()
    out = json.loads(run("bundle", str(tmp_path / "night"), "--to", "cloud", "--name", "results.zip",
                         "--keep-days", "3", "--json"))  # fmt: skip
    body = admin_client(moto_endpoint).get_object(Bucket=bucket, Key="users/42/results.zip")["Body"].read()
    assert out["path"] == "users/42/results.zip" and out["sha256"] == hashlib.sha256(body).hexdigest()
    assert_bundle_holds(body, FILES)
    assert httpx.get(out["link"], timeout=10).content == body
    expires = datetime.fromisoformat(out["expires"]).timestamp()
    assert before + 3 * 86400 - 5 <= expires <= time.time() + 3 * 86400 + 1
    [t] = json.loads(run("status", "results.zip", "--json"))
    assert t["link"] == "" and t["state"] == "completed"  # nothing signed is kept in the ledger
    assert moto_endpoint.secret not in json.dumps(out)
