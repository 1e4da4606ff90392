"""Existing archives keep their layout: a FITS file stored by our s3 provider
lands at the same key as ocs_archive's own S3Store puts it (both run against
the same moto server; ocs_archive in a subprocess, since it reads its settings
from the environment at import), and the bytes are the same."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ocs_transfer.input.filefactory import open_datafile
from ocs_transfer.settings import Settings
from ocs_transfer.testing.servers import S3Endpoint

from .conftest import admin_client, make_bucket, s3_store_for

OCS_ARCHIVE_UPLOAD = """
import json, sys
from ocs_archive.input.file import File
from ocs_archive.input.filefactory import FileFactory
from ocs_archive.storage.s3store import S3Store

results = []
for path in sys.argv[1:]:
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


def test_same_keys_as_ocs_archive(moto_endpoint: S3Endpoint, examples_dir: Path) -> None:
    # The only independent check of the archive layout: required, never skipped.
    assert importlib.util.find_spec("ocs_archive") is not None, (
        "ocs-archive is not installed; it is part of the test extra: pip install -e '.[test]'"
    )
    files = sorted(str(p) for p in examples_dir.glob("*.fits*"))
    assert files
    client = admin_client(moto_endpoint)

    theirs = make_bucket(moto_endpoint)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    env.update(
        BUCKET=theirs,
        S3_ENDPOINT_URL=moto_endpoint.url,
        S3_ADDRESSING_STYLE="path",
        AWS_ACCESS_KEY_ID=moto_endpoint.key,
        AWS_SECRET_ACCESS_KEY=moto_endpoint.secret,
        AWS_DEFAULT_REGION=moto_endpoint.region,
    )
    done = subprocess.run(
        [sys.executable, "-c", OCS_ARCHIVE_UPLOAD, *files], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    their_versions = json.loads(done.stdout.strip().splitlines()[-1])

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
