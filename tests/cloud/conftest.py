"""Servers for the S3 and GCS tests: moto and SeaweedFS (S3), the GCS
emulator, all on 127.0.0.1, started once per session and torn down after.
Each test gets its own fresh bucket."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ocs_transfer.storage.gcs import GCSStore
from ocs_transfer.storage.s3 import S3Store
from ocs_transfer.testing.servers import S3Endpoint, gcs_emulator, moto_s3, seaweedfs_s3

MiB = 1024 * 1024


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` bytes of a non-repeating-per-MiB pattern (cheap, deterministic)."""
    block = bytes((i * 7 + seed + (i >> 8)) & 0xFF for i in range(65536))
    reps = n // len(block) + 1
    return (block * reps)[:n]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[S3Endpoint]:
    with moto_s3() as ep:
        yield ep


@pytest.fixture(scope="session")
def seaweed_endpoint() -> Iterator[S3Endpoint]:
    with seaweedfs_s3() as ep:
        yield ep


@pytest.fixture(scope="session", params=["moto", "seaweedfs"])
def s3_endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    name = "moto_endpoint" if request.param == "moto" else "seaweed_endpoint"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@functools.cache
def admin_client(ep: S3Endpoint) -> Any:
    return ep.boto3_client()


def make_bucket(ep: S3Endpoint, versioned: bool = True) -> str:
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    client = admin_client(ep)
    client.create_bucket(Bucket=bucket)
    if versioned:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def s3_store_for(ep: S3Endpoint, bucket: str, **options: Any) -> S3Store:
    options.setdefault("part_size", 5 * MiB)
    options.setdefault("multipart_threshold", options["part_size"])  # small test files still go multipart
    options.setdefault("concurrency", 3)
    options.setdefault("max_attempts", 2)
    options.setdefault("read_timeout", 10.0)
    options.setdefault("connect_timeout", 3.0)
    config = S3Store.Config(
        bucket=bucket, endpoint_url=options.pop("endpoint_url", ep.url), addressing_style="path", **options
    )
    return S3Store.from_config(config, {"key": ep.key, "secret": ep.secret})


@pytest.fixture
def s3_bucket(s3_endpoint: S3Endpoint) -> str:
    return make_bucket(s3_endpoint)


@pytest.fixture
def s3_store(s3_endpoint: S3Endpoint, s3_bucket: str) -> Iterator[S3Store]:
    store = s3_store_for(s3_endpoint, s3_bucket, prefix="archive")
    yield store
    store.close()


@pytest.fixture
def s3_client(s3_endpoint: S3Endpoint) -> Any:
    return admin_client(s3_endpoint)


# -- GCS -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gcs_url() -> Iterator[str]:
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    with gcs_emulator() as url:
        yield url


@pytest.fixture
def gcs_bucket(gcs_url: str) -> str:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs_url}
    )
    name = f"t-{uuid.uuid4().hex[:16]}"
    client.create_bucket(name)
    return name


@pytest.fixture
def make_gcs_store(gcs_url: str, gcs_bucket: str) -> Callable[..., GCSStore]:
    def make(credentials: dict[str, Any] | None = None, **options: Any) -> GCSStore:
        options.setdefault("chunk_size", 256 * 1024)
        options.setdefault("timeout", 10.0)
        config = GCSStore.Config(bucket=gcs_bucket, endpoint_url=gcs_url, anonymous=True, project="test", **options)
        return GCSStore.from_config(config, credentials)

    return make


@pytest.fixture
def gcs_store(make_gcs_store: Callable[..., GCSStore]) -> GCSStore:
    return make_gcs_store(prefix="archive")
