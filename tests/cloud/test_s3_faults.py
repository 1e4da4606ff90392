"""Faults from RELIABILITY.md that apply to S3, injected by a TCP proxy of our
own between the real client and a real local server. Each failure must leave
nothing behind (no object, no open multipart upload) and be classified right."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ocs_transfer.exceptions import (
    CredentialError,
    FinalStorageError,
    IntegrityError,
    ObjectNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StorageError,
    TransientStorageError,
)
from ocs_transfer.retry import Kind, classify
from ocs_transfer.storage.s3 import S3Store
from ocs_transfer.testing.servers import FaultProxy, S3Endpoint

from .conftest import MiB, make_bucket, pattern, s3_store_for


@pytest.fixture
def proxy(s3_endpoint: S3Endpoint) -> Iterator[FaultProxy]:
    host, port = s3_endpoint.url.removeprefix("http://").split(":")
    with FaultProxy((host, int(port))) as p:
        yield p


def through(proxy: FaultProxy, ep: S3Endpoint, bucket: str, **options: Any) -> S3Store:
    return s3_store_for(ep, bucket, endpoint_url=proxy.url, **options)


def nothing_left(client: Any, bucket: str, key: str) -> None:
    """The "nothing lost, nothing partial" check: no object, no multipart upload."""
    assert client.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) == 0
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_transient_5xx_then_ok(s3_endpoint: S3Endpoint, s3_bucket: str, proxy: FaultProxy, s3_client: Any) -> None:
    if s3_endpoint.kind == "moto":
        pytest.skip("botocore's retry backoff makes this slow; once, against the real server, is enough")
    store = through(proxy, s3_endpoint, s3_bucket, max_attempts=3)
    data = pattern(2 * MiB, seed=5)
    proxy.fail_next(503, 500)
    stored = store.put(io.BytesIO(data), "x.fits", size=len(data))
    assert proxy.faults.http_errors == []  # both errors were answered, then the third attempt went through
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    versions = s3_client.list_object_versions(Bucket=s3_bucket, Prefix="x.fits").get("Versions", [])
    assert len(versions) == 1  # exactly one object
    body = s3_client.get_object(Bucket=s3_bucket, Key="x.fits")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == stored.sha256


@pytest.mark.parametrize(
    ("status", "code", "expected", "kind"),
    [
        (503, "SlowDown", RateLimitError, Kind.BACKOFF),
        (500, "InternalError", TransientStorageError, Kind.RETRY),
        (403, "AccessDenied", PermissionDeniedError, Kind.NEVER),
        (403, "InvalidAccessKeyId", CredentialError, Kind.NEVER),
        (400, "ExpiredToken", TransientStorageError, Kind.RETRY),
    ],
)
def test_errors_are_classified(
    s3_endpoint: S3Endpoint,
    s3_bucket: str,
    proxy: FaultProxy,
    s3_client: Any,
    status: int,
    code: str,
    expected: type[Exception],
    kind: Kind,
) -> None:
    store = through(proxy, s3_endpoint, s3_bucket, max_attempts=1)
    proxy.fail_next((status, code))
    with pytest.raises(expected) as info:
        store.put(io.BytesIO(b"data"), "y.fits")
    assert classify(info.value).kind is kind
    nothing_left(s3_client, s3_bucket, "y.fits")


@pytest.mark.parametrize(
    ("size", "cut", "part_size", "fails"),
    [
        (3 * MiB, 100 * 1024, 5 * MiB, True),
        (3 * MiB, 2 * MiB, 5 * MiB, True),  # the single PUT carries 3 MiB
        (3 * MiB, 5 * MiB + 300 * 1024, 5 * MiB, False),  # the whole upload fits under the cut
        (12 * MiB, 100 * 1024, 5 * MiB, True),
        (12 * MiB, 2 * MiB, 5 * MiB, True),  # every part (5, 5, 2 MiB) carries at least 2 MiB plus headers
        (12 * MiB, 5 * MiB + 300 * 1024, 6 * MiB, True),  # each 6 MiB part crosses the cut
    ],
    ids=["3M-cut100K", "3M-cut2M", "3M-fits", "12M-cut100K", "12M-cut2M", "12M-6Mparts-cut5.3M"],
)
def test_reset_mid_upload(
    s3_endpoint: S3Endpoint,
    s3_bucket: str,
    proxy: FaultProxy,
    s3_client: Any,
    size: int,
    cut: int,
    part_size: int,
    fails: bool,
) -> None:
    """The proxy resets every connection after ``cut`` bytes: the upload fails
    (retryable), nothing partial is visible, the multipart upload is aborted
    (the abort is retried on a fresh connection when its own gets cut). An
    upload that fits under the cut is stored whole. (Whether a server keeps a
    connection open for a second request differs: moto closes each, so only
    cuts inside a single request are certain to fail.)"""
    store = through(proxy, s3_endpoint, s3_bucket, max_attempts=1, part_size=part_size)
    proxy.cut_after(cut)
    data = pattern(size, seed=9)
    if fails:
        with pytest.raises(TransientStorageError) as info:
            store.put(io.BytesIO(data), "cut.fits", size=size)
        assert type(info.value) is TransientStorageError and classify(info.value).kind is Kind.RETRY
        nothing_left(s3_client, s3_bucket, "cut.fits")
    else:
        stored = store.put(io.BytesIO(data), "cut.fits", size=size)
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        body = s3_client.get_object(Bucket=s3_bucket, Key="cut.fits")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == stored.sha256
    proxy.heal()
    again = store.put(io.BytesIO(data), "cut.fits", size=size)  # and a retry succeeds
    body = s3_client.get_object(Bucket=s3_bucket, Key="cut.fits")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == again.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.timeout(60)
def test_stall_deadline(s3_endpoint: S3Endpoint, s3_bucket: str, proxy: FaultProxy, s3_client: Any) -> None:
    store = through(proxy, s3_endpoint, s3_bucket, max_attempts=1, read_timeout=1.0, connect_timeout=1.0)
    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(TransientStorageError) as info:
        store.put(io.BytesIO(pattern(MiB)), "stall.fits")
    assert classify(info.value).kind is Kind.RETRY
    waited = time.monotonic() - started
    # At least the configured read timeout (the stall, not some other error, ended
    # it) and less than the 10 s every other test uses: the 1 s setting was applied.
    assert 1.0 <= waited < 10.0, waited
    proxy.heal()
    nothing_left(s3_client, s3_bucket, "stall.fits")


@pytest.mark.parametrize("size", [MiB, 7 * MiB])
def test_corruption_detected(
    s3_endpoint: S3Endpoint, s3_bucket: str, proxy: FaultProxy, s3_client: Any, size: int
) -> None:
    """One byte flipped on the wire inside the body: SeaweedFS rejects it
    (BadDigest on the CRC32C); moto stores it and our re-read catches it
    (IntegrityError). Either way: retryable, and no bad object is left."""
    store = through(proxy, s3_endpoint, s3_bucket, max_attempts=1)
    proxy.corrupt_at(300 * 1024)
    # SeaweedFS may also answer BadDigest and close before the body is all sent:
    # then the client sees a dropped connection. Either way: retryable, nothing stored.
    expected = IntegrityError if s3_endpoint.kind == "moto" else (IntegrityError, TransientStorageError)
    with pytest.raises(expected) as info:
        store.put(io.BytesIO(pattern(size, seed=1)), "flip.fits", size=size)
    assert classify(info.value).kind is Kind.RETRY
    proxy.heal()
    assert not store.exists("flip.fits")
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_missing_bucket(s3_endpoint: S3Endpoint) -> None:
    store = s3_store_for(s3_endpoint, "no-such-bucket-anywhere")
    with pytest.raises(ObjectNotFoundError) as info:
        store.put(io.BytesIO(b"x"), "x.fits")
    assert classify(info.value).kind is Kind.NEVER
    with pytest.raises(ObjectNotFoundError):
        store.put(io.BytesIO(pattern(6 * MiB)), "x.fits")
    assert not store.test_connection().ok


def test_wrong_credentials_on_a_server_that_checks_them(seaweed_endpoint: S3Endpoint) -> None:
    bucket = make_bucket(seaweed_endpoint)
    for key, secret in ((seaweed_endpoint.key, "not-the-secret"), ("unknown-key", "whatever-secret")):
        config = S3Store.Config(
            bucket=bucket, endpoint_url=seaweed_endpoint.url, addressing_style="path", max_attempts=1
        )
        store = S3Store.from_config(config, {"key": key, "secret": secret})
        with pytest.raises(CredentialError) as info:
            store.put(io.BytesIO(b"x"), "x.fits")
        assert classify(info.value).kind is Kind.NEVER
        assert "not-the-secret" not in str(info.value)
        result = store.test_connection()
        assert not result.ok and "not-the-secret" not in result.message


def test_abort_is_retried(s3_endpoint: S3Endpoint, s3_bucket: str, proxy: FaultProxy, s3_client: Any) -> None:
    """The source fails after the first part; the first abort request then
    meets a 503; the abort is retried and no multipart upload is left."""

    class FailingSource(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            if self.sent >= 5 * MiB:
                proxy.drop_connections()
                proxy.fail_next(503)  # the next connection, the abort's, gets a 503
                raise OSError("the source disk went away")
            chunk = pattern(min(size, 5 * MiB - self.sent))
            self.sent += len(chunk)
            return chunk

    store = through(proxy, s3_endpoint, s3_bucket, max_attempts=1)
    with pytest.raises(StorageError) as info:
        store.put(FailingSource(), "aborted.fits")  # type: ignore[arg-type]
    assert type(info.value) is FinalStorageError and "source disk" in str(info.value)
    assert classify(info.value).kind is Kind.NEVER  # the source failed: not a destination fault to retry
    assert proxy.faults.http_errors == []  # the 503 was met...
    nothing_left(s3_client, s3_bucket, "aborted.fits")  # ...and the retried abort went through
