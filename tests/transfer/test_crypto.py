"""aead_binding and kek_validation (RELIABILITY.md)."""

from __future__ import annotations

import base64
import os

import pytest

from ocs_transfer.exceptions import ConfigurationError, CredentialError
from ocs_transfer.redact import Secret
from ocs_transfer.settings import Settings
from ocs_transfer.transfer.crypto import KeyRing, generate_key

SECRET = "sl.u.AbCdEf-refresh-token-0123456789"


def _flip(stored: str, index: int) -> str:
    prefix, kid, blob = stored.split(":", 2)
    raw = bytearray(base64.urlsafe_b64decode(blob))
    raw[index] ^= 0x01
    return f"{prefix}:{kid}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"


def test_roundtrip_gives_a_secret(keyring: KeyRing) -> None:
    stored = keyring.encrypt(SECRET, table="t", record_id=7, field="credentials.token")
    assert stored.startswith("v1:k1:")
    assert SECRET not in stored
    value = keyring.decrypt(stored, table="t", record_id=7, field="credentials.token")
    assert isinstance(value, Secret)
    assert value.reveal() == SECRET
    # fresh nonce every time
    assert stored != keyring.encrypt(SECRET, table="t", record_id=7, field="credentials.token")


@pytest.mark.parametrize(
    "where",
    [
        {"table": "other", "record_id": 7, "field": "credentials.token"},
        {"table": "t", "record_id": 8, "field": "credentials.token"},
        {"table": "t", "record_id": 7, "field": "credentials.app_secret"},
    ],
)
def test_aead_binding_swapped_place_fails(keyring: KeyRing, where: dict[str, object]) -> None:
    stored = keyring.encrypt(SECRET, table="t", record_id=7, field="credentials.token")
    with pytest.raises(CredentialError) as info:
        keyring.decrypt(stored, **where)  # type: ignore[arg-type]
    assert SECRET not in str(info.value) and stored not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_aead_binding_every_flipped_byte_fails(keyring: KeyRing) -> None:
    stored = keyring.encrypt(SECRET, table="t", record_id=1, field="f")
    size = len(base64.urlsafe_b64decode(stored.split(":", 2)[2]))
    for index in range(size):
        with pytest.raises(CredentialError):
            keyring.decrypt(_flip(stored, index), table="t", record_id=1, field="f")


def test_aead_binding_kid_swap_and_garbage(keyring: KeyRing) -> None:
    other = KeyRing.parse(f"k1:{generate_key()}")
    stored = keyring.encrypt(SECRET, table="t", record_id=1, field="f")
    for bad in (stored.replace("v1:", "v2:", 1), "v1:k1:!!!", "v1:k1:", "plain", stored[:-6]):
        with pytest.raises(CredentialError):
            keyring.decrypt(bad, table="t", record_id=1, field="f")
    with pytest.raises(CredentialError, match="could not be decrypted"):
        other.decrypt(stored, table="t", record_id=1, field="f")
    with pytest.raises(CredentialError, match="lacks"):
        KeyRing.parse(f"k9:{generate_key()}").decrypt(stored, table="t", record_id=1, field="f")


@pytest.mark.parametrize(
    ("keys", "active", "message"),
    [
        (None, None, "not set"),
        ("", "k1", "not set"),
        ("k1:" + base64.b64encode(os.urandom(16)).decode(), None, "16 bytes"),
        ("k1:" + base64.b64encode(os.urandom(33)).decode(), None, "33 bytes"),
        ("k1:not base64 at all!", None, "not valid base64"),
        ("k1", None, "malformed"),
        ("bad kid:" + generate_key(), None, "malformed"),
        ("k1:" + generate_key() + ",k1:" + generate_key(), "k1", "twice"),
        ("k1:" + generate_key() + ",k2:" + generate_key(), None, "ACTIVE"),
        ("k1:" + generate_key(), "k2", "not a kid"),
    ],
)
def test_kek_validation(keys: str | None, active: str | None, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        KeyRing.parse(keys, active)
    if keys:
        for item in keys.split(","):
            material = item.partition(":")[2]
            if len(material) > 8:
                assert material not in str(info.value)


def test_kek_from_settings_env_and_no_default() -> None:
    with pytest.raises(ConfigurationError, match="no default key"):
        KeyRing.from_settings(Settings.from_env({}))
    key = generate_key()
    ring = KeyRing.from_settings(Settings.from_env({"OCS_TRANSFER_KEYS": f"a:{key}", "OCS_TRANSFER_ACTIVE_KEY": "a"}))
    assert ring.active == "a" and ring.kids == ("a",)
    assert key not in repr(ring) and key not in repr(Settings.from_env({"OCS_TRANSFER_KEYS": f"a:{key}"}))
    # url-safe base64 keys are accepted too
    raw = os.urandom(32)
    assert KeyRing.parse("u:" + base64.urlsafe_b64encode(raw).decode().rstrip("=")).kids == ("u",)


def test_empty_entries_between_keys_are_skipped_not_the_end() -> None:
    ring = KeyRing.parse(f"k1:{generate_key()}, ,,k2:{generate_key()},", active="k2")
    assert ring.kids == ("k1", "k2")


def test_an_unknown_active_kid_names_the_kids_there_are() -> None:
    with pytest.raises(ConfigurationError, match=r"is not a kid in OCS_TRANSFER_KEYS \(kids: k1, k2\)"):
        KeyRing.parse(f"k1:{generate_key()},k2:{generate_key()}", active="k3")
    with pytest.raises(ConfigurationError, match=r"\(kids: none\)"):
        KeyRing(keys={}, active="k1")


def test_an_empty_secret_round_trips() -> None:
    """The shortest ciphertext there is (nonce and tag, nothing else) is valid."""
    ring = KeyRing.parse(f"k1:{generate_key()}")
    stored = ring.encrypt("", table="t", record_id=1, field="f")
    assert ring.decrypt(stored, table="t", record_id=1, field="f").reveal() == ""


@pytest.mark.parametrize("version", ["v0", "v2", "V1", ""])
def test_only_this_format_version_is_read(version: str) -> None:
    ring = KeyRing.parse(f"k1:{generate_key()}")
    stored = ring.encrypt("x", table="t", record_id=1, field="f")
    other = version + stored.removeprefix("v1")
    assert KeyRing.kid_of(stored) == "k1" and KeyRing.kid_of(other) is None
    with pytest.raises(CredentialError, match="not in a format this version reads"):
        ring.decrypt(other, table="t", record_id=1, field="f")
