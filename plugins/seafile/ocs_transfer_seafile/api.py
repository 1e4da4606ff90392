"""A small client for the Seafile Web API (seahub's ``api2`` and ``api/v2.1``
routes, and the file server's upload routes), on httpx.

What it adds over plain HTTP calls:

- The token header style the server accepts: ``Authorization: Bearer`` from
  Seafile 11 on, ``Authorization: Token`` before (``GET /api2/server-info/``
  says the version; a server that does not answer gets ``Token``, which every
  version accepts).
- Every request has connect and read timeouts; idempotent requests are retried
  on connection failures, 5xx and 429 (waiting ``Retry-After``), a bounded
  number of times.
- Seafile's status codes become ocs_transfer's error classes with messages
  that say what to do (:func:`error_for`); the token never appears in a
  message, a log line or a repr.
- Route selection for the two kinds of token (:class:`Routes`): an account
  token (``api2/repos/{id}/...``) works in every library its owner can
  see; a library ("repo") API token, made in one library's settings, works
  only in that library and only through ``api/v2.1/via-repo-token/...``.
  :func:`detect_token_kind` tells them apart (``via-repo-token/repo-info/``
  answers a library token, refuses an account token).
- The two helpers the results service's users run today:
  :func:`get_token` and :func:`list_repos`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ocs_transfer.exceptions import (
    ConfigurationError,
    CredentialError,
    FinalStorageError,
    ObjectNotFoundError,
    OcsTransferError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    StorageError,
    TransientStorageError,
)
from ocs_transfer.redact import Secret, redact
from ocs_transfer.retry import parse_retry_after

__all__ = [
    "AUTH_KINDS",
    "Library",
    "Routes",
    "SeafileApi",
    "TwoFactorRequiredError",
    "detect_token_kind",
    "error_for",
    "get_token",
    "list_repos",
    "normalise_server_url",
]

log = logging.getLogger(__name__)

#: Seafile's own status codes (seahub and the file server).
BAD_NAME, FILE_EXISTS, TOO_LARGE, OUT_OF_QUOTA = 440, 441, 442, 443


#: The capability part of the file server's links (upload, download, share):
#: whoever holds one may upload or download, so logs never show it.
_LINK_TOKEN = re.compile(r"(/(?:upload-api|update-api|upload-aj|files|f|d)/)[^/?\s\"']+")


class _LinkTokenFilter(logging.Filter):
    """Hides link tokens in httpx's request log lines ("HTTP Request: POST
    https://host/upload-api/<token>")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        record.msg = _LINK_TOKEN.sub(r"\1***", str(record.msg))
        return True


def _hide_link_tokens() -> None:
    target = logging.getLogger("httpx")
    if not any(isinstance(f, _LinkTokenFilter) for f in target.filters):
        target.addFilter(_LinkTokenFilter())


class TwoFactorRequiredError(CredentialError):
    """The account has two-factor authentication: a one-time code is needed."""


