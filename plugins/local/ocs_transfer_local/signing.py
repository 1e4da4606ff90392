"""The file server's wire conventions: HMAC-signed, expiring download links,
and the checksum header of uploads.

A link is ``<server>/_signed/<quoted path>?exp=<unix seconds>&sig=<hex>``
where ``sig`` is HMAC-SHA256, under the server's signing key, of the path (as
stored, ``/``-separated, no leading slash) and the expiry time. Anyone holding
the link can download that one file until it expires, without a token; the
signing key itself never leaves the server's configuration and the store that
makes links.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta
from urllib.parse import quote, urlencode

from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.redact import Secret

__all__ = ["SHA256_HEADER", "SIGNED_PREFIX", "MIN_KEY_LENGTH", "signature", "signed_url", "verify_signature"]

#: Response header of a successful PUT: the hex SHA-256 of the bytes the server stored.
SHA256_HEADER = "X-OCS-Transfer-SHA256"
#: URL prefix of signed downloads on the file server.
SIGNED_PREFIX = "/_signed/"
#: Signing keys (and access tokens) shorter than this are refused.
MIN_KEY_LENGTH = 16
_DOMAIN = b"ocs-transfer-signed-link/v1"


def _key_bytes(key: Secret) -> bytes:
    value = key.reveal()
    if len(value) < MIN_KEY_LENGTH:
        raise ConfigurationError(
            f"the signing key is too short ({len(value)} characters); use at least {MIN_KEY_LENGTH},"
            " e.g. the output of: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return value.encode()


def signature(key: Secret, path: str, expires_at: int) -> str:
    """The hex HMAC-SHA256 of ``path`` and ``expires_at`` under ``key``."""
    message = b"\n".join([_DOMAIN, path.strip("/").encode("utf-8"), str(int(expires_at)).encode()])
    return hmac.new(_key_bytes(key), message, hashlib.sha256).hexdigest()


def signed_url(
    server_url: str, key: Secret, path: str, expiration: timedelta, *, now: float | None = None
) -> str:
    """A download link to ``path`` on the file server at ``server_url``,
    valid for ``expiration``."""
    expires_at = int((time.time() if now is None else now) + expiration.total_seconds())
    rel = path.strip("/")
    query = urlencode({"exp": expires_at, "sig": signature(key, rel, expires_at)})
    return f"{server_url.rstrip('/')}{SIGNED_PREFIX}{quote(rel)}?{query}"


def verify_signature(key: Secret, path: str, exp: str, sig: str, *, now: float | None = None) -> bool:
    """Whether ``sig`` signs ``path`` until ``exp`` and ``exp`` is still in
    the future. Compares in constant time."""
    if not (exp.isascii() and exp.isdigit()) or len(exp) > 12 or exp != str(int(exp)):
        return False  # one spelling per expiry time: no leading zeros, no other digits than 0-9
    if int(exp) < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(signature(key, path, int(exp)), sig)
