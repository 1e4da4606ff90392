"""The s3 provider against moto's server and against SeaweedFS (a real S3
server), both on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google_crc32c
import pytest
from astropy.io import fits

from ocs_transfer import plugins
from ocs_transfer.exceptions import (
    ConfigurationError,
    ObjectNotFoundError,
    TransferCancelledError,
)
from ocs_transfer.input.filefactory import open_datafile
from ocs_transfer.retry import Kind, classify
from ocs_transfer.settings import Settings
from ocs_transfer.storage import get_store
from ocs_transfer.storage.s3 import S3Store, content_disposition
from ocs_transfer.storage.s3_upload import S3Uploader
from ocs_transfer.testing import ShortReader
from ocs_transfer.testing.servers import S3Endpoint

from .conftest import MiB, admin_client, pattern, s3_store_for

SIZES = [0, 1, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1, 11 * MiB + 3]


@pytest.mark.parametrize("size", SIZES)
def test_roundtrip_hashes_and_interop(s3_store: S3Store, s3_client: Any, s3_bucket: str, size: int) -> None:
    data = pattern(size, seed=size % 251)
    stored = s3_store.put(io.BytesIO(data), "raw/frame.fits", size=size, content_type="image/fits")
    assert stored.size == size
    assert stored.md5 == hashlib.md5(data).hexdigest()
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.version_id
    # Interop: plain boto3 reads the same bytes at bucket/prefix/path.
    obj = s3_client.get_object(Bucket=s3_bucket, Key="archive/raw/frame.fits")
    body = obj["Body"].read()
    assert hashlib.sha256(body).hexdigest() == stored.sha256
    assert obj["ContentType"] == "image/fits"
    assert obj["ContentDisposition"] == 'attachment; filename="frame.fits"'
    with s3_store.open("raw/frame.fits") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == stored.sha256
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_server_checksum_matches_our_crc32c(seaweed_endpoint: S3Endpoint) -> None:
    """SeaweedFS reports S3 additional checksums: the store verifies against
    them (no re-read), and boto3 sees the same CRC32C we computed."""
    from .conftest import make_bucket

    bucket = make_bucket(seaweed_endpoint)
    store = s3_store_for(seaweed_endpoint, bucket)
    client = admin_client(seaweed_endpoint)
    for size in (3 * MiB, 12 * MiB + 5):
        data = pattern(size, seed=3)
        stored = store.put(io.BytesIO(data), f"obj-{size}", size=size)
        head = client.head_object(Bucket=bucket, Key=f"obj-{size}", ChecksumMode="ENABLED")
        if size < 5 * MiB:
            assert head["ChecksumCRC32C"] == base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
            assert stored.provider_checksum == f"crc32c:{head['ChecksumCRC32C']}"
        else:
            parts = [data[i : i + 5 * MiB] for i in range(0, size, 5 * MiB)]
            digests = b"".join(google_crc32c.Checksum(p).digest() for p in parts)
            expected = f"{base64.b64encode(google_crc32c.Checksum(digests).digest()).decode()}-{len(parts)}"
            assert head["ChecksumCRC32C"] == expected
            assert stored.provider_checksum == f"crc32c-composite:{expected}"


@pytest.mark.parametrize("size", [5 * MiB, 11 * MiB + 1, 12 * MiB, 15 * MiB + 1])
def test_single_put_below_the_multipart_threshold(s3_endpoint: S3Endpoint, s3_bucket: str, size: int) -> None:
    """Below ``multipart_threshold`` one PUT (the parts read so far are joined),
    from it on a multipart upload; the checksum form we expect follows."""
    store = s3_store_for(s3_endpoint, s3_bucket, part_size=5 * MiB, multipart_threshold=12 * MiB)
    data = pattern(size, seed=7)
    stored = store.put(io.BytesIO(data), "t.bin", size=size)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    etag = admin_client(s3_endpoint).head_object(Bucket=s3_bucket, Key="t.bin")["ETag"]
    multipart = size >= 12 * MiB
    assert etag.strip('"').endswith(f"-{-(-size // (5 * MiB))}") == multipart
    if s3_endpoint.kind == "seaweedfs":  # it reports the checksum, so the store compared it
        assert stored.provider_checksum is not None
        assert stored.provider_checksum.startswith("crc32c-composite:" if multipart else "crc32c:")
    body = admin_client(s3_endpoint).get_object(Bucket=s3_bucket, Key="t.bin")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == stored.sha256


def test_versions_links_and_deletes(s3_store: S3Store, s3_endpoint: S3Endpoint) -> None:
    first = s3_store.put(io.BytesIO(b"version one"), "v.txt")
    second = s3_store.put(io.BytesIO(b"version two!"), "v.txt")
    assert first.version_id and second.version_id and first.version_id != second.version_id
    assert s3_store.info("v.txt").version_id == second.version_id
    assert s3_store.info("v.txt", first.version_id).size == len(b"version one")
    with s3_store.open("v.txt", first.version_id) as fh:
        assert fh.read() == b"version one"

    url = s3_store.get_url("v.txt", first.version_id, expiration=timedelta(minutes=5))
    assert url.startswith(s3_endpoint.url) and "X-Amz-Expires=300" in url
    with urllib.request.urlopen(url, timeout=10) as resp:  # the presigned URL works without credentials
        assert resp.read() == b"version one"
    with pytest.raises(ConfigurationError):
        s3_store.get_url("v.txt", expiration=timedelta(days=8))

    s3_store.delete_file("v.txt", first.version_id)
    with pytest.raises(ObjectNotFoundError):
        s3_store.info("v.txt", first.version_id)
    assert s3_store.info("v.txt").version_id == second.version_id
    s3_store.delete_file("v.txt")
    assert not s3_store.exists("v.txt")
    with pytest.raises(ObjectNotFoundError):
        s3_store.delete_file("v.txt")


def test_list_and_metadata(s3_store: S3Store) -> None:
    for name in ("a/1.fits", "a/2.fits", "b/3.fits"):
        s3_store.put(io.BytesIO(name.encode()), name)
    assert sorted(o.path for o in s3_store.list()) == ["a/1.fits", "a/2.fits", "b/3.fits"]
    assert sorted(o.path for o in s3_store.list("a")) == ["a/1.fits", "a/2.fits"]
    assert all(o.size == 8 for o in s3_store.list())


def test_cancel_leaves_nothing(s3_store: S3Store, s3_client: Any, s3_bucket: str) -> None:
    cancel = threading.Event()
    seen = [0]

    def progress(n: int) -> None:
        seen[0] += n
        if seen[0] >= 10 * MiB:
            cancel.set()

    with pytest.raises(TransferCancelledError):
        s3_store.put(io.BytesIO(pattern(30 * MiB)), "big.bin", progress=progress, cancel=cancel)
    assert not s3_store.exists("big.bin")
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_storage_class_and_ia_for_old_data(
    s3_endpoint: S3Endpoint, s3_bucket: str, s3_client: Any, examples_dir: Path
) -> None:
    if s3_endpoint.kind == "seaweedfs":
        pytest.skip("SeaweedFS does not report storage classes")
    store = s3_store_for(s3_endpoint, s3_bucket, days_to_ia_storage=60)
    path = examples_dir / "coj1m011-kb05-20150219-0125-e90.fits"
    observed = datetime.fromisoformat(fits.getheader(path)["DATE-OBS"]).replace(tzinfo=UTC)
    with open_datafile(path, settings=Settings()) as data_file:
        assert store.storage_class_for(data_file, observed + timedelta(days=61)) == "STANDARD_IA"
        assert store.storage_class_for(data_file, observed + timedelta(days=59)) is None
    store.put(io.BytesIO(b"x" * 10), "old.fits", storage_class="STANDARD_IA")
    assert s3_client.head_object(Bucket=s3_bucket, Key="old.fits")["StorageClass"] == "STANDARD_IA"
    store.put(io.BytesIO(b"x" * 10), "new.fits")
    assert s3_client.head_object(Bucket=s3_bucket, Key="new.fits").get("StorageClass", "STANDARD") == "STANDARD"


def test_quick_url_settings_and_registration(builtin_plugins_only: None, moto_endpoint: S3Endpoint) -> None:
    assert plugins.get_provider("s3") is S3Store
    config = S3Store.config_from_url("s3://my-bucket/some/prefix", region="eu-west-1")
    assert (config.bucket, config.prefix, config.region) == ("my-bucket", "some/prefix", "eu-west-1")
    settings = Settings.from_env(
        {
            "FILESTORE_TYPE": "s3",
            "BUCKET": "archive-bucket",
            "S3_ENDPOINT_URL": moto_endpoint.url,
            "S3_ADDRESSING_STYLE": "path",
            "S3_DAYS_TO_IA_STORAGE": "30",
            "AWS_DEFAULT_REGION": "us-west-2",
        }
    )
    config = S3Store.config_from_settings(settings)
    assert config.bucket == "archive-bucket" and config.endpoint_url == moto_endpoint.url
    assert config.addressing_style == "path" and config.days_to_ia_storage == 30 and config.region == "us-west-2"
    store = get_store(settings=settings, credentials={"key": moto_endpoint.key, "secret": moto_endpoint.secret})
    assert isinstance(store, S3Store) and store.root == "archive-bucket"
    with pytest.raises(ConfigurationError):
        S3Store.Config(bucket="a/b")
    with pytest.raises(ConfigurationError):
        S3Store.Config(bucket="b", addressing_style="sideways")
    with pytest.raises(ConfigurationError):
        S3Store.from_config(S3Store.Config(bucket="b"), {"key": "only-a-key"})


def test_content_disposition_quotes_and_encodes() -> None:
    assert content_disposition("a.fits") == 'attachment; filename="a.fits"'
    header = content_disposition('Hello, 世界 "x".fits')
    assert header.startswith("attachment; filename=\"Hello, __ _x_.fits\"; filename*=UTF-8''")
    assert "%E4%B8%96" in header


def test_connection_test(s3_store: S3Store) -> None:
    result = s3_store.test_connection()
    assert result.ok, result.message
    assert list(s3_store.list()) == []


def test_secret_never_in_repr_or_errors(moto_endpoint: S3Endpoint) -> None:
    store = s3_store_for(moto_endpoint, "no-such-bucket-here")
    assert moto_endpoint.secret not in repr(store)
    with pytest.raises(ObjectNotFoundError) as info:
        store.put(io.BytesIO(b"x"), "x")
    assert type(info.value) is ObjectNotFoundError and "NoSuchBucket" in str(info.value)
    assert classify(info.value).kind is Kind.NEVER
    assert moto_endpoint.secret not in str(info.value)


@pytest.mark.parametrize("size", [0, 3 * MiB, 10 * MiB + 7, 16 * MiB + 1])
def test_uploader_alone_from_a_stream_with_short_reads(s3_endpoint: S3Endpoint, s3_bucket: str, size: int) -> None:
    """The uploader on its own (no store, no hashing reader) from a stream
    with only read() and short reads, twice in a row so the second upload
    runs in the first one's reused buffers."""
    client = s3_store_for(s3_endpoint, s3_bucket).client
    uploader = S3Uploader(client, s3_bucket, part_size=5 * MiB, multipart_threshold=10 * MiB)
    for seed in (1, 2):
        data = pattern(size, seed=seed)
        outcome = uploader.upload(ShortReader(data, 100_000, readinto=False), f"alone-{size}.bin")
        assert outcome.parts == (-(-size // (5 * MiB)) if size >= 10 * MiB else 0)
        assert outcome.crc32c == independent_s3_crc32c(data, 5 * MiB, 10 * MiB)
        head = admin_client(s3_endpoint).head_object(Bucket=s3_bucket, Key=f"alone-{size}.bin", ChecksumMode="ENABLED")
        if head.get("ChecksumCRC32C"):  # what the server computed from what it received, where it reports one
            # (moto reports a multipart object's composite without its "-<parts>")
            assert head["ChecksumCRC32C"].split("-")[0] == outcome.crc32c.split("-")[0]
        body = admin_client(s3_endpoint).get_object(Bucket=s3_bucket, Key=f"alone-{size}.bin")["Body"].read()
        assert body == data


def independent_s3_crc32c(data: bytes, part: int, threshold: int) -> str:
    """What S3 reports as the CRC32C of ``data`` uploaded in ``part``-byte
    parts from ``threshold`` bytes on, computed with google-crc32c (another
    implementation than the uploader's)."""

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    if len(data) < threshold:
        return b64(google_crc32c.Checksum(data).digest())
    parts = [data[i : i + part] for i in range(0, len(data), part)]
    joined = b"".join(google_crc32c.Checksum(p).digest() for p in parts)
    return f"{b64(google_crc32c.Checksum(joined).digest())}-{len(parts)}"
