"""The ``webdav`` provider: any WebDAV server through webdav4.

Works with the file server of this package (``ocs-transfer local-cloud
serve``), Nextcloud, ownCloud, Apache mod_dav and ``rclone serve webdav``.

What this adds to webdav4's fsspec filesystem:

- Names with ``?``, ``#``, ``%`` and other URL-special characters work
  (webdav4 hands raw paths to httpx, which refuses some of them).
- Uploads stream straight from the source in one PUT (never through
  ``fs.open("wb")``, which spools the whole file to a temporary file and, when
  its ``close`` fails, retries the upload from the garbage collector, where it
  can deadlock another request on the same client).
- Every upload goes to a hidden temporary name and is MOVEd over the final
  path only after it was verified; a failed upload deletes the temporary.
- Missing parent collections are created (MKCOL) before the PUT.
- Verification: size, plus the SHA-256 our file server reports for what it
  stored; for other servers, a re-read of the object (``verify_by_reread``).
- webdav4's own retries are off (ocs_transfer's retry policy decides) and its
  errors are translated into ocs_transfer's classes; every request has
  connect/read/write timeouts.
- Links: signed expiring links when the server is ours and the
  ``signing_key`` credential is given, else ``link_base_url`` + path.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import logging
import posixpath
import threading
import time
from collections.abc import Generator, Iterator, Mapping
from datetime import timedelta
from typing import IO, Any, ClassVar, NoReturn, Self
from urllib.parse import quote, urlsplit, urlunsplit

import attrs

from ocs_transfer.exceptions import (
    ConfigurationError,
    CredentialError,
    FinalStorageError,
    IntegrityError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    StorageError,
)
from ocs_transfer.redact import Secret
from ocs_transfer.settings import Settings
from ocs_transfer.storage.base import Progress, StoredObject
from ocs_transfer.storage.fsspec_store import FsspecStore
from ocs_transfer.storage.hashing import DEFAULT_CHUNK_SIZE, HashingReader

from .signing import SHA256_HEADER, signed_url

__all__ = ["WebdavStore"]

log = logging.getLogger(__name__)


def _auth(*, username: str | None, password: Secret | None, token: Secret | None) -> Any:
    """An httpx auth that sends HTTP Basic (user + password) or Bearer
    (token); the secret stays in a :class:`Secret` until a request is sent.
    (httpx is imported here, not when the plugin registers.)"""
    import httpx

    class Auth(httpx.Auth):
        def __repr__(self) -> str:
            return "Auth(***)"

        def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
            if token is not None:
                request.headers["Authorization"] = f"Bearer {token.reveal()}"
            elif password is not None:
                request.headers["Authorization"] = httpx.BasicAuth(username or "", password.reveal())._auth_header
            yield request

    return Auth()


def _body(reader: HashingReader, chunk_size: int, size: int | None) -> Iterator[bytes]:
    """The request body, one chunk behind the reader: a chunk is sent only
    once the next read succeeded, so a source error, a cancel or a short
    source (an integrity error, not the HTTP client's protocol error) always
    stops the body before it is complete and the server never publishes it."""
    pending = reader.read(chunk_size)
    while pending:
        following = reader.read(chunk_size)
        if size is not None and (reader.bytes_read > size or (not following and reader.bytes_read != size)):
            raise IntegrityError(
                f"the source gave {reader.bytes_read} bytes, expected {size}; it changed or was cut short"
            )
        yield pending
        pending = following


def _origin(url: Any) -> tuple[str, str, int | None]:
    import httpx

    parsed = httpx.URL(str(url))
    default = {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host.lower(), parsed.port or default


def _same_origin_only(base_url: str) -> Any:
    """An httpx request hook refusing any request (a followed redirect
    included) to another scheme, host or port than ``base_url``'s."""
    allowed = _origin(base_url)

    def check(request: Any) -> None:
        if _origin(request.url) != allowed:
            raise PermissionDeniedError(
                f"the WebDAV server redirected to another host ({request.url.scheme}://{request.url.host}); redirects"
                " off the configured url are not followed. Give the server's final URL as the url option"
            )

    return check


@functools.cache
def _client_class() -> type[Any]:
    """webdav4's Client, fixed to percent-encode paths: webdav4 hands raw
    paths to httpx, which refuses names containing ``?`` or ``#``."""
    import httpx
    from webdav4.client import Client
    from webdav4.urls import join_url_path

    class QuotingClient(Client):  # type: ignore[misc]
        def join_url(self, path: str, add_trailing_slash: bool = False) -> httpx.URL:
            joined = join_url_path(self.base_url.path, path)
            if add_trailing_slash:
                joined += "/"
            return self.base_url.copy_with(raw_path=quote(joined, safe="/").encode("ascii"))  # type: ignore[no-any-return]

    return QuotingClient


def _mapped(exc: BaseException) -> BaseException:
    """webdav4's client exception as a builtin or one of ours (statuses
    kept), so :func:`ocs_transfer.retry.translate` classifies it; other
    exceptions unchanged."""
    from webdav4.client import (
        ForbiddenOperation,
        HTTPError,
        InsufficientStorage,
        ResourceConflict,
        ResourceLocked,
        ResourceNotFound,
    )

    if isinstance(exc, ResourceNotFound):
        return FileNotFoundError(errno.ENOENT, "not found on the WebDAV server", exc.path)
    if isinstance(exc, InsufficientStorage):
        return QuotaExceededError("the WebDAV server has no space left (507)")
    if isinstance(exc, ForbiddenOperation):
        return PermissionDeniedError(f"the WebDAV server refused the operation (403): {exc}")
    if isinstance(exc, ResourceLocked):
        return RateLimitError("the resource is locked on the WebDAV server (423); retry later")
    if isinstance(exc, ResourceConflict):
        return StorageError(f"the WebDAV server reported a conflict (409): {exc}")
    if isinstance(exc, HTTPError) and exc.status_code == 401:
        return CredentialError("the WebDAV server refused the credentials (401)")
    if isinstance(exc, HTTPError) and exc.status_code == 413:
        return FinalStorageError(
            "the WebDAV server refuses a file this large (413): raise its upload limit"
            " (the file server's --max-upload-size, a reverse proxy's client_max_body_size)"
        )
    return exc


@contextlib.contextmanager
def _webdav_errors() -> Iterator[None]:
    from webdav4.client import ClientError

    try:
        yield
    except ClientError as exc:
        mapped = _mapped(exc)
        if mapped is exc:
            raise
        raise mapped from exc


class WebdavStore(FsspecStore):
    """Files on a WebDAV server."""

    name: ClassVar[str] = "webdav"
    schemes: ClassVar[tuple[str, ...]] = ("webdav+https", "webdav+http")
    credential_fields: ClassVar[tuple[str, ...]] = ("password", "token", "signing_key")
    endpoint_options: ClassVar[tuple[str, ...]] = ("url", "link_server_url")
    reread_to_verify: ClassVar[bool] = True

    @attrs.frozen(kw_only=True)
    class Config:
        url: str  #: the WebDAV base URL, e.g. https://files.example.org or https://cloud/remote.php/dav/files/me
        root: str = ""  #: a folder under ``url`` that holds the store
        username: str | None = None  #: HTTP Basic user (the ``password`` credential); else the ``token`` is Bearer
        link_base_url: str | None = None  #: links are this + the object path
        link_server_url: str | None = None  #: our file server's URL for signed links (default: the origin of url)
        verify_by_reread: bool = True  #: re-read uploads to verify when the server reports no checksum
        verify_tls: bool = True
        connect_timeout: float | None = None  #: seconds (default: the settings' connect timeout)
        read_timeout: float | None = None  #: seconds between bytes (default: the settings' read timeout)

    def __init__(
        self,
        fs: Any,
        config: WebdavStore.Config,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        signing_key: Secret | None = None,
        secrets: tuple[Secret | None, ...] = (),
    ) -> None:
        super().__init__(
            fs, config.root.strip("/"), chunk_size=chunk_size, link_base_url=config.link_base_url, secrets=secrets
        )
        self.config = config
        self._signing_key = signing_key
        self._local = threading.local()  # this thread's upload: .received (path, server sha256), .aborted (path)

    def __repr__(self) -> str:
        return f"WebdavStore(url={self.config.url!r}, root={self.root!r})"

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: Any,
        credentials: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
    ) -> Self:
        from webdav4.fsspec import WebdavFileSystem

        if not isinstance(config, cls.Config):
            raise ConfigurationError(f"the webdav store needs a WebdavStore.Config, got {type(config).__name__}")
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"webdav url {config.url!r} must be an http:// or https:// URL")
        creds = {
            k: (v if isinstance(v, Secret) or v is None else Secret(str(v))) for k, v in (credentials or {}).items()
        }
        unknown = set(creds) - set(cls.credential_fields)
        if unknown:
            raise ConfigurationError(f"unknown webdav credential(s) {sorted(unknown)}; use {cls.credential_fields}")
        password, token, key = creds.get("password"), creds.get("token"), creds.get("signing_key")
        if password is not None and token is not None:
            raise ConfigurationError("give the webdav store either a password (with username) or a token, not both")
        if password is not None and not config.username:
            raise ConfigurationError("a webdav password needs the username option")
        import httpx

        defaults = settings or Settings()
        timeout = httpx.Timeout(
            connect=config.connect_timeout or defaults.connect_timeout,
            read=config.read_timeout or defaults.read_timeout,
            write=config.read_timeout or defaults.read_timeout,
            pool=config.connect_timeout or defaults.connect_timeout,
        )
        client = _client_class()(
            config.url,
            auth=_auth(username=config.username, password=password, token=token),
            retry=False,
            timeout=timeout,
            verify=config.verify_tls,
        )
        # Redirects to another origin are refused on every request (webdav4 follows them for listings and
        # reads): a server must not send the service somewhere the endpoint checks never saw.
        client.http.event_hooks = {"request": [_same_origin_only(config.url)], "response": []}
        # The instance holds credentials: never share it through fsspec's instance cache.
        fs = WebdavFileSystem(config.url, client=client, skip_instance_cache=True)
        return cls(
            fs,
            config,
            chunk_size=defaults.chunk_size,
            signing_key=key,
            secrets=(password, token, key),
        )

    @classmethod
    def config_from_url(cls, url: str, **options: Any) -> Any:
        """``webdav+https://host/path`` → ``url="https://host/path"``."""
        scheme, _, rest = url.partition("+")
        if scheme != "webdav" or not rest.startswith(("http://", "https://")):
            raise ConfigurationError(f"{url!r}: webdav URLs look like webdav+https://host/path")
        return cls.config_from_options({"url": rest, **options})

    def close(self) -> None:
        self.fs.client.http.close()

    # -- errors ----------------------------------------------------------------------------

    def _raise(self, exc: BaseException, message: str) -> NoReturn:
        mapped = _mapped(exc)
        if mapped is not exc:
            mapped.__cause__ = exc
        super()._raise(mapped, message)

    # -- upload, verify, publish -------------------------------------------------------------

    def put(
        self,
        source: IO[bytes],
        path: str,
        *,
        size: int | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        extension: str = "",
        options: Mapping[str, Any] | None = None,
    ) -> StoredObject:
        try:
            return super().put(
                source, path, size=size, content_type=content_type, metadata=metadata, progress=progress,
                cancel=cancel, extension=extension, options=options,
            )
        finally:
            self._local.received = None
            self._local.aborted = None

    def _reported(self, full: str) -> str | None:
        """The SHA-256 the server reported for the upload at ``full`` (our
        file server does), during this thread's current ``put``."""
        received = getattr(self._local, "received", None)
        return received[1] if received is not None and received[0] == full else None

    def _ensure_parent(self, path: str) -> None:
        parent = posixpath.dirname(path)
        if parent:
            with _webdav_errors():
                self._mkcol(parent)

    def _mkcol(self, directory: str) -> None:
        """Create ``directory`` and any missing ancestors (up to and including
        the base URL's collection), cheaply: one MKCOL when the parent exists
        (405 = already there), walking up on 409."""
        from webdav4.client import ResourceConflict

        try:
            self._mkcol_once(directory)
        except ResourceConflict:
            if not directory:
                raise  # the base URL's own parent is missing: not ours to create
            self._mkcol(posixpath.dirname(directory))
            self._mkcol_once(directory)

    def _mkcol_once(self, directory: str) -> None:
        """One MKCOL. Another upload may create the same collection at the
        same moment, and servers answer that race differently (405, or a 500
        from WsgiDAV's own mkdir failing with EEXIST): "a collection is there
        now" is success; anything else is the real error."""
        from webdav4.client import ResourceAlreadyExists, ResourceConflict

        try:
            self.fs.client.mkdir(directory)
        except ResourceAlreadyExists:
            return
        except ResourceConflict:
            raise  # a missing parent: the caller walks up
        except Exception:
            try:
                there = bool(self.fs.client.isdir(directory))
            except Exception:
                there = False
            if not there:
                raise

    def _upload(
        self,
        reader: HashingReader,
        path: str,
        *,
        size: int | None,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        headers = {"Content-Type": content_type or "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        body = _body(reader, self.chunk_size, size)
        first = next(body, b"")  # a source that fails at once never reaches the server
        self._local.aborted = path
        with _webdav_errors():
            response = self.fs.client.request("PUT", path, content=itertools.chain([first], body), headers=headers)
        self._local.aborted = None
        received = response.headers.get(SHA256_HEADER)
        self._local.received = (path, received.lower()) if received else None

    def _info_raw(self, full: str, version_id: str | None = None) -> dict[str, Any]:
        with _webdav_errors():
            info = super()._info_raw(full, version_id)
        received = self._reported(full)
        if received:
            info["sha256"] = received
        return info

    def _native_checksum(self, info: Mapping[str, Any]) -> tuple[str, str] | None:
        value = info.get("sha256")
        return ("sha256", str(value)) if value else None

    def _verify(self, full: str, size: int, digests: Mapping[str, str], rel: str) -> dict[str, Any]:
        if self.config.verify_by_reread or self._reported(full):
            return super()._verify(full, size, digests, rel)
        info = self._info_raw(full)  # size only, as configured
        if info.get("size") is None or int(info["size"]) != size:
            raise IntegrityError(f"upload of {rel!r}: the server holds {info.get('size')} bytes, we sent {size}")
        return info

    def _publish(self, staging: str, final: str) -> None:
        with _webdav_errors():
            self.fs.client.move(staging, final, overwrite=True)
        received = self._reported(staging)
        self._local.received = (final, received) if received else None

    def _discard(self, full: str) -> None:
        """Delete a staged upload. After an aborted PUT, a server that writes
        in place (not ours) may still be creating the file when the DELETE
        arrives: look again for a moment and delete what shows up."""
        aborted = getattr(self._local, "aborted", None) == full
        self._local.aborted = None
        for delay in (0.0, 0.1, 0.2, 0.4) if aborted else (0.0,):
            time.sleep(delay)
            try:
                with _webdav_errors():
                    self.fs.client.remove(full)
            except FileNotFoundError:
                continue
            except Exception as exc:  # clean-up must not hide the real error; the server is unreachable or refuses
                import httpx

                if isinstance(exc, httpx.ConnectError) or isinstance(exc.__cause__, httpx.ConnectError):
                    # the server is down: the failed upload says so; a retry removes what may be left
                    log.info("could not reach the server to remove %s: %s", full, type(exc).__name__)
                else:
                    log.warning("could not remove %s after a failed upload: %s", full, type(exc).__name__)
                return

    # -- links -------------------------------------------------------------------------------

    def _sign(self, path: str, version_id: str | None, expiration: timedelta) -> str:
        if self._signing_key is None:
            raise NotImplementedError
        base = urlsplit(self.config.url)
        server = self.config.link_server_url or urlunsplit((base.scheme, base.netloc, "", "", ""))
        served = posixpath.join(base.path, path.lstrip("/")).lstrip("/")
        prefix = urlsplit(server).path.strip("/")
        if prefix:
            if not served.startswith(prefix + "/"):
                raise ConfigurationError(
                    f"link_server_url {server!r} does not contain the store url {self.config.url!r}"
                )
            served = served[len(prefix) + 1 :]
        return signed_url(server, self._signing_key, served, expiration)
