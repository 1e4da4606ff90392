"""A thin fsspec filesystem over the Google Drive v3 REST API (protocol
``gdrivefs``; fsspec's own ``gdrive`` name belongs to the gdrive-fsspec package).

Paths are folder names from a root folder (My Drive's ``root``, a folder id, or
a shared drive): ``gdrivefs://fits-data/M31/file.fits``. Drive keeps ids, not
paths; names are resolved with ``files.list`` queries and folder ids cached for
``folder_cache_seconds``; a cached id that went stale (the folder was renamed,
moved, trashed or deleted by someone else) is detected and resolved again.

Uploads: files up to ``multipart_threshold`` in one multipart request, larger
ones through a resumable session in chunks of ``chunk_size`` (a multiple of
256 KiB), always continuing from the offset the server reports. A file name
holds one file: an upload to an existing name updates that file; a new file
gets a client-generated id (``files.generateIds``), so a retry after a lost
response finds what the first try made instead of making a second file.
Nothing is visible at the name until the upload is complete.

Every request has a timeout; rate limits (429, 403 ``rateLimitExceeded`` /
``userRateLimitExceeded``) are waited out a bounded number of times
(``Retry-After`` honoured), then raised as
:class:`~ocs_transfer.exceptions.RateLimitError` carrying the wait.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import posixpath
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, ClassVar

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from ocs_transfer.exceptions import (
    ConfigurationError,
    CredentialError,
    IntegrityError,
    ObjectNotFoundError,
    OcsTransferError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    StorageError,
    TransientStorageError,
)
from ocs_transfer.retry import parse_retry_after
from ocs_transfer.storage.clients import PerThreadClient
from ocs_transfer.transfer.guards import check_base_url

from .auth import DEFAULT_API_URL, DEFAULT_TOKEN_URL, make_credentials, reauthorize_error

__all__ = ["FOLDER", "DriveApiError", "DriveFileSystem", "SHARE_MODES"]

log = logging.getLogger(__name__)

FOLDER = "application/vnd.google-apps.folder"
QUANTUM = 256 * 1024  #: non-final resumable chunks are multiples of this
SHARE_MODES = ("none", "anyone_reader", "domain_reader")
_FIELDS = "id,name,mimeType,size,md5Checksum,modifiedTime,createdTime,parents,trashed,webViewLink,driveId"
_RATE_REASONS = frozenset({"ratelimitexceeded", "userratelimitexceeded", "sharingratelimitexceeded"})
_TRANSIENT_STATUS = frozenset({500, 502, 503, 504})


class DriveApiError(StorageError):
    """An error response of the Drive API that is none of the specific classes
    (its ``status`` and ``reason`` kept for classification)."""

    def __init__(self, *args: Any, status: int = 0, reason: str = "") -> None:
        super().__init__(*args)
        self.status = status
        self.reason = reason


def _q(value: str) -> str:
    """A string literal for a Drive ``q`` query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _error_of(response: Any) -> tuple[str, str]:
    """(reason, message) of a Drive error body
    ``{"error": {"code", "message", "errors": [{"reason"}]}}``."""
    try:
        body = response.json()
    except ValueError:
        return "", (response.text or "")[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return (str(error) if error else ""), ""
    errors = error.get("errors") or [{}]
    reason = str((errors[0] or {}).get("reason") or error.get("status") or "")
    return reason, str(error.get("message") or "")[:300]


def _mapped(response: Any, what: str) -> OcsTransferError:
    """Our error for a Drive error response."""
    status = response.status_code
    reason, message = _error_of(response)
    text = f"{what}: Drive answered {status} {reason or ''} {message}".rstrip()
    if reason.lower() in _RATE_REASONS or status == 429:
        return RateLimitError(text, retry_after=parse_retry_after(response.headers.get("Retry-After")))
    if reason == "storageQuotaExceeded" or (reason == "quotaExceeded" and status == 403):
        return QuotaExceededError(
            f"{what}: the Google Drive storage quota is exhausted; free up space in the Drive account"
            " (empty its trash) or buy more storage, then retry the transfer"
        )
    if status == 401:
        return CredentialError(f"{what}: Drive refused the access token (401); check the destination's credentials")
    if status == 404:
        return ObjectNotFoundError(text)
    if status == 403:
        return PermissionDeniedError(text)
    if status in _TRANSIENT_STATUS or status == 408:
        return TransientStorageError(text)
    return DriveApiError(text, status=status, reason=reason)


def _transient(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError))


class DriveFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """Google Drive as an fsspec filesystem. Credentials: ``client_id`` +
    ``client_secret`` + ``refresh_token``, or ``service_account_json``, or a
    ready google-auth ``credentials`` object."""

    protocol: ClassVar[tuple[str, ...]] = ("gdrivefs",)  # type: ignore[misc]
    root_marker = ""
    cachable = True

    def __init__(
        self,
        *,
        client_id: Any = None,
        client_secret: Any = None,
        refresh_token: Any = None,
        service_account_json: Any = None,
        subject: str | None = None,
        credentials: Any = None,
        root_folder_id: str | None = None,
        drive_id: str | None = None,
        api_url: str = DEFAULT_API_URL,
        token_url: str = DEFAULT_TOKEN_URL,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        chunk_size: int = 8 * 1024 * 1024,
        multipart_threshold: int = 5 * 1024 * 1024,
        folder_cache_seconds: float = 60.0,
        rate_limit_waits: int = 4,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_url = check_base_url("api_url", api_url)
        self.token_url = check_base_url("token_url", token_url, full_url=True)
        if credentials is None:
            credentials = make_credentials(
                {"client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token,
                 "service_account_json": service_account_json},
                token_url=self.token_url, subject=subject,
            )  # fmt: skip
        self.drive_id = drive_id or None
        self.root_id = root_folder_id or self.drive_id or "root"
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.chunk_size = max(QUANTUM, int(chunk_size) // QUANTUM * QUANTUM)
        self.multipart_threshold = min(int(multipart_threshold), self.chunk_size)
        self.folder_cache_seconds = float(folder_cache_seconds)
        self.rate_limit_waits = int(rate_limit_waits)
        self.max_wait = float(max_wait)
        self._sleep = sleep
        self._credentials = credentials
        self._sessions: PerThreadClient[Any] = PerThreadClient(self._new_session, close=lambda s: s.close())
        self._lock = threading.Lock()
        self._folders: dict[str, tuple[str, str, float]] = {}  # path -> (id, parent id, resolved at)
        self._ids: collections.deque[str] = collections.deque()

    def __repr__(self) -> str:
        return f"DriveFileSystem(api_url={self.api_url!r}, root={self.root_id!r})"

    # -- HTTP ---------------------------------------------------------------------------

    @property
    def session(self) -> Any:
        """This thread's authorized session (requests sessions are not thread-safe)."""
        return self._sessions.get()

    def _new_session(self) -> Any:
        import requests
        from google.auth.transport.requests import AuthorizedSession

        return AuthorizedSession(  # type: ignore[no-untyped-call]
            self._credentials, auth_request=_TimedRequest(requests.Session(), self.timeout),
            refresh_timeout=sum(self.timeout),
        )

    def close(self) -> None:
        """Close every thread's session; the filesystem makes new ones if used again."""
        self._sessions.close()
        self._sessions = PerThreadClient(self._new_session, close=lambda s: s.close())

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
        retry: bool = True,
        **kwargs: Any,
    ) -> Any:
        """One API call: a timeout, ``supportsAllDrives``, our errors; rate
        limits waited out (bounded); transient failures of ``retry``-able
        (idempotent) calls retried a few times."""
        if not url.startswith(("http://", "https://")):
            url = self.api_url + url
        query = {"supportsAllDrives": "true", **(params or {})}
        waits = 0
        transient = 0
        while True:
            try:
                response = self._send(method, url, params=query, **kwargs)
            except OcsTransferError:
                raise
            except Exception as exc:
                if not _transient(exc) or not retry or transient >= 2:
                    raise TransientStorageError(f"{what}: {type(exc).__name__} talking to Drive") from exc
                transient += 1
                self._sleep(min(self.max_wait, 0.5 * 2**transient))
                continue
            if response.status_code in ok:
                return response
            error = _mapped(response, what)
            if isinstance(error, RateLimitError) and waits < self.rate_limit_waits:
                waits += 1
                self._sleep(min(self.max_wait, error.retry_after if error.retry_after is not None else 2.0**waits))
                continue
            rate = isinstance(error, RateLimitError)
            if isinstance(error, TransientStorageError) and not rate and retry and transient < 2:
                transient += 1
                self._sleep(min(self.max_wait, 0.5 * 2**transient))
                continue
            raise error

    def _send(self, method: str, url: str, **kwargs: Any) -> Any:
        from google.auth.exceptions import RefreshError, TransportError

        try:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except RefreshError as exc:
            raise _refresh_error(exc, service_account=not hasattr(self._credentials, "refresh_token")) from None
        except TransportError as exc:
            raise TransientStorageError(f"could not reach Google's token endpoint: {type(exc).__name__}") from None

    # -- ids and paths --------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        text = str(path)
        for proto in cls.protocol:
            if text.startswith(proto + "://"):
                text = text[len(proto) + 3 :]
        return text.strip("/")

    def _parts(self, path: str) -> list[str]:
        return [p for p in self._strip_protocol(path).split("/") if p]

    def _list(self, q: str, *, fields: str = _FIELDS) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"q": q, "fields": f"nextPageToken,files({fields})", "pageSize": 1000,
                                  "includeItemsFromAllDrives": "true", "orderBy": "createdTime"}  # fmt: skip
        if self.drive_id:
            params.update(corpora="drive", driveId=self.drive_id)
        while True:
            body = self.request("GET", "/drive/v3/files", what="listing Drive", params=params).json()
            yield from body.get("files") or []
            token = body.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = token

    def _children(self, parent: str, name: str | None = None, *, folders: bool | None = None) -> list[dict[str, Any]]:
        q = f"{_q(parent)} in parents and trashed = false"
        if name is not None:
            q += f" and name = {_q(name)}"
        if folders is not None:
            q += f" and mimeType {'=' if folders else '!='} {_q(FOLDER)}"
        return list(self._list(q))

    def _forget(self, path: str) -> None:
        """Drop the cached ids of folder ``path`` and everything under it."""
        with self._lock:
            for key in [k for k in self._folders if k == path or k.startswith(path + "/") or not path]:
                del self._folders[key]

    def _folder_id(self, parts: list[str], *, create: bool = False, validate: bool = False) -> str | None:
        """The id of the folder at ``parts`` (None when it does not exist and
        ``create`` is false). ``validate`` checks a cached id against Drive
        (still there, same name, same parent) before trusting it."""
        if not parts:
            return self.root_id
        key = "/".join(parts)
        now = time.monotonic()
        with self._lock:
            cached = self._folders.get(key)
        if cached is not None and now - cached[2] <= self.folder_cache_seconds:
            if not validate or self._still_valid(cached[0], parts[-1], cached[1]):
                return cached[0]
            log.info("cached Drive folder id of %r is stale (renamed, moved or removed); resolving again", key)
            self._forget(key)
        parent = self._folder_id(parts[:-1], create=create, validate=validate)
        if parent is None:
            return None
        found = self._children(parent, parts[-1], folders=True)
        if not found:
            if not create:
                return None
            found = [self._make_folder(parent, parts[-1])]
        with self._lock:
            self._folders[key] = (found[0]["id"], parent, time.monotonic())
        return str(found[0]["id"])

    def _still_valid(self, folder_id: str, name: str, parent: str) -> bool:
        try:
            meta = self.request("GET", f"/drive/v3/files/{folder_id}", what="checking a folder",
                                params={"fields": "id,name,parents,trashed"}).json()  # fmt: skip
        except ObjectNotFoundError:
            return False
        parents = meta.get("parents") or []
        return bool(meta.get("name") == name and not meta.get("trashed") and (parent in parents or parent == "root"))

    def _make_folder(self, parent: str, name: str) -> dict[str, Any]:
        """Create a folder; when another client made one of the same name at the
        same time, keep the oldest and remove ours."""
        made = self.request("POST", "/drive/v3/files", what=f"creating folder {name!r}", retry=False,
                            params={"fields": _FIELDS},
                            json={"name": name, "mimeType": FOLDER, "parents": [parent]}).json()  # fmt: skip
        same = self._children(parent, name, folders=True)
        if same and same[0]["id"] != made["id"]:
            self._delete_id(made["id"], what=f"removing a duplicate folder {name!r}")
            return same[0]
        return dict(made)

    def _generated_id(self) -> str:
        with self._lock:
            if self._ids:
                return self._ids.popleft()
        body = self.request("GET", "/drive/v3/files/generateIds", what="generating file ids",
                            params={"count": 10, "space": "drive", "type": "files"}).json()  # fmt: skip
        ids = list(body.get("ids") or [])
        if not ids:
            raise TransientStorageError("Drive generated no file ids")
        with self._lock:
            self._ids.extend(ids[1:])
        return str(ids[0])

    def _lookup(self, path: str) -> dict[str, Any]:
        """The resource at ``path`` (a folder or a file); FileNotFoundError."""
        parts = self._parts(path)
        if not parts:
            return {"id": self.root_id, "name": "", "mimeType": FOLDER}
        for _ in (0, 1):
            parent = self._folder_id(parts[:-1], validate=True)
            if parent is None:
                break
            try:
                found = self._children(parent, parts[-1])
            except ObjectNotFoundError:
                self._forget("/".join(parts[:-1]))  # the cached parent is gone: resolve it again
                continue
            if found:
                # a folder and a file may share a name: prefer the file, the oldest one
                files = [f for f in found if f.get("mimeType") != FOLDER]
                return (files or found)[0]
            break
        raise ObjectNotFoundError(f"{self._strip_protocol(path)!r} is not in the Drive")

    def _entry(self, path: str, meta: Mapping[str, Any]) -> dict[str, Any]:
        folder = meta.get("mimeType") == FOLDER
        return {
            "name": self._strip_protocol(path), "type": "directory" if folder else "file",
            "size": 0 if folder else int(meta.get("size") or 0), "id": meta.get("id"),
            "mimeType": meta.get("mimeType"), "md5Checksum": meta.get("md5Checksum"),
            "modifiedTime": meta.get("modifiedTime"), "webViewLink": meta.get("webViewLink"),
        }  # fmt: skip

    # -- fsspec reading -----------------------------------------------------------------------

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._entry(path, self._lookup(path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        meta = self._lookup(path)
        if meta.get("mimeType") != FOLDER:
            entries = [self._entry(path, meta)]
        else:
            entries = [self._entry(posixpath.join(path, c["name"]) if path else c["name"], c)
                       for c in self._list(f"{_q(meta['id'])} in parents and trashed = false")]  # fmt: skip
        return entries if detail else [e["name"] for e in entries]

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        if "r" in mode:
            block = block_size or self.chunk_size
            return DriveReadFile(self, path, mode, block_size=block, cache_options=cache_options)
        if "a" in mode:
            raise NotImplementedError("Drive files cannot be appended to; write a new file")
        if "x" in mode and self.exists(path):
            raise FileExistsError(f"{self._strip_protocol(path)!r} exists already")
        return DriveWriteFile(self, path, mode, block_size=block_size or self.chunk_size)

    def fetch_range(self, file_id: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        response = self.request("GET", f"/drive/v3/files/{file_id}", what="reading a file", ok=(200, 206),
                                params={"alt": "media"}, headers={"Range": f"bytes={start}-{end - 1}"})  # fmt: skip
        return bytes(response.content)

    # -- fsspec writing -------------------------------------------------------------------------

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        parts = self._parts(path)
        if not parts:
            return
        if not create_parents and self._folder_id(parts[:-1]) is None:
            raise FileNotFoundError(f"the parent of {path!r} does not exist")
        if self._folder_id(parts) is not None:
            raise FileExistsError(path)
        self._folder_id(parts, create=True)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        parts = self._parts(path)
        if not exist_ok and parts and self._folder_id(parts) is not None:
            raise FileExistsError(path)
        self._folder_id(parts, create=True, validate=True)

    def rmdir(self, path: str) -> None:
        meta = self._lookup(path)
        if meta.get("mimeType") != FOLDER:
            raise NotADirectoryError(path)
        if self._children(meta["id"]):
            raise OSError(f"directory {path!r} is not empty")
        self._delete_id(meta["id"], what=f"removing folder {path!r}")
        self._forget("/".join(self._parts(path)))

    def rm_file(self, path: str) -> None:
        meta = self._lookup(path)
        if not self._parts(path):
            raise PermissionDeniedError("will not remove the root folder")
        self._delete_id(meta["id"], what=f"removing {self._strip_protocol(path)!r}")
        if meta.get("mimeType") == FOLDER:
            self._forget("/".join(self._parts(path)))

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        for p in reversed(self.expand_path(path, recursive=recursive, maxdepth=maxdepth)):
            try:
                self.rm_file(p)
            except FileNotFoundError:
                if recursive:
                    continue  # already gone with its deleted folder
                raise

    def _delete_id(self, file_id: str, *, what: str) -> None:
        try:
            self.request("DELETE", f"/drive/v3/files/{file_id}", what=what, ok=(204, 200))
        except ObjectNotFoundError:
            pass

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        src = self._lookup(path1)
        if src.get("mimeType") == FOLDER:
            self.makedirs(path2, exist_ok=True)
            return
        parts = self._parts(path2)
        parent = self._folder_id(parts[:-1], create=True, validate=True)
        old = self._children(str(parent), parts[-1], folders=False)
        self.request("POST", f"/drive/v3/files/{src['id']}/copy", what=f"copying {path1!r}",
                     retry=False, params={"fields": "id"}, json={"name": parts[-1], "parents": [parent]})  # fmt: skip
        for stale in old:
            self._delete_id(stale["id"], what=f"replacing {path2!r}")

    def put_file(self, lpath: str, rpath: str, callback: Any = None, **kwargs: Any) -> None:
        import os

        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        with open(lpath, "rb") as source:
            self.upload(source, rpath, size=os.path.getsize(lpath))

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        import io

        self.upload(io.BytesIO(value), path, size=len(value), exclusive=mode == "create")

    def upload(self, source: IO[bytes] | Any, path: str, *, size: int | None = None,
               content_type: str = "application/octet-stream", verify: bool = True,
               exclusive: bool = False) -> dict[str, Any]:  # fmt: skip
        """Stream ``source`` (anything with ``read(n)``) to ``path``; returns
        the file resource (``id``, ``size``, ``md5Checksum``, ...). ``verify``
        compares Drive's md5Checksum with the md5 of what was sent (a mismatch
        removes the file); ``exclusive`` refuses an existing name."""
        upload = Upload(self, path, size=size, content_type=content_type, verify=verify, exclusive=exclusive)
        try:
            while data := source.read(self.chunk_size):
                upload.write(data)
        except BaseException:
            upload.abort()
            raise
        return upload.finish()

    # -- links --------------------------------------------------------------------------------

    def share_link(self, path: str, share: str = "none", domain: str | None = None) -> str:
        """The file's ``webViewLink``, after granting the permission ``share``
        asks for (``anyone_reader``: anyone with the link; ``domain_reader``:
        anyone in ``domain``)."""
        if share not in SHARE_MODES:
            raise ConfigurationError(f"share={share!r} is not one of {', '.join(SHARE_MODES)}")
        meta = self._lookup(path)
        if share != "none":
            wanted: dict[str, Any] = {"role": "reader", "type": "anyone" if share == "anyone_reader" else "domain"}
            if share == "domain_reader":
                if not domain:
                    raise ConfigurationError("share=domain_reader needs the share_domain option (e.g. example.org)")
                wanted["domain"] = domain
            have = self.request("GET", f"/drive/v3/files/{meta['id']}/permissions", what="reading permissions",
                                params={"fields": "permissions(id,type,role,domain)"}).json()  # fmt: skip
            if not any(all(p.get(k) == v for k, v in wanted.items()) for p in have.get("permissions") or []):
                self.request("POST", f"/drive/v3/files/{meta['id']}/permissions", what="sharing the file",
                             json=wanted)
        link = meta.get("webViewLink")
        if not link:
            raise StorageError(f"Drive gave no link for {self._strip_protocol(path)!r}")
        return str(link)


class _TimedRequest:
    """google-auth's requests transport with our timeout on token requests."""

    def __init__(self, session: Any, timeout: tuple[float, float]) -> None:
        from google.auth.transport.requests import Request

        self._request = Request(session)
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = self._timeout
        return self._request(*args, **kwargs)


def _refresh_error(exc: Exception, *, service_account: bool = False) -> OcsTransferError:
    """A google-auth RefreshError as ours: ``invalid_grant`` means re-authorize."""
    data = exc.args[1] if len(exc.args) > 1 else None
    code = str(data.get("error") if isinstance(data, dict) else "") or str(exc.args[0] if exc.args else "")
    if "invalid_grant" in code and service_account:
        return CredentialError(
            "Google refused the service account key (invalid_grant: deleted or disabled key or account, or a"
            " clock far off); give the destination a current service_account_json"
        )
    if "invalid_grant" in code:
        return reauthorize_error()
    if any(c in code for c in ("invalid_client", "unauthorized_client", "invalid_scope")):
        return CredentialError(
            f"Google refused the OAuth client ({code.split(':')[0]}); check client_id and client_secret"
        )
    if getattr(exc, "retryable", False):
        return TransientStorageError("Google's token endpoint failed transiently")
    return CredentialError(f"Google refused to issue an access token ({code.split(':')[0][:80]})")


class Upload:
    """One upload to a path, fed with :meth:`write`, completed by
    :meth:`finish` (or given up with :meth:`abort`). Memory: one chunk plus
    the last write."""

    def __init__(self, fs: DriveFileSystem, path: str, *, size: int | None, content_type: str, verify: bool,
                 exclusive: bool = False) -> None:
        parts = fs._parts(path)
        if not parts:
            raise IsADirectoryError("cannot upload to the root folder")
        self.fs, self.path, self.size, self.content_type, self.verify = fs, "/".join(parts), size, content_type, verify
        self.name = parts[-1]
        self.parent = str(fs._folder_id(parts[:-1], create=True, validate=True))
        existing = fs._children(self.parent, self.name)
        if any(e.get("mimeType") == FOLDER for e in existing):
            raise IsADirectoryError(f"{self.path!r} is a folder in the Drive")
        if existing and exclusive:
            raise FileExistsError(f"{self.path!r} exists already")
        self.existing = existing
        self.target = existing[0]["id"] if existing else fs._generated_id()
        self.buf = bytearray()
        self.offset = 0  # bytes the server has committed (all before buf)
        self.total = 0  # bytes written to us
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.session: str | None = None

    def _what(self) -> str:
        return f"upload of {self.path!r}"

    def _metadata(self) -> dict[str, Any]:
        if self.existing:
            return {"mimeType": self.content_type}
        return {"id": self.target, "name": self.name, "parents": [self.parent], "mimeType": self.content_type}

    def _url(self) -> tuple[str, str]:
        if self.existing:
            return "PATCH", f"/upload/drive/v3/files/{self.target}"
        return "POST", "/upload/drive/v3/files"

    def write(self, data: bytes) -> None:
        self.buf += data
        self.md5.update(data)
        self.total += len(data)
        while len(self.buf) > self.fs.chunk_size:  # at least one byte follows: not the final chunk
            if self.session is None:
                self._start()
            self._send(self.fs.chunk_size, final=False)

    def finish(self) -> dict[str, Any]:
        if self.size is not None and self.total != self.size:
            raise IntegrityError(f"{self._what()}: the source gave {self.total} bytes, expected {self.size}")
        result: dict[str, Any] | None = None
        if self.session is None and self.total <= self.fs.multipart_threshold:
            result = self._multipart()
        else:
            if self.session is None:
                self._start()
            while result is None:
                result = self._send(len(self.buf), final=True)
        self._check(result)
        for duplicate in self.existing[1:]:
            log.warning("Drive held %d files named %r; trashing the extra ones", len(self.existing), self.path)
            self.fs.request("PATCH", f"/drive/v3/files/{duplicate['id']}", what="trashing a duplicate",
                            json={"trashed": True})  # fmt: skip
        return result

    def abort(self) -> None:
        """Give up: an unfinished session never makes a file; tell Drive to drop it."""
        if self.session is not None:
            try:
                self.fs.session.request("DELETE", self.session, timeout=self.fs.timeout)
            except Exception as exc:
                log.debug("could not cancel the upload session of %s: %s", self.path, type(exc).__name__)
            self.session = None
        self.buf = bytearray()

    def _check(self, result: Mapping[str, Any]) -> None:
        if not self.verify:
            return
        size, md5 = int(result.get("size") or 0), result.get("md5Checksum")
        if size != self.total or (md5 and md5 != self.md5.hexdigest()):
            self.fs._delete_id(str(result["id"]), what="removing a bad upload")
            raise IntegrityError(
                f"{self._what()}: Drive holds {size} bytes with md5 {md5}, we sent {self.total} with"
                f" {self.md5.hexdigest()}; the file was removed"
            )

    def _multipart(self) -> dict[str, Any]:
        boundary = uuid.uuid4().hex
        body = b"".join([
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(self._metadata()).encode(),
            f"\r\n--{boundary}\r\nContent-Type: {self.content_type}\r\n\r\n".encode(),
            bytes(self.buf), f"\r\n--{boundary}--".encode(),
        ])  # fmt: skip
        method, url = self._url()
        headers = {"Content-Type": f"multipart/related; boundary={boundary}"}
        for attempt in range(4):
            try:
                return dict(self.fs.request(method, url, what=self._what(), retry=False, data=body, headers=headers,
                                            params={"uploadType": "multipart", "fields": _FIELDS}).json())  # fmt: skip
            except RateLimitError:
                raise  # already waited out as far as the bound allows: the engine schedules the retry
            except TransientStorageError:
                if attempt == 3:
                    raise
                # The response may have been lost after Drive made the file: look for it by its id.
                if not self.existing:
                    try:
                        return dict(self.fs.request("GET", f"/drive/v3/files/{self.target}", what=self._what(),
                                                    params={"fields": _FIELDS}).json())  # fmt: skip
                    except ObjectNotFoundError:
                        pass
                self.fs._sleep(min(self.fs.max_wait, 0.5 * 2**attempt))
        raise AssertionError("unreachable")

    def _start(self) -> None:
        method, url = self._url()
        headers = {"X-Upload-Content-Type": self.content_type, "Content-Type": "application/json; charset=UTF-8"}
        if self.size is not None:
            headers["X-Upload-Content-Length"] = str(self.size)
        response = self.fs.request(method, url, what=self._what(), data=json.dumps(self._metadata()).encode(),
                                   headers=headers, params={"uploadType": "resumable", "fields": _FIELDS})  # fmt: skip
        location = response.headers.get("Location")
        if not location:
            raise TransientStorageError(f"{self._what()}: Drive opened an upload session without a Location")
        self.session = location

    def _committed(self, response: Any) -> int:
        """The offset a 308 reports (``Range: bytes=0-N`` → N+1; no Range → 0)."""
        text = response.headers.get("Range") or ""
        if not text.startswith("bytes=0-"):
            return 0
        return int(text.rsplit("-", 1)[1]) + 1

    def _send(self, length: int, *, final: bool) -> dict[str, Any] | None:
        """Send ``buf[:length]``; the resource when the upload completed, else None."""
        failures = 0
        while True:
            start = self.offset
            chunk = bytes(self.buf[:length]) if length else b""
            total = str(self.offset + len(self.buf)) if final else "*"
            crange = f"bytes {start}-{start + len(chunk) - 1}/{total}" if chunk else f"bytes */{total}"
            try:
                response = self.fs._send("PUT", str(self.session), data=chunk, headers={"Content-Range": crange})
                problem: OcsTransferError | None = None
                if response.status_code not in (200, 201, 308):
                    problem = _mapped(response, self._what())
            except OcsTransferError:
                raise
            except Exception as exc:
                if not _transient(exc):
                    raise
                problem = TransientStorageError(f"{self._what()}: {type(exc).__name__} mid-chunk")
            if problem is not None:
                if isinstance(problem, ObjectNotFoundError) or getattr(problem, "status", 0) == 410:
                    raise TransientStorageError(f"{self._what()}: the upload session expired; the upload starts over")
                if not isinstance(problem, (TransientStorageError, RateLimitError)):
                    raise problem
                failures += 1
                if failures > self.fs.rate_limit_waits + 2:
                    raise problem
                wait = problem.retry_after if isinstance(problem, RateLimitError) else None
                self.fs._sleep(min(self.fs.max_wait, wait if wait is not None else 0.5 * 2**failures))
                response = self._status(final)
                if response is None:
                    continue
            if response.status_code in (200, 201):
                return dict(response.json())
            committed = self._committed(response)
            if committed < self.offset or committed > self.offset + len(self.buf):
                raise TransientStorageError(
                    f"{self._what()}: Drive reports {committed} bytes received, outside what we still hold"
                    f" ({self.offset}..{self.offset + len(self.buf)}); the upload starts over"
                )
            progressed = committed > start
            del self.buf[: committed - self.offset]
            length = len(self.buf) if final else length - (committed - self.offset)
            self.offset = committed
            if not final and length <= 0:
                return None
            if progressed:
                failures = 0
            else:
                failures += 1
                if failures > self.fs.rate_limit_waits + 2:
                    raise TransientStorageError(f"{self._what()}: Drive accepts no more bytes of the upload")

    def _status(self, final: bool) -> Any:
        """Ask the session how much it has (``Content-Range: bytes */N``)."""
        total = str(self.offset + len(self.buf)) if final else "*"
        try:
            response = self.fs._send("PUT", str(self.session), data=b"", headers={"Content-Range": f"bytes */{total}"})
        except OcsTransferError:
            raise
        except Exception as exc:
            if _transient(exc):
                return None
            raise
        if response.status_code in (200, 201, 308):
            return response
        error = _mapped(response, self._what())
        if isinstance(error, ObjectNotFoundError):
            raise TransientStorageError(f"{self._what()}: the upload session expired; the upload starts over")
        if isinstance(error, (TransientStorageError, RateLimitError)):
            return None
        raise error


class DriveReadFile(AbstractBufferedFile):  # type: ignore[misc]
    def __init__(self, fs: DriveFileSystem, path: str, mode: str, **kwargs: Any) -> None:
        meta = fs._lookup(path)
        if meta.get("mimeType") == FOLDER:
            raise IsADirectoryError(path)
        self.file_id = str(meta["id"])
        super().__init__(fs, path, mode, size=int(meta.get("size") or 0), **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.fetch_range(self.file_id, start, min(end, self.size))  # type: ignore[no-any-return]


class DriveWriteFile(AbstractBufferedFile):  # type: ignore[misc]
    """``fs.open(path, "wb")``: a resumable upload fed from the buffer."""

    def _initiate_upload(self) -> None:
        self._upload = Upload(self.fs, self.path, size=None, content_type="application/octet-stream", verify=True,
                              exclusive="x" in self.mode)

    def _upload_chunk(self, final: bool = False) -> bool:
        self._upload.write(self.buffer.getvalue())
        if final:
            self._upload.finish()
        return True

    def discard(self) -> None:
        upload = getattr(self, "_upload", None)
        if upload is not None:
            upload.abort()
