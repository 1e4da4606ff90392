"""`ocs-transfer send` to S3 and GCS test servers the ways a new user tries:
URL query options, --option, --credentials-file, the ocs_archive
environment (FILESTORE_TYPE=s3 ...), S3_ENDPOINT_URL and STORAGE_EMULATOR_HOST."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ocs_transfer.cli import main
from ocs_transfer.testing.servers import S3Endpoint

from .conftest import admin_client, make_bucket

FITS = Path(__file__).resolve().parents[2] / "examples" / "data" / "coj1m011-kb05-20150219-0125-e90.fits.fz"


def _send(*args: str, env: dict[str, str], input: str | None = None) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["send", str(FITS), "--json", "--layout", "flat", *args], env=env, input=input)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _held(ep: S3Endpoint, bucket: str, key: str) -> str:
    body = admin_client(ep).get_object(Bucket=bucket, Key=key)["Body"].read()
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def _aws(ep: S3Endpoint) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": ep.key, "AWS_SECRET_ACCESS_KEY": ep.secret, "AWS_DEFAULT_REGION": ep.region}


def test_url_query_options_and_credentials_file(moto_endpoint: S3Endpoint) -> None:
    bucket = make_bucket(moto_endpoint)
    creds = json.dumps({"key": moto_endpoint.key, "secret": moto_endpoint.secret})
    [r] = _send("--to", f"s3://{bucket}/raw?endpoint_url={moto_endpoint.url}&addressing_style=path",
                "--credentials-file", "-", env={"S3_ENDPOINT_URL": ""}, input=creds)  # fmt: skip
    assert r["ok"] and _held(moto_endpoint, bucket, f"raw/{FITS.name}") == r["md5"]
    [r] = _send("--to", f"s3://{bucket}/opt", "--option", f"endpoint_url={moto_endpoint.url}",
                "--option", "addressing_style=path", env=_aws(moto_endpoint))  # fmt: skip
    assert _held(moto_endpoint, bucket, f"opt/{FITS.name}") == r["md5"]


def test_s3_url_honours_s3_endpoint_url(moto_endpoint: S3Endpoint) -> None:
    bucket = make_bucket(moto_endpoint)
    env = {**_aws(moto_endpoint), "S3_ENDPOINT_URL": moto_endpoint.url}
    [r] = _send("--to", f"s3://{bucket}/env", "--option", "addressing_style=path", env=env)
    assert _held(moto_endpoint, bucket, f"env/{FITS.name}") == r["md5"]


def test_provider_name_alone_uses_the_ocs_archive_environment(moto_endpoint: S3Endpoint) -> None:
    bucket = make_bucket(moto_endpoint)
    env = {**_aws(moto_endpoint), "FILESTORE_TYPE": "s3", "BUCKET": bucket, "S3_ENDPOINT_URL": moto_endpoint.url,
           "S3_ADDRESSING_STYLE": "path"}  # fmt: skip
    [r] = _send("--to", "s3", env=env)
    assert r["ok"] and _held(moto_endpoint, bucket, FITS.name) == r["md5"]


def test_gs_url_honours_storage_emulator_host(gcs_url: str, gcs_bucket: str, make_gcs_store: Any) -> None:
    [r] = _send("--to", f"gs://{gcs_bucket}/emu", env={"STORAGE_EMULATOR_HOST": gcs_url})
    with make_gcs_store(prefix="emu") as store:
        assert store.get_file_size(r["path"]) == FITS.stat().st_size == r["size"]


def test_schedule_from_an_s3_source_url_with_query_options(moto_endpoint: S3Endpoint, tmp_path: Path) -> None:
    bucket = make_bucket(moto_endpoint)
    body = FITS.read_bytes()
    admin_client(moto_endpoint).put_object(Bucket=bucket, Key=f"raw/{FITS.name}", Body=body)
    env = {**_aws(moto_endpoint), "OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'l.sqlite3'}"}
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, list(args), env=env)
        assert result.exit_code == 0, result.output + result.stderr
        return result.stdout

    run("dest", "add", "disk", "--provider", "local", "--option", f"root={tmp_path / 'disk'}", "--layout", "flat")
    run("schedule", FITS.name, "--to", "disk", "--source",
        f"s3://{bucket}/raw?endpoint_url={moto_endpoint.url}&addressing_style=path")  # fmt: skip
    run("worker", "--until-idle", "--poll", "0.01")
    assert json.loads(run("status", "--json"))["counts"]["disk"] == {"completed": 1}
    assert (tmp_path / "disk" / FITS.name).read_bytes() == body
    assert _held(moto_endpoint, bucket, f"raw/{FITS.name}") == hashlib.md5(body, usedforsecurity=False).hexdigest()