def normalise_server_url(url: str) -> str:
    """``https://host[:port][/prefix]`` without a trailing slash; anything else
    is refused with a clear error."""
    from ocs_transfer.storage.options import split_url

    text = (url or "").strip()
    parts = split_url(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(
            f"Seafile server_url {url!r} must be the server's address with scheme and host,"
            " e.g. https://seafile.example.edu"
        )
    return text.rstrip("/")


def _detail(response: Any) -> str:
    """The server's own explanation (``error_msg``, ``detail`` or the text),
    shortened."""
    try:
        body = response.json()
    except Exception:  # not JSON: seahub's HTML error pages, the file server's plain text
        body = None
    if isinstance(body, Mapping):
        for key in ("error_msg", "detail", "error", "non_field_errors"):
            value = body.get(key)
            if value:
                return str(value[0] if isinstance(value, list) else value)[:300]
    try:
        text = response.text
    except Exception:  # a streamed body that was not read
        return ""
    return " ".join(text.split())[:300] if "<html" not in text[:200].lower() else ""


def error_for(response: Any, what: str, *, secrets: tuple[Any, ...] = ()) -> OcsTransferError:
    """The ocs_transfer error for a failed Seafile response: ``what`` says
    what was being done."""
    status = int(response.status_code)
    detail = redact(_detail(response), secrets)
    said = f" (the server said: {detail})" if detail else ""
    if status == 401:
        return CredentialError(
            f"{what}: Seafile refused the token (401){said}; make a new one with"
            " `ocs-transfer seafile get-token` (or a library API token in the web interface) and store it"
            " with `ocs-transfer dest edit NAME --credential token`"
        )
    if status == 403:
        return PermissionDeniedError(
            f"{what}: Seafile refused the operation (403){said}; the token needs read-write permission on"
            " the library (an account token: check with `ocs-transfer seafile list-repos`; a library API token:"
            " its permission in the library's API token settings)"
        )
    if status == 404:
        return ObjectNotFoundError(f"{what}: not found on the Seafile server (404){said}")
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimitError(f"{what}: Seafile asks us to slow down (429){said}", retry_after=wait)
    if status == BAD_NAME:
        return FinalStorageError(f"{what}: Seafile refuses the file name (440){said}; rename the file")
    if status == FILE_EXISTS:
        return FinalStorageError(f"{what}: the file exists on the Seafile server and was not replaced (441){said}")
    if status in (TOO_LARGE, 413):
        return FinalStorageError(
            f"{what}: the request is too large for the server ({status}){said}; the server's"
            " max_upload_size, or a reverse proxy's body limit (client_max_body_size) is lower than the"
            " file or chunk: ask the administrator, or lower the destination's upload_chunk_mib option"
        )
    if status == OUT_OF_QUOTA:
        return QuotaExceededError(
            f"{what}: the Seafile account is out of quota (443){said}; free space or ask for more quota"
        )
    if status >= 500 or status == 408:
        return TransientStorageError(f"{what}: the Seafile server failed ({status}){said}; retrying later may help")
    return FinalStorageError(f"{what}: Seafile answered {status}{said}")


@attrs.frozen(kw_only=True)
class Library:
    """One library (repository) as ``GET /api2/repos/`` lists it."""

    id: str
    name: str
    size: int
    permission: str
    encrypted: bool
    owner: str = ""

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Library:
        return cls(
            id=str(item.get("id", "")), name=str(item.get("name", "")), size=int(item.get("size") or 0),
            permission=str(item.get("permission", "")), encrypted=bool(item.get("encrypted")),
            owner=str(item.get("owner", "")),
        )  # fmt: skip


#: ``auth`` values: ``auto`` asks the server which kind the token is.
AUTH_KINDS = ("auto", "account", "repo")
_VIA = "/api/v2.1/via-repo-token"


@attrs.frozen
class Routes:
    """Where each operation goes, and the name of its path parameter, for one
    kind of token. An account token uses ``api2/repos/{repo_id}/...`` with
    ``p=``; a library API token uses ``api/v2.1/via-repo-token/...`` with
    ``path=`` (its library is the token's own). What a library token cannot
    do on any server is ``None``: asking how much of an upload arrived (so no
    resumable chunked upload) and listing or deleting share links (and its
    share links take neither a password nor an expiry)."""

    kind: str
    repo_id: str
    library: str
    dir: str
    file_detail: str
    file: str
    download_link: str
    upload_link: str
    share_links: str
    uploaded_bytes: str | None
    manage_links: bool
    path_param: str

    @classmethod
    def for_account(cls, repo_id: str) -> Routes:
        base = f"/api2/repos/{repo_id}"
        return cls(
            "account", repo_id, f"{base}/", f"{base}/dir/", f"{base}/file/detail/", f"{base}/file/",
            f"{base}/file/", f"{base}/upload-link/", "/api/v2.1/share-links/",
            f"/api/v2.1/repos/{repo_id}/file-uploaded-bytes/", True, "p",
        )  # fmt: skip

    @classmethod
    def for_repo_token(cls, repo_id: str) -> Routes:
        return cls(
            "repo", repo_id, f"{_VIA}/repo-info/", f"{_VIA}/dir/", f"{_VIA}/file/", f"{_VIA}/file/",
            f"{_VIA}/download-link/", f"{_VIA}/upload-link/", f"{_VIA}/share-links/", None, False, "path",
        )  # fmt: skip

    def at(self, path: str, **extra: Any) -> dict[str, Any]:
        """The query parameters naming library path ``path``."""
        return {self.path_param: path, **extra}

    def entries(self, body: Any) -> list[Mapping[str, Any]]:
        """The items of a directory listing (a list for account tokens,
        ``dirent_list`` for library tokens)."""
        items = body.get("dirent_list", []) if isinstance(body, Mapping) else body
        return [i for i in items or [] if isinstance(i, Mapping)]

    def detail(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A file's details as ``id``, ``type``, ``size``, ``mtime``
        (``file/detail`` says ``id``; ``via-repo-token/file`` says ``obj_id``)."""
        return {"id": body.get("id", body.get("obj_id")), "type": body.get("type"),
                "size": body.get("size"), "mtime": body.get("mtime")}  # fmt: skip


def detect_token_kind(api: SeafileApi) -> tuple[str, dict[str, Any]]:
    """``("repo", repo_info)`` when the server takes the token as a library
    API token, else ``("account", {})``. A wrong token comes out as
    ``account``: the next request then says the token was refused."""
    try:
        info = api.request("GET", f"{_VIA}/repo-info/", what="asking which library the token is for").json()
    except (CredentialError, PermissionDeniedError, ObjectNotFoundError):
        return "account", {}
    if not isinstance(info, Mapping) or not info.get("repo_id"):
        return "account", {}
    return "repo", dict(info)


class SeafileApi:
    """Requests to one Seafile server with one token (or none, for the
    public routes)."""

    def __init__(
        self,
        server_url: str,
        token: Secret | None = None,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        verify_tls: bool = True,
        attempts: int = 5,
        max_wait: float = 60.0,
        header_style: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        self.server_url = normalise_server_url(server_url)
        self._token = token
        self.attempts = max(1, attempts)
        self.max_wait = max_wait
        self._sleep = sleep
        if header_style not in (None, "Token", "Bearer"):
            raise ConfigurationError(
                f"header_style {header_style!r} must be Token or Bearer (or unset: ask the server)"
            )
        self._style = header_style
        timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout)
        self.http = httpx.Client(timeout=timeout, verify=verify_tls, follow_redirects=False)
        _hide_link_tokens()

    def __repr__(self) -> str:
        return f"SeafileApi(server_url={self.server_url!r}, token={'***' if self._token else None})"

    @property
    def secrets(self) -> tuple[Any, ...]:
        return (self._token,) if self._token is not None else ()

    def close(self) -> None:
        self.http.close()

    # -- authentication -------------------------------------------------------------------

    def server_info(self) -> dict[str, Any]:
        """``GET /api2/server-info/`` (no token needed): version and features."""
        response = self.request("GET", "/api2/server-info/", auth=False)
        info = response.json()
        return dict(info) if isinstance(info, Mapping) else {}

    @property
    def header_style(self) -> str:
        """``Bearer`` for Seafile >= 11, else ``Token`` (asked once)."""
        if self._style is None:
            try:
                version = str(self.server_info().get("version", ""))
                major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
            except OcsTransferError as exc:
                log.debug("server-info failed (%s); using the Token header", type(exc).__name__)
                major = 0
            self._style = "Bearer" if major >= 11 else "Token"
            log.debug("Seafile server version %s: %s header", major or "unknown", self._style)
        return self._style

    def _headers(self, auth: bool, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if auth:
            if self._token is None:
                raise CredentialError("the Seafile destination has no token; store one with --credential token")
            headers["Authorization"] = f"{self.header_style} {self._token.reveal()}"
        headers.update(extra or {})
        return headers

    # -- requests -------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.server_url + path

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str = "",
        auth: bool = True,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        content: Any = None,
        retry: bool | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> Any:
        """One request, retried (when ``retry``; by default for GET, HEAD,
        DELETE) on connection failures, 5xx and 429. A response outside ``ok``
        raises the error :func:`error_for` gives."""
        import httpx

        what = what or f"{method} {path.split('?')[0]}"
        retry = method in ("GET", "HEAD", "DELETE") if retry is None else retry
        attempt = 0
        while True:
            attempt += 1
            try:
                try:
                    response = self.http.request(
                        method, self.url(path), params=params, data=data, json=json, content=content,
                        headers=self._headers(auth, headers),
                    )  # fmt: skip
                except httpx.TransportError as exc:
                    raise TransientStorageError(
                        f"{what}: the connection to the Seafile server failed ({type(exc).__name__});"
                        " retrying later may help"
                    ) from exc
                if response.status_code not in ok:
                    raise error_for(response, what, secrets=self.secrets)
                return response
            except (RateLimitError, TransientStorageError) as exc:
                if not retry or attempt >= self.attempts:
                    raise
                self.wait(exc, attempt)

    def wait(self, exc: BaseException, attempt: int) -> None:
        """Sleep before retry number ``attempt``: ``Retry-After`` when given,
        else exponential backoff; never longer than ``max_wait``."""
        told = getattr(exc, "retry_after", None)
        delay = min(self.max_wait, told if told is not None else 0.5 * 2 ** (attempt - 1))
        log.info("Seafile: %s; retrying in %.1f s", type(exc).__name__, delay)
        self._sleep(delay)

    def quoted(self, response: Any) -> str:
        """A body that is one JSON string (upload and download links)."""
        value = response.json()
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise StorageError("the Seafile server answered with something that is not a link")
        return value


def get_token(
    server_url: str,
    username: str,
    password: Secret,
    *,
    otp: str | None = None,
    timeout: float = 30.0,
    verify_tls: bool = True,
) -> Secret:
    """An account token for ``username`` (``POST /api2/auth-token/``). An
    account with two-factor authentication needs ``otp`` (the current code)
    and otherwise raises :class:`TwoFactorRequiredError`."""
    api = SeafileApi(server_url, connect_timeout=timeout, read_timeout=timeout, verify_tls=verify_tls, attempts=1)
    try:
        import httpx

        headers = {"X-SEAFILE-OTP": otp} if otp else {}
        try:
            response = api.http.post(
                api.url("/api2/auth-token/"), data={"username": username, "password": password.reveal()},
                headers={"Accept": "application/json", **headers},
            )  # fmt: skip
        except httpx.TransportError as exc:
            raise TransientStorageError(
                f"cannot reach the Seafile server {api.server_url}: {type(exc).__name__}"
            ) from exc
        if response.headers.get("X-Seafile-OTP", "").lower() == "required":
            raise TwoFactorRequiredError(
                "this account uses two-factor authentication: run again with --otp CODE (the current code from"
                " your authenticator app)"
                if not otp
                else "the two-factor code was not accepted; try the next one"
            )
        if response.status_code == 400:
            raise CredentialError(
                f"Seafile refused the user name or password{': ' + redact(_detail(response), (password,))}"
                if _detail(response)
                else "Seafile refused the user name or password"
            )
        if response.status_code != 200:
            raise error_for(response, "getting a token", secrets=(password,))
        token = response.json().get("token") if isinstance(response.json(), Mapping) else None
        if not token:
            raise StorageError("the Seafile server answered without a token")
        return Secret(str(token))
    finally:
        api.close()


def list_repos(server_url: str, token: Secret, *, timeout: float = 30.0, verify_tls: bool = True) -> list[Library]:
    """Every library the token can see (``GET /api2/repos/``); for a library
    API token, its one library (``via-repo-token/repo-info/``, and the
    token's permission from its root folder's listing)."""
    api = SeafileApi(server_url, token, connect_timeout=timeout, read_timeout=timeout, verify_tls=verify_tls)
    try:
        try:
            items = api.request("GET", "/api2/repos/", what="listing libraries").json()
        except CredentialError:
            kind, info = detect_token_kind(api)
            if kind != "repo":
                raise
            root = api.request("GET", f"{_VIA}/dir/", params={"path": "/"}, what="listing the library").json()
            perm = root.get("user_perm", "") if isinstance(root, Mapping) else ""
            items = [{"id": info["repo_id"], "name": info.get("repo_name", ""), "size": info.get("size"),
                      "permission": perm, "encrypted": False}]  # fmt: skip
        return [Library.from_json(item) for item in items if isinstance(item, Mapping)]
    finally:
        api.close()
