"""Authorizing the app for a Dropbox account (OAuth 2 with PKCE, offline
access): for web services, :func:`authorize_url` then :func:`exchange_code`;
for people, ``ocs-transfer dropbox authorize``.

The result is the long-lived refresh token (what a destination stores, with
the app key and secret) and the account's e-mail address (for "authorized as
..."). Access tokens are never stored: the store obtains them on demand.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import urlencode

import attrs

from ocs_transfer.exceptions import CredentialError, TransientStorageError
from ocs_transfer.redact import Secret, redact
from ocs_transfer.transfer.guards import check_base_url

from .client import DEFAULT_API_URL

__all__ = ["AUTHORIZE_URL", "Authorization", "AuthorizeRequest", "authorize_url", "exchange_code"]

AUTHORIZE_URL = "https://www.dropbox.com/oauth2/authorize"


@attrs.frozen
class AuthorizeRequest:
    """Where to send the user, and what to keep until the code comes back
    (``state`` to check against the redirect, ``code_verifier`` for the exchange)."""

    url: str
    state: str
    code_verifier: Secret = attrs.field(repr=False)


@attrs.frozen
class Authorization:
    refresh_token: Secret = attrs.field(repr=False)
    email: str
    account_id: str

    def credentials(self, app_key: str, app_secret: str | None) -> dict[str, str]:
        """What a destination stores."""
        creds = {"app_key": app_key, "refresh_token": self.refresh_token.reveal()}
        if app_secret:
            creds["app_secret"] = app_secret
        return creds


def authorize_url(
    app_key: str, redirect_uri: str | None = None, *, state: str | None = None, authorize_base: str = AUTHORIZE_URL
) -> AuthorizeRequest:
    """The authorize page's URL for ``redirect_uri`` (``None``: Dropbox shows
    the code to copy), with a fresh ``state`` and PKCE challenge, asking for
    offline access (a refresh token)."""
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = state or secrets.token_urlsafe(24)
    params = {
        "client_id": app_key,
        "response_type": "code",
        "token_access_type": "offline",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
    }
    if redirect_uri:
        params["redirect_uri"] = redirect_uri
    return AuthorizeRequest(f"{authorize_base}?{urlencode(params)}", state, Secret(verifier))


def exchange_code(
    app_key: str,
    code: str,
    code_verifier: Secret | str,
    *,
    app_secret: str | None = None,
    redirect_uri: str | None = None,
    api_url: str = DEFAULT_API_URL,
    timeout: float = 30.0,
) -> Authorization:
    """Trade the code from the redirect for a refresh token and the
    account's e-mail address. A refused code is a ``CredentialError``."""
    import requests

    base = check_base_url("api_url", api_url)
    verifier = code_verifier.reveal() if isinstance(code_verifier, Secret) else code_verifier
    form = {"grant_type": "authorization_code", "code": code.strip(), "client_id": app_key, "code_verifier": verifier}
    if app_secret:
        form["client_secret"] = app_secret
    if redirect_uri:
        form["redirect_uri"] = redirect_uri
    hidden = (verifier, app_secret, code)
    try:
        token = requests.post(f"{base}/oauth2/token", data=form, timeout=timeout)
        if token.status_code >= 500:
            raise TransientStorageError(f"Dropbox's token endpoint answered {token.status_code}; try again")
        body: dict[str, Any] = token.json() if token.content else {}
        if token.status_code != 200 or "refresh_token" not in body:
            reason = redact(str(body.get("error_description") or body.get("error") or token.status_code), hidden)
            raise CredentialError(f"Dropbox refused the authorization code ({reason}); start the authorization again")
        access = body["access_token"]
        account = requests.post(
            f"{base}/2/users/get_current_account",
            headers={"Authorization": f"Bearer {access}", "Content-Type": "application/json"},
            data="null",
            timeout=timeout,
        )
        account.raise_for_status()
        info = account.json()
    except requests.RequestException as exc:
        raise TransientStorageError(f"reaching Dropbox failed: {type(exc).__name__}") from None
    return Authorization(Secret(body["refresh_token"]), str(info.get("email", "")), str(info.get("account_id", "")))
