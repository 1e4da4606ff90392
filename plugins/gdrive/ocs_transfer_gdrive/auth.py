"""Google OAuth for Drive: credentials from a refresh token or a service
account, the authorize URL (state + PKCE) and the code exchange.

Access tokens are obtained on demand by google-auth and refreshed when they
expire; they live only in memory. A refused refresh token (``invalid_grant``)
becomes a :class:`~ocs_transfer.exceptions.CredentialError` that says to
re-authorize.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import attrs

from ocs_transfer.exceptions import ConfigurationError, CredentialError
from ocs_transfer.redact import Secret
from ocs_transfer.transfer.guards import check_base_url

__all__ = [
    "AUTHORIZE_URL",
    "DEFAULT_API_URL",
    "DEFAULT_TOKEN_URL",
    "SCOPE",
    "Authorization",
    "AuthorizationRequest",
    "authorize_url",
    "exchange_code",
    "make_credentials",
    "reauthorize_error",
]

DEFAULT_API_URL = "https://www.googleapis.com"
DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
#: Full Drive access: the destination folder may be one the user made (``drive.file`` would not see it).
SCOPE = "https://www.googleapis.com/auth/drive"


def reauthorize_error(detail: str = "") -> CredentialError:
    return CredentialError(
        "Google refused the destination's refresh token (invalid_grant: revoked, expired or for another"
        " client): re-authorize the destination with `ocs-transfer gdrive authorize --dest NAME`."
        " Apps whose OAuth consent screen is in 'Testing' get refresh tokens that expire after 7 days;"
        " publish the app to keep them." + (f" ({detail})" if detail else "")
    )


def _reveal(value: Any) -> str | None:
    if value is None:
        return None
    return value.reveal() if isinstance(value, Secret) else str(value)


def make_credentials(creds: Mapping[str, Any], *, token_url: str, subject: str | None = None) -> Any:
    """google-auth credentials from the destination's credential fields:
    ``client_id`` + ``client_secret`` + ``refresh_token``, or
    ``service_account_json`` (the key file's content; ``subject`` impersonates
    a user of the domain)."""
    sa = _reveal(creds.get("service_account_json"))
    if sa:
        from google.oauth2 import service_account

        try:
            info = json.loads(sa)
        except json.JSONDecodeError:
            raise ConfigurationError("service_account_json is not valid JSON (give the key file's content)") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ConfigurationError('service_account_json must be a service account key ("type": "service_account")')
        info["token_uri"] = token_url
        try:
            sa_creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=[SCOPE]
            )
        except (ValueError, KeyError) as exc:
            raise ConfigurationError(f"service_account_json is not a usable key: {type(exc).__name__}") from None
        return sa_creds.with_subject(subject) if subject else sa_creds
    refresh, client_id, client_secret = (_reveal(creds.get(k)) for k in ("refresh_token", "client_id", "client_secret"))
    if not (refresh and client_id and client_secret):
        missing = [k for k, v in (("client_id", client_id), ("client_secret", client_secret),
                                   ("refresh_token", refresh)) if not v]  # fmt: skip
        raise CredentialError(
            f"the gdrive destination lacks {', '.join(missing)}: give client_id, client_secret and a refresh_token"
            " (from `ocs-transfer gdrive authorize`), or service_account_json"
        )
    from google.oauth2.credentials import Credentials

    return Credentials(  # type: ignore[no-untyped-call]
        token=None, refresh_token=refresh, client_id=client_id, client_secret=client_secret, token_uri=token_url,
        scopes=[SCOPE],
    )  # fmt: skip


@attrs.frozen(kw_only=True)
class AuthorizationRequest:
    """What :func:`authorize_url` made: send the user to ``url``; keep
    ``state`` and ``code_verifier`` (server side) for :func:`exchange_code`."""

    url: str
    state: str
    code_verifier: Secret = attrs.field(repr=False)
    redirect_uri: str


@attrs.frozen(kw_only=True)
class Authorization:
    """The result of a code exchange: store ``refresh_token`` as the
    destination's credential; show ``email`` ("authorized as ...")."""

    refresh_token: Secret = attrs.field(repr=False)
    email: str


def authorize_url(
    client_id: str, redirect_uri: str, *, state: str | None = None, scope: str = SCOPE,
    auth_url: str = AUTHORIZE_URL, login_hint: str | None = None,
) -> AuthorizationRequest:  # fmt: skip
    """The Google consent URL for ``redirect_uri``, with a random ``state`` and a
    PKCE (S256) challenge; offline access so the exchange yields a refresh token."""
    state = state or secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code", "scope": scope,
        "state": state, "code_challenge": challenge, "code_challenge_method": "S256", "access_type": "offline",
        "prompt": "consent", "include_granted_scopes": "true",
    }  # fmt: skip
    if login_hint:
        params["login_hint"] = login_hint
    return AuthorizationRequest(url=f"{auth_url}?{urlencode(params)}", state=state, code_verifier=Secret(verifier),
                                redirect_uri=redirect_uri)  # fmt: skip


def exchange_code(
    client_id: str, client_secret: Secret | str, code: str, request: AuthorizationRequest, *,
    token_url: str = DEFAULT_TOKEN_URL, api_url: str = DEFAULT_API_URL, timeout: float = 30.0,
) -> Authorization:  # fmt: skip
    """Exchange the authorization ``code`` for a refresh token, and ask Drive
    (``about.get``) which account it belongs to."""
    import requests

    token_url = check_base_url("token_url", token_url, full_url=True)
    api_url = check_base_url("api_url", api_url)
    secret = client_secret.reveal() if isinstance(client_secret, Secret) else client_secret
    try:
        response = requests.post(token_url, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": request.redirect_uri,
            "client_id": client_id, "client_secret": secret, "code_verifier": request.code_verifier.reveal(),
        }, timeout=timeout)  # fmt: skip
    except requests.RequestException as exc:
        raise CredentialError(f"could not reach Google's token endpoint: {type(exc).__name__}") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict):
        error = body.get("error", response.status_code) if isinstance(body, dict) else response.status_code
        raise CredentialError(
            f"Google refused the authorization code ({error}); codes work once and expire within minutes:"
            " authorize again"
        )
    refresh = body.get("refresh_token")
    if not refresh:
        raise CredentialError(
            "Google returned no refresh token (the consent was not offline); authorize again with the printed URL"
        )
    about = requests.get(
        f"{api_url}/drive/v3/about", params={"fields": "user(emailAddress)"},
        headers={"Authorization": f"Bearer {body.get('access_token', '')}"}, timeout=timeout,
    )  # fmt: skip
    email = ""
    if about.status_code == 200:
        email = str((about.json().get("user") or {}).get("emailAddress") or "")
    return Authorization(refresh_token=Secret(str(refresh)), email=email)


def parse_code(pasted: str, expected_state: str) -> str:
    """The code from what a person pasted: the code itself, or the whole
    redirected URL (whose ``state`` must match)."""
    from urllib.parse import parse_qs

    text = pasted.strip()
    if "://" not in text and "code=" not in text:
        return text
    query = parse_qs(urlsplit(text).query if "://" in text else text)
    if query.get("error"):
        raise CredentialError(f"Google reported {query['error'][0]!r}: the consent was refused or failed")
    if query.get("state", [expected_state])[0] != expected_state:
        raise CredentialError("the pasted URL's state does not match this authorization; start again")
    codes = query.get("code")
    if not codes:
        raise CredentialError("the pasted URL has no code= parameter")
    return codes[0]
