"""The gcs provider against gcp-storage-emulator on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_crc32c
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ocs_transfer import plugins
from ocs_transfer.exceptions import (
    ConfigurationError,
    CredentialError,
    ObjectNotFoundError,
    TransferCancelledError,
)
from ocs_transfer.redact import Secret
from ocs_transfer.retry import Kind, classify
from ocs_transfer.storage.gcs import GCSStore

from .conftest import MiB, pattern


def service_account_info(email: str = "uploader@test-project.iam.gserviceaccount.com") -> dict[str, str]:
    """A syntactically real service-account key (a fresh RSA key); signing
    happens locally, so it never has to reach Google."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "abc123",
        "private_key": pem,
        "client_email": email,
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def emulator_client(gcs_url: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs_url})


@pytest.mark.parametrize("size", [0, 1, 256 * 1024, 3 * MiB + 17])
def test_roundtrip_and_interop(gcs_store: GCSStore, gcs_url: str, gcs_bucket: str, size: int) -> None:
    data = pattern(size, seed=size % 13)
    stored = gcs_store.put(io.BytesIO(data), "raw/frame.fits.fz", size=size, content_type="image/fits")
    assert (stored.size, stored.md5, stored.sha256) == (
        size,
        hashlib.md5(data).hexdigest(),
        hashlib.sha256(data).hexdigest(),
    )
    crc = base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
    assert stored.provider_checksum == f"crc32c:{crc}"
    assert stored.version_id  # the generation
    blob = emulator_client(gcs_url).bucket(gcs_bucket).get_blob("archive/raw/frame.fits.fz")
    assert blob.crc32c == crc
    assert blob.content_type == "image/fits"
    assert blob.content_disposition == 'attachment; filename="frame.fits.fz"'
    assert hashlib.sha256(blob.download_as_bytes()).hexdigest() == stored.sha256
    with gcs_store.open("raw/frame.fits.fz") as fh:
        assert fh.read() == data


def test_list_info_delete(gcs_store: GCSStore) -> None:
    for name in ("a/1.fits", "a/2.fits", "b/3.fits"):
        gcs_store.put(io.BytesIO(name.encode()), name)
    assert sorted(o.path for o in gcs_store.list()) == ["a/1.fits", "a/2.fits", "b/3.fits"]
    assert sorted(o.path for o in gcs_store.list("a")) == ["a/1.fits", "a/2.fits"]
    info = gcs_store.info("a/1.fits")
    assert info.size == 8 and info.version_id
    gcs_store.delete_file("a/1.fits")
    assert not gcs_store.exists("a/1.fits")
    with pytest.raises(ObjectNotFoundError):
        gcs_store.delete_file("a/1.fits")
    with pytest.raises(ObjectNotFoundError):
        gcs_store.info("nope.fits")


def test_cancel_mid_resumable_upload_leaves_nothing(gcs_store: GCSStore) -> None:
    cancel = threading.Event()
    seen = [0]

    def progress(n: int) -> None:
        seen[0] += n
        if seen[0] >= MiB:
            cancel.set()

    with pytest.raises(TransferCancelledError):
        gcs_store.put(io.BytesIO(pattern(4 * MiB)), "big.bin", progress=progress, cancel=cancel)
    assert not gcs_store.exists("big.bin")
    assert list(gcs_store.list()) == []


def test_signed_links_need_a_service_account_key(make_gcs_store: Callable[..., GCSStore]) -> None:
    anonymous = make_gcs_store()
    anonymous.put(io.BytesIO(b"x"), "x.txt")
    with pytest.raises(ConfigurationError, match="service-account key"):
        anonymous.get_url("x.txt")

    info = service_account_info()
    store = make_gcs_store({"service_account_json": Secret(json.dumps(info))})
    stored = store.put(io.BytesIO(b"hello"), "hello.txt")
    url = store.get_url("hello.txt", stored.version_id, expiration=timedelta(hours=1))
    query = parse_qs(urlsplit(url).query)
    assert query["X-Goog-Expires"] == ["3600"]
    assert query["X-Goog-Credential"][0].startswith("uploader@test-project.iam.gserviceaccount.com/")
    assert query["generation"] == [stored.version_id]
    assert len(query["X-Goog-Signature"][0]) == 512  # RSA-2048 signature, hex
    assert info["private_key"] not in repr(store) and "PRIVATE KEY" not in url
    with pytest.raises(ConfigurationError):
        store.get_url("hello.txt", expiration=timedelta(days=8))


def test_explicit_credentials_win_over_adc(
    make_gcs_store: Callable[..., GCSStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adc = tmp_path / "adc.json"
    adc.write_text(json.dumps(service_account_info("adc@test-project.iam.gserviceaccount.com")))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    explicit = tmp_path / "explicit.json"
    explicit.write_text(json.dumps(service_account_info("explicit@test-project.iam.gserviceaccount.com")))
    store = make_gcs_store({"service_account_file": str(explicit)})
    assert store.signer.service_account_email == "explicit@test-project.iam.gserviceaccount.com"
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        make_gcs_store({"service_account_json": "{not json"})
    with pytest.raises(ConfigurationError, match="cannot read"):
        make_gcs_store({"service_account_file": str(tmp_path / "missing.json")})


def test_versions(make_gcs_store: Callable[..., GCSStore]) -> None:
    store = make_gcs_store()
    first = store.put(io.BytesIO(b"one"), "v.txt")
    second = store.put(io.BytesIO(b"two!"), "v.txt")
    assert first.version_id != second.version_id
    assert store.info("v.txt").version_id == second.version_id
    store.delete_file("v.txt", second.version_id)
    assert not store.exists("v.txt")


def test_quick_url_and_registration(builtin_plugins_only: None) -> None:
    assert plugins.get_provider("gcs") is GCSStore
    config = GCSStore.config_from_url("gs://bucket/some/prefix", project="p")
    assert (config.bucket, config.prefix, config.project) == ("bucket", "some/prefix", "p")
    with pytest.raises(ConfigurationError):
        GCSStore.Config(bucket="b", chunk_size=1000)


def test_connection_test(gcs_store: GCSStore) -> None:
    result = gcs_store.test_connection()
    assert result.ok, result.message


def test_missing_bucket(gcs_url: str) -> None:
    config = GCSStore.Config(bucket="no-such-bucket-here", endpoint_url=gcs_url, anonymous=True, timeout=10.0)
    store = GCSStore.from_config(config)
    with pytest.raises(ObjectNotFoundError) as info:
        store.put(io.BytesIO(b"x"), "x.fits")
    assert classify(info.value).kind is Kind.NEVER
    assert not store.test_connection().ok


def test_no_credentials_anywhere_is_a_clear_configuration_error(
    gcs_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without explicit credentials, anonymous access or any ADC source, the
    store says what to provide (no network: ADC lookup is local first)."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    config = GCSStore.Config(bucket="b", endpoint_url=gcs_url, timeout=5.0)
    with pytest.raises((ConfigurationError, CredentialError)) as info:
        GCSStore.from_config(config).put(io.BytesIO(b"x"), "x.fits")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(info.value) or "credentials" in str(info.value).lower()
    assert classify(info.value).kind is Kind.NEVER
