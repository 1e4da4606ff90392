"""Existing archives keep their layout: a FITS file stored by our s3 provider
lands at the same key as ocs_archive's own S3Store puts it (both run against
the same moto server; ocs_archive 0.5.0 in its own environment, see
tests/reference_libs.py), and the bytes are the same. And the ingester-shaped
script of tests/compat runs on S3 with both libraries."""

from __future__ import annotations

import hashlib
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ocs_transfer.input.filefactory import open_datafile
from ocs_transfer.settings import Settings
from ocs_transfer.testing.servers import S3Endpoint

from ..compat.ingester_05 import SCRIPT, assert_same_results, inputs
from .conftest import admin_client, make_bucket, s3_store_for

OCS_ARCHIVE_UPLOAD = """
import json, sys
files = json.load(sys.stdin)
from ocs_archive.input.file import File
from ocs_archive.input.filefactory import FileFactory
from ocs_archive.storage.s3store import S3Store

results = []
for path in files:
    with open(path, "rb") as fh:
        open_file = File(fh, path=path)
        data_file = FileFactory.get_datafile_class_for_extension(open_file.extension)(open_file)
        results.append(S3Store().store_file(data_file))
print(json.dumps(results))
"""


def keys_and_sha256(client: Any, bucket: str) -> dict[str, str]:
    out = {}
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        out[obj["Key"]] = hashlib.sha256(body).hexdigest()
    return out


def s3_env(ep: S3Endpoint, bucket: str) -> dict[str, str]:
    return {"BUCKET": bucket, "S3_ENDPOINT_URL": ep.url, "S3_ADDRESSING_STYLE": "path", "AWS_ACCESS_KEY_ID": ep.key,
            "AWS_SECRET_ACCESS_KEY": ep.secret, "AWS_DEFAULT_REGION": ep.region}


def test_same_keys_as_ocs_archive(moto_endpoint: S3Endpoint, examples_dir: Path, ocs_archive_05: Any) -> None:
    files = sorted(str(p) for p in examples_dir.glob("*.fits*"))
    assert files
    client = admin_client(moto_endpoint)

    theirs = make_bucket(moto_endpoint)
    their_versions = ocs_archive_05.run(OCS_ARCHIVE_UPLOAD, files, env=s3_env(moto_endpoint, theirs))

    ours = make_bucket(moto_endpoint)
    store = s3_store_for(moto_endpoint, ours, days_to_ia_storage=60)
    settings = Settings()
    our_versions = []
    for path in files:
        with open_datafile(path, settings=settings) as data_file:
            stored = store.store_file(data_file)
            # Observed in 2015, long before "60 days ago": infrequent access, as ocs_archive chooses.
            assert store.storage_class_for(data_file, datetime.now(UTC)) == "STANDARD_IA"
        our_versions.append(stored.version_set())

    their_objects = keys_and_sha256(client, theirs)
    our_objects = keys_and_sha256(client, ours)
    assert set(our_objects) == set(their_objects)
    assert our_objects == their_objects  # same keys, same bytes
    assert any("/raw/" in k for k in our_objects) or any("/processed/" in k for k in our_objects)
    # The version set ingesters record has the same shape and extensions.
    assert [v["extension"] for v in our_versions] == [v["extension"] for v in their_versions]
    for key in our_objects:
        head = client.head_object(Bucket=ours, Key=key)
        assert head["StorageClass"] == "STANDARD_IA"
        assert head["ContentDisposition"] == f'attachment; filename="{key.rsplit("/", 1)[-1]}"'


def test_ingester_script_on_s3(moto_endpoint: S3Endpoint, examples_dir: Path, tmp_path: Path,
                               ocs_archive_05: Any) -> None:
    """The ingester-shaped script, unchanged but for its imports, on S3: same
    records, md5s and paths; versioned keys; links that serve the same bytes;
    every version gone after ``delete_file(path, key)``."""
    (tmp_path / "src").mkdir()
    items = inputs(examples_dir, tmp_path / "src")
    client = admin_client(moto_endpoint)
    out = {}
    for side in ("theirs", "ours"):
        bucket = make_bucket(moto_endpoint)
        env = {"FILESTORE_TYPE": "s3", **s3_env(moto_endpoint, bucket)}
        runner = ocs_archive_05.run if side == "theirs" else ocs_archive_05.run_ours
        out[side] = runner(SCRIPT, items, env=env, cwd=tmp_path)
        assert client.list_object_versions(Bucket=bucket).get("Versions", []) == []  # deleted, every version
        for result in out[side]["results"]:
            if "url" in result:  # the link serves the bytes (fetched before the delete: check the size it reported)
                assert result["size"] > 0 and result["url"].startswith(moto_endpoint.url)
    theirs, ours = out["theirs"]["results"], out["ours"]["results"]
    assert [r["name"] for r in ours] == [r["name"] for r in theirs]
    for mine, their in zip(ours, theirs, strict=True):
        assert mine.keys() == their.keys(), mine["name"]
        if "error" in their:
            assert mine == their
            continue
        assert_same_results([{"name": mine["name"], "record": mine["record"]}],
                            [{"name": their["name"], "record": their["record"]}])
        assert mine["store_path"] == their["store_path"]
        assert (mine["size"], mine["sha256"]) == (their["size"], their["sha256"])
        assert {k: v for k, v in mine["version"].items() if k != "key"} == {
            k: v for k, v in their["version"].items() if k != "key"}
        assert mine["version"]["key"] and mine["version"]["key"] != mine["version"]["md5"]  # a version id
        assert "versionId=" in mine["url"] and "versionId=" in their["url"]


def test_links_from_the_compat_store_serve_the_bytes(moto_endpoint: S3Endpoint, examples_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch, all_plugins: None) -> None:
    from ocs_transfer.input import File, FileFactory
    from ocs_transfer.storage.compat import FileStoreFactory

    bucket = make_bucket(moto_endpoint)
    for key, value in {"FILESTORE_TYPE": "s3", **s3_env(moto_endpoint, bucket)}.items():
        monkeypatch.setenv(key, value)
    store = FileStoreFactory.get_file_store()
    path = examples_dir / "coj1m011-kb05-20150219-0125-e90.fits.fz"
    with open(path, "rb") as fp:
        open_file = File(fp, str(path))
        version = store.store_file(FileFactory.get_datafile_class_for_extension(open_file.extension)(open_file))
        data_file = FileFactory.get_datafile_class_for_extension(open_file.extension)(open_file)
    key = data_file.get_filestore_path()
    with urllib.request.urlopen(store.get_url(key, version["key"], 60), timeout=30) as response:
        assert hashlib.md5(response.read()).hexdigest() == version["md5"] == hashlib.md5(path.read_bytes()).hexdigest()
    assert store.get_file_size(key) == path.stat().st_size
    store.delete_file(key, version["key"])
    assert client_versions(moto_endpoint, bucket) == []


def client_versions(ep: S3Endpoint, bucket: str) -> list[Any]:
    return list(admin_client(ep).list_object_versions(Bucket=bucket).get("Versions", []))
