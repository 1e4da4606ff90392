"""GCS faults from RELIABILITY.md that apply: transient 5xx, a connection
cut mid-upload. The fault proxy sits between gcsfs and the emulator."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ocs_transfer.exceptions import TransientStorageError
from ocs_transfer.retry import Kind, classify
from ocs_transfer.storage.gcs import GCSStore
from ocs_transfer.testing.servers import FaultProxy

from .conftest import MiB, pattern
from .test_gcs import emulator_client


@pytest.fixture
def gcs_proxy(gcs_url: str) -> Iterator[FaultProxy]:
    host, port = gcs_url.removeprefix("http://").split(":")
    with FaultProxy((host, int(port))) as proxy:
        yield proxy


@pytest.fixture
def proxied_store(gcs_proxy: FaultProxy, gcs_bucket: str) -> Callable[..., GCSStore]:
    def make(**options: Any) -> GCSStore:
        options.setdefault("chunk_size", 256 * 1024)
        options.setdefault("timeout", 10.0)
        config = GCSStore.Config(
            bucket=gcs_bucket, endpoint_url=gcs_proxy.url, anonymous=True, project="test", prefix="f", **options
        )
        return GCSStore.from_config(config, None)

    return make


def blobs(gcs_url: str, bucket: str) -> dict[str, bytes]:
    client = emulator_client(gcs_url)
    return {b.name: b.download_as_bytes() for b in client.bucket(bucket).list_blobs()}


def test_transient_5xx_then_ok(
    proxied_store: Callable[..., GCSStore], gcs_proxy: FaultProxy, gcs_url: str, gcs_bucket: str
) -> None:
    store = proxied_store()
    data = pattern(MiB + 17, seed=3)
    gcs_proxy.fail_next(503, 503)
    stored = store.put(io.BytesIO(data), "x.fits", size=len(data))
    assert gcs_proxy.faults.http_errors == []  # both errors were answered before it went through
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    held = blobs(gcs_url, gcs_bucket)
    assert list(held) == ["f/x.fits"]  # exactly one object
    assert hashlib.sha256(held["f/x.fits"]).hexdigest() == stored.sha256


def test_reset_mid_upload_every_time_fails_retryable_and_leaves_nothing(
    proxied_store: Callable[..., GCSStore], gcs_proxy: FaultProxy, gcs_url: str, gcs_bucket: str
) -> None:
    """Every connection is cut inside its first chunk: gcsfs gives up after
    its own retries; the error is retryable and no object is visible."""
    store = proxied_store()
    gcs_proxy.cut_after(100_000)
    with pytest.raises(TransientStorageError) as info:
        store.put(io.BytesIO(pattern(2 * MiB, seed=1)), "cut.fits", size=2 * MiB)
    assert type(info.value) is TransientStorageError and classify(info.value).kind is Kind.RETRY
    gcs_proxy.heal()
    assert blobs(gcs_url, gcs_bucket) == {}


def test_reset_once_mid_upload_is_retryable_and_a_retry_stores_one_whole_object(
    proxied_store: Callable[..., GCSStore], gcs_proxy: FaultProxy, gcs_url: str, gcs_bucket: str
) -> None:
    """One connection is cut mid-chunk, later ones pass. GCS keeps part of
    the chunk while gcsfs resends from its own offset, so the session is lost:
    that must be a retryable error with nothing visible, and the retry (a new
    session) must store the object whole, exactly once."""
    store = proxied_store()
    data = pattern(2 * MiB, seed=2)
    gcs_proxy.cut_after(100_000)
    stop = threading.Event()

    def heal_after_first_cut() -> None:
        while not stop.is_set():
            if gcs_proxy.bytes_up >= 100_000:
                gcs_proxy.cut_after(None)
                return
            time.sleep(0.001)

    watcher = threading.Thread(target=heal_after_first_cut, daemon=True)
    watcher.start()
    try:
        with pytest.raises(TransientStorageError) as info:
            store.put(io.BytesIO(data), "cut.fits", size=len(data))
        assert type(info.value) is TransientStorageError and classify(info.value).kind is Kind.RETRY
        assert blobs(gcs_url, gcs_bucket) == {}
        stored = store.put(io.BytesIO(data), "cut.fits", size=len(data))  # what the engine's retry does
    finally:
        stop.set()
        watcher.join()
    assert gcs_proxy.connections >= 2  # the cut happened and it reconnected
    assert blobs(gcs_url, gcs_bucket) == {"f/cut.fits": data}
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
