"""Credentials at rest: AES-256-GCM under a key ring from the environment.

The key ring comes from ``OCS_TRANSFER_KEYS`` (``kid:base64key,kid2:base64key``)
and ``OCS_TRANSFER_ACTIVE_KEY`` (the kid new values are encrypted with; optional
when the ring holds one key). Every key decodes to exactly 32 bytes; there is no
built-in default key, so a missing or malformed ring stops start-up with a
:class:`~ocs_transfer.exceptions.ConfigurationError`.

A stored value looks like ``v1:<kid>:<base64url(nonce || ciphertext || tag)>``.
The associated data ``ocs_transfer|v1|<kid>|<table>|<record id>|<field>`` binds
each ciphertext to its place: the reader rebuilds it from the row it is reading,
so a value copied to another record or field, or altered in any byte, does not
decrypt. Every failure is the same :class:`~ocs_transfer.exceptions.CredentialError`
saying where, never why in cryptographic detail. Decrypted values are
:class:`~ocs_transfer.redact.Secret`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..exceptions import ConfigurationError, CredentialError
from ..redact import Secret
from ..settings import Settings

__all__ = ["KeyRing", "generate_key", "VERSION"]

VERSION = "v1"
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NONCE_BYTES = 12
_KEY_BYTES = 32


def generate_key() -> str:
    """A fresh random key, base64-encoded, for ``OCS_TRANSFER_KEYS``."""
    return base64.b64encode(os.urandom(_KEY_BYTES)).decode()


def _decode_key(kid: str, text: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    for altchars in (None, b"-_"):
        try:
            raw = base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(raw) == _KEY_BYTES:
            return raw
        raise ConfigurationError(
            f"OCS_TRANSFER_KEYS: key {kid!r} decodes to {len(raw)} bytes; AES-256 needs exactly 32"
            " (generate one with: ocs-transfer keys generate)"
        )
    raise ConfigurationError(f"OCS_TRANSFER_KEYS: key {kid!r} is not valid base64")


def _associated_data(kid: str, table: str, record_id: object, field: str) -> bytes:
    return f"ocs_transfer|{VERSION}|{kid}|{table}|{record_id}|{field}".encode()


@attrs.frozen
class KeyRing:
    """The key-encryption keys and which one is active. Build with
    :meth:`from_settings` or :meth:`parse`."""

    _keys: Mapping[str, bytes] = attrs.field(repr=False, alias="keys")
    active: str

    def __attrs_post_init__(self) -> None:
        if self.active not in self._keys:
            raise ConfigurationError(
                f"OCS_TRANSFER_ACTIVE_KEY={self.active!r} is not a kid in OCS_TRANSFER_KEYS"
                f" (kids: {', '.join(sorted(self._keys)) or 'none'})"
            )

    @classmethod
    def parse(cls, keys: str | Secret | None, active: str | None = None) -> KeyRing:
        """Parse ``kid:base64key,...``; ``active`` defaults to the only kid."""
        text = keys.reveal() if isinstance(keys, Secret) else keys
        if not text or not text.strip():
            raise ConfigurationError(
                "OCS_TRANSFER_KEYS is not set: credentials cannot be encrypted or read without a key"
                " (there is no default key). Generate one with `ocs-transfer keys generate` and set"
                " OCS_TRANSFER_KEYS=<kid>:<key> and OCS_TRANSFER_ACTIVE_KEY=<kid>"
            )
        ring: dict[str, bytes] = {}
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            kid, sep, encoded = item.partition(":")
            kid = kid.strip()
            if not sep or not _KID.match(kid):
                raise ConfigurationError(
                    "OCS_TRANSFER_KEYS is malformed: expected kid:base64key[,kid:base64key...] with kids of"
                    " letters, digits, '.', '_' or '-'"
                )
            if kid in ring:
                raise ConfigurationError(f"OCS_TRANSFER_KEYS names key {kid!r} twice")
            ring[kid] = _decode_key(kid, encoded)
        if not ring:
            raise ConfigurationError("OCS_TRANSFER_KEYS holds no keys")
        if not active:
            if len(ring) > 1:
                raise ConfigurationError("OCS_TRANSFER_KEYS holds several keys: set OCS_TRANSFER_ACTIVE_KEY to one kid")
            active = next(iter(ring))
        return cls(keys=ring, active=active.strip())

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        return cls.parse(settings.transfer_keys, settings.transfer_active_key)

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def encrypt(self, value: str | Secret, *, table: str, record_id: object, field: str) -> str:
        """Encrypt ``value`` for ``table``/``record_id``/``field`` with the active key."""
        plain = value.reveal() if isinstance(value, Secret) else value
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._keys[self.active]).encrypt(
            nonce, plain.encode(), _associated_data(self.active, table, record_id, field)
        )
        return f"{VERSION}:{self.active}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    @staticmethod
    def kid_of(stored: str) -> str | None:
        """The kid a stored value was encrypted with (``None`` if it is not ours)."""
        parts = stored.split(":", 2)
        if len(parts) != 3 or parts[0] != VERSION:
            return None
        return parts[1]

    def decrypt(self, stored: str, *, table: str, record_id: object, field: str) -> Secret:
        """Decrypt a stored value, rebuilding its associated data from where it was read."""
        where = f"{table} {record_id} field {field!r}"
        kid = self.kid_of(stored)
        if kid is None:
            raise CredentialError(f"the stored credential in {where} is not in a format this version reads")
        key = self._keys.get(kid)
        if key is None:
            raise CredentialError(
                f"the stored credential in {where} was encrypted with key {kid!r}, which OCS_TRANSFER_KEYS lacks"
            )
        try:
            blob = base64.urlsafe_b64decode(stored.split(":", 2)[2])
            if len(blob) < _NONCE_BYTES + 16:
                raise ValueError("short")
            plain = AESGCM(key).decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _associated_data(kid, table, record_id, field)
            )
            return Secret(plain.decode())
        except (InvalidTag, ValueError, binascii.Error, UnicodeDecodeError):
            raise CredentialError(
                f"the stored credential in {where} could not be decrypted with key {kid!r}: OCS_TRANSFER_KEYS"
                f" holds a different key under that kid (or the stored value was altered). Set"
                f" OCS_TRANSFER_KEYS to the key the credentials were saved with"
            ) from None

    def needs_rotation(self, stored: str) -> bool:
        return self.kid_of(stored) != self.active
