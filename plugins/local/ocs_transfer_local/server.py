"""The self-hosted file server: WebDAV over a directory, with token auth,
atomic uploads and signed download links.

WsgiDAV (on the cheroot HTTP server) speaks WebDAV; this module adds what a
data archive needs around it:

- **Token authentication.** Every request needs ``Authorization: Bearer
  <token>`` (or HTTP Basic with the token as password, any user name).
  Tokens come from a file or the environment, are compared in constant time
  and are never logged.
- **Atomic uploads.** A PUT streams into a hidden temporary file in the target
  directory, which is fsynced and renamed over the final path only when the
  whole body arrived; a cut-short or failed upload leaves nothing visible.
  The response carries the SHA-256 of what was stored
  (``X-OCS-Transfer-SHA256``), so clients can verify without re-reading.
  MOVE and COPY of files publish with a rename, too (handled here, not by
  WsgiDAV, which mangles destination names containing ``?`` or ``;``; WebDAV
  locks are not consulted for them). Missing parent directories of a PUT are
  created.
- **Signed links.** ``GET /_signed/<path>?exp=..&sig=..`` serves one file
  without a token until ``exp`` (see :mod:`ocs_transfer_local.signing`).
- **Health.** ``GET /_health`` answers ``{"status": "ok"}`` without a token.
- **Slow clients.** A worker thread reads each request; a client trickling
  its headers (or an upload's body) a byte at a time would hold it, and a few
  such clients would hold them all. A watchdog cuts a connection whose request
  line and headers take longer than ``header_timeout``, or whose upload body
  averages less than ``body_min_rate`` bytes/s over a ``body_window``; requests
  without a valid token are answered before their body is read, and their
  connection is closed instead of drained.
- **Confinement.** Paths with ``.``/``..`` segments, control characters or
  backslashes are refused, and every path must resolve inside the root
  (symlinks leaving it are refused).

The top-level names ``_signed`` and ``_health`` are reserved.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self
from urllib.parse import parse_qs, quote, unquote, urlparse, urlsplit
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import attrs
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_REQUEST_ENTITY_TOO_LARGE,
    DAVError,
)
from wsgidav.dav_provider import DAVNonCollection
from wsgidav.fs_dav_provider import FileResource, FilesystemProvider, FolderResource

from .config import DEFAULT_PORT, SIGNING_KEY_ENV, TOKENS_ENV, ServerConfig, load_secrets
from .local import fsync_directory
from .signing import SHA256_HEADER, verify_signature

__all__ = [
    "DEFAULT_PORT",
    "SHA256_HEADER",
    "FileServer",
    "ServerConfig",
    "TOKENS_ENV",
    "SIGNING_KEY_ENV",
    "load_secrets",
    "make_app",
    "sweep_partials",
]

log = logging.getLogger(__name__)

SHA256_ENVIRON = "ocs_transfer.sha256"
MAX_UPLOAD_ENVIRON = "ocs_transfer.max_upload_bytes"
_BLOCK_SIZE = 1024 * 1024
#: Temporary uploads: ``.<name>.<random>.ocs-server-partial`` beside the final file.
_PARTIAL_SUFFIX = ".ocs-server-partial"
#: Seconds between sweeps of dead uploads' temporary files (see ServerConfig.partial_max_age).
SWEEP_INTERVAL = 3600.0
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
#: The longest file or folder name most file systems take (ext4, XFS, btrfs).
_MAX_NAME_BYTES = 255


# -- the filesystem provider with atomic writes ------------------------------------------


def _is_partial(name: str) -> bool:
    return name.endswith(_PARTIAL_SUFFIX)


class _AtomicUpload:
    """A temporary file beside ``final`` that becomes ``final`` on commit."""

    def __init__(self, final: str, expected: int | None, limit: int | None = None) -> None:
        self.final = final
        self.expected = expected
        self.limit = limit
        self.count = 0
        self.sha256 = hashlib.sha256()
        directory, name = os.path.split(final)
        fd, self.temp = tempfile.mkstemp(dir=directory, prefix=f".{name[:100]}.", suffix=_PARTIAL_SUFFIX)
        os.fchmod(fd, 0o644)
        self.file = os.fdopen(fd, "wb", buffering=0)

    def write(self, data: bytes) -> int:
        if self.limit is not None and self.count + len(data) > self.limit:
            raise DAVError(HTTP_REQUEST_ENTITY_TOO_LARGE, _too_large(self.limit))
        with _disk_errors():
            self.file.write(data)
        self.sha256.update(data)
        self.count += len(data)
        return len(data)

    def writelines(self, chunks: Iterable[bytes]) -> None:
        received = iter(chunks)
        while True:
            try:
                chunk = next(received)
            except StopIteration:
                return
            except (OSError, ValueError) as exc:  # cheroot: a chunked body cut short or malformed
                raise DAVError(
                    HTTP_BAD_REQUEST, f"the request body was cut short or is malformed ({type(exc).__name__})"
                ) from None
            self.write(chunk)

    def close(self) -> None:
        if self.file.closed:
            return
        if self.expected is not None and self.count != self.expected:
            raise DAVError(
                HTTP_BAD_REQUEST, f"the body had {self.count} bytes but Content-Length said {self.expected}"
            )
        with _disk_errors():
            os.fsync(self.file.fileno())
            self.file.close()

    def commit(self) -> None:
        try:
            self.close()
            with _disk_errors():
                os.replace(self.temp, self.final)
        except BaseException:
            self.abort()
            raise
        fsync_directory(os.path.dirname(self.final))

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            try:
                os.unlink(self.temp)
            except FileNotFoundError:
                pass


@contextlib.contextmanager
def _disk_errors() -> Iterator[None]:
    """A full disk or quota as 507 Insufficient Storage (clients class it as
    quota, not as a server fault to retry)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DAVError(HTTP_INSUFFICIENT_STORAGE, "no space left on the server's disk") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise DAVError(HTTP_BAD_REQUEST, f"a name is longer than {_MAX_NAME_BYTES} bytes") from None
        raise


def _too_large(limit: int) -> str:
    return f"the upload is larger than this server accepts ({limit} bytes)"


def _content_length(environ: WSGIEnvironment) -> int | None:
    value = environ.get("CONTENT_LENGTH")
    return int(value) if value and str(value).isdigit() else None


def _move_file(src: str, dest: str) -> None:
    os.replace(src, dest)
    fsync_directory(os.path.dirname(dest))
    if os.path.dirname(dest) != os.path.dirname(src):
        fsync_directory(os.path.dirname(src))


def _copy_file(src: str, dest: str) -> None:
    upload = _AtomicUpload(dest, None)
    try:
        with open(src, "rb") as source:
            shutil.copyfileobj(source, upload.file, _BLOCK_SIZE)
    except BaseException:
        upload.abort()
        raise
    upload.commit()


class _File(FileResource):  # type: ignore[misc]
    """A file whose writes, moves and copies publish atomically. ``pending``
    files do not exist yet (a PUT is creating them)."""

    def __init__(self, path: str, environ: WSGIEnvironment, file_path: str, *, pending: bool = False) -> None:
        if pending:
            DAVNonCollection.__init__(self, path, environ)
            self._file_path = file_path
            self.name = os.path.basename(file_path)
            self.file_stat = None
        else:
            super().__init__(path, environ, file_path)
        self._upload: _AtomicUpload | None = None

    def begin_write(self, *, content_type: str | None = None) -> _AtomicUpload:
        if self.provider.readonly:
            raise DAVError(HTTP_FORBIDDEN)
        limit = self.environ.get(MAX_UPLOAD_ENVIRON)
        self._upload = _AtomicUpload(self._file_path, _content_length(self.environ), limit)
        return self._upload

    def end_write(self, *, with_errors: bool) -> None:
        upload, self._upload = self._upload, None
        if upload is None:
            return
        if with_errors:
            upload.abort()
        else:
            upload.commit()
            self.environ[SHA256_ENVIRON] = upload.sha256.hexdigest()


class _Folder(FolderResource):  # type: ignore[misc]
    """A directory that hides in-progress uploads and creates files lazily."""

    def get_member_names(self) -> list[str]:
        return [name for name in super().get_member_names() if not _is_partial(name)]

    def create_empty_resource(self, name: str) -> _File:
        if self.provider.readonly:
            raise DAVError(HTTP_FORBIDDEN)
        path = self.path.rstrip("/") + "/" + name
        return _File(path, self.environ, self.provider._loc_to_file_path(path, self.environ), pending=True)


class AtomicFilesystemProvider(FilesystemProvider):  # type: ignore[misc]
    """WsgiDAV's filesystem provider with atomic writes and no symlinks."""

    def __init__(self, root: str, *, readonly: bool = False) -> None:
        super().__init__(root, readonly=readonly, fs_opts={"follow_symlinks": False})

    def get_resource_inst(self, path: str, environ: WSGIEnvironment) -> _File | _Folder | None:
        self._count_get_resource_inst += 1
        file_path: str = self._loc_to_file_path(path, environ)
        if _is_partial(os.path.basename(file_path)) or not os.path.lexists(file_path):
            return None
        if os.path.islink(file_path):
            raise DAVError(HTTP_FORBIDDEN, "symbolic links are not served")
        if os.path.isdir(file_path):
            return _Folder(path, environ, file_path)
        return _File(path, environ, file_path)


def sweep_partials(root: str, older_than: float, *, now: float | None = None) -> list[str]:
    """Remove the temporary files of dead uploads under ``root`` whose last
    write is more than ``older_than`` seconds ago (never following symbolic
    links); returns the paths removed. A live upload writes its temporary
    file continually (and a stalled one is cut long before), so only the
    leftovers of a killed server are old."""
    limit = (time.time() if now is None else now) - older_than
    removed = []
    for directory, _dirs, files in os.walk(root):
        for name in files:
            if not _is_partial(name):
                continue
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode) and info.st_mtime < limit:
                    os.unlink(path)
                    removed.append(path)
            except FileNotFoundError:  # finished or removed meanwhile
                continue
    if removed:
        log.info("removed %d temporary file(s) of dead uploads under %s", len(removed), root)
    return removed


# -- the WSGI application around WsgiDAV ---------------------------------------------------


def _token_digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class _App:
    """Auth, health, signed links and path checks in front of WsgiDAV."""

    def __init__(self, config: ServerConfig, dav: WSGIApplication) -> None:
        self.config = config
        self.root_real = os.path.realpath(config.root)
        self.dav = dav
        self._token_digests = tuple(_token_digest(t.reveal()) for t in config.tokens)

    # - helpers -

    @staticmethod
    def _respond(
        start_response: StartResponse, status: str, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()
    ) -> list[bytes]:
        data = json.dumps(body).encode()
        extra = list(headers)
        if not status.startswith("2"):
            extra.append(("Connection", "close"))  # never read (nor let cheroot drain) the body of a refused request
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *extra])
        return [data]

    def _authorized(self, environ: WSGIEnvironment) -> bool:
        scheme, _, value = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        candidate: str | None = None
        if scheme.lower() == "bearer":
            candidate = value.strip()
        elif scheme.lower() == "basic":
            try:
                candidate = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
            except ValueError:
                candidate = None
        if not candidate:
            return False
        digest = _token_digest(candidate)
        ok = False
        for known in self._token_digests:  # no early exit: constant time over the token list
            ok |= hmac.compare_digest(known, digest)
        return ok

    @staticmethod
    def _path_parts(environ: WSGIEnvironment) -> list[str] | None:
        """The request path as decoded segments, or None when it is unsafe."""
        raw = str(environ.get("PATH_INFO", "/"))
        try:
            path = raw.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return None
        parts = [p for p in path.split("/") if p != ""]
        if any(p in (".", "..") or _BAD_CHARS.search(p) or _is_partial(p) for p in parts):
            return None
        if "//" in path.rstrip("/") and parts:
            return None
        return parts

    def _inside_root(self, parts: list[str]) -> str | None:
        full = os.path.realpath(os.path.join(self.root_real, *parts))
        if full != self.root_real and not full.startswith(self.root_real + os.sep):
            return None
        return full

    def _make_parents(self, parts: list[str]) -> None:
        """Create the missing parent directories of a PUT target, never
        following a symlink."""
        current = self.root_real
        for part in parts[:-1]:
            current = os.path.join(current, part)
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                try:
                    os.mkdir(current, 0o755)
                except FileExistsError:
                    pass
                continue
            if not stat.S_ISDIR(mode):  # a file or a symlink: let WsgiDAV refuse the request
                return

    # - the WSGI entry point -

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        status_holder: list[str] = []

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_holder.append(status)
            received = environ.get(SHA256_ENVIRON)
            if received and status.startswith("2"):
                headers = [*headers, (SHA256_HEADER, received)]
            return start_response(status, headers, exc_info)

        path = str(environ.get("PATH_INFO", "")).encode("latin-1", "replace").decode("utf-8", "replace")

        def log_request() -> None:  # the path only: never the query (signatures) or headers (tokens)
            log.info("%s %s %s", method, quote(path), (status_holder or ["-"])[0].split(" ")[0])

        try:
            body = self._dispatch(method, environ, recording_start_response)
        except BaseException:
            log_request()
            raise
        return _LoggedBody(body, log_request)

    def _dispatch(self, method: str, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        parts = self._path_parts(environ)
        if parts is None or self._inside_root(parts or []) is None:
            return self._respond(start_response, "403 Forbidden", {"error": "path refused"})
        if any(len(p.encode("utf-8")) > _MAX_NAME_BYTES for p in parts):
            too_long = f"a file or folder name is longer than {_MAX_NAME_BYTES} bytes"
            return self._respond(start_response, "400 Bad Request", {"error": too_long})
        # Credentials never travel further than this function.
        environ.pop("HTTP_AUTHORIZATION", None)
        if parts == ["_health"] and method in ("GET", "HEAD"):
            return self._health(start_response)
        if parts and parts[0] == "_signed":
            return self._signed(method, parts[1:], environ, start_response)
        return self._authenticated(method, parts, environ, start_response)

    def _authenticated(
        self, method: str, parts: list[str], environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if not environ.get("ocs_transfer.authorized"):
            return self._respond(
                start_response,
                "401 Unauthorized",
                {"error": "a valid access token is required (Authorization: Bearer <token>)"},
                [
                    ("WWW-Authenticate", 'Bearer realm="ocs-transfer"'),
                    ("WWW-Authenticate", 'Basic realm="ocs-transfer"'),
                    # refused before the body is read: closing the connection keeps the server
                    # from reading (draining) an upload it will never store
                    ("Connection", "close"),
                ],
            )
        if parts and parts[0] in ("_signed", "_health"):
            return self._respond(start_response, "403 Forbidden", {"error": "reserved name"})
        if not parts and method in ("DELETE", "MOVE", "PUT"):
            return self._respond(start_response, "403 Forbidden", {"error": "the server's root cannot be replaced,"
                                 " moved or deleted"})  # fmt: skip
        limit = self.config.max_upload_bytes
        if method == "PUT" and limit is not None:
            declared = _content_length(environ)
            if declared is not None and declared > limit:  # refused before the body is read
                return self._respond(start_response, "413 Payload Too Large", {"error": _too_large(limit)})
            environ[MAX_UPLOAD_ENVIRON] = limit
        if method == "PUT" and not self.config.readonly and len(parts) > 1:
            self._make_parents(parts)
        if method in ("MOVE", "COPY"):
            return self._move_or_copy(method, parts, environ, start_response)
        return self.dav(environ, start_response)

    def _move_or_copy(
        self, method: str, parts: list[str], environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """MOVE and COPY of files, published with a rename. (WsgiDAV decodes
        the Destination header before splitting off its query, which turns a
        name with ``?`` or ``;`` into another name; directories go to WsgiDAV
        only when their Destination survives that.)"""
        raw = str(environ.get("HTTP_DESTINATION", ""))
        dest_url = urlsplit(raw)
        dest_path = unquote(dest_url.path)
        hosts = {str(environ.get(k, "")).lower() for k in ("HTTP_HOST", "HTTP_X_FORWARDED_HOST")}
        if not raw or (dest_url.netloc and dest_url.netloc.lower() not in hosts):
            return self._respond(start_response, "400 Bad Request", {"error": "the Destination must be on this server"})
        dest_parts = self._path_parts({"PATH_INFO": dest_path.encode("utf-8").decode("latin-1")})
        dest = self._inside_root(dest_parts) if dest_parts else None
        if dest is None or not dest_parts or dest_parts[0] in ("_signed", "_health"):
            return self._respond(start_response, "403 Forbidden", {"error": "destination refused"})
        source = os.path.join(self.root_real, *parts)
        if not parts or not os.path.isfile(source) or os.path.islink(source):
            mangled = urlparse(unquote(raw), allow_fragments=False).path.rstrip("/") != dest_path.rstrip("/")
            if mangled:
                return self._respond(start_response, "400 Bad Request", {"error": "unsupported Destination name"})
            return self.dav(environ, start_response)
        if self.config.readonly:
            return self._respond(start_response, "403 Forbidden", {"error": "the server is read-only"})
        if not os.path.isdir(os.path.dirname(dest)):
            return self._respond(start_response, "409 Conflict", {"error": "the destination's parent does not exist"})
        existed = os.path.lexists(dest)
        if existed and str(environ.get("HTTP_OVERWRITE", "T")).upper() == "F":
            return self._respond(start_response, "412 Precondition Failed", {"error": "the destination exists"})
        if os.path.isdir(dest) or dest == os.path.realpath(source):
            return self._respond(start_response, "409 Conflict", {"error": "cannot replace that destination"})
        (_move_file if method == "MOVE" else _copy_file)(source, dest)
        status = "204 No Content" if existed else "201 Created"
        start_response(status, [("Content-Length", "0")])
        return [b""]

    def _health(self, start_response: StartResponse) -> list[bytes]:
        ok = os.path.isdir(self.root_real) and (self.config.readonly or os.access(self.root_real, os.W_OK))
        if ok:
            return self._respond(start_response, "200 OK", {"status": "ok"})
        return self._respond(start_response, "503 Service Unavailable", {"status": "error", "reason": "root unusable"})

    def _signed(
        self, method: str, parts: list[str], environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if method not in ("GET", "HEAD"):
            return self._respond(start_response, "405 Method Not Allowed", {"error": "signed links are read-only"},
                                 [("Allow", "GET, HEAD")])
        key = self.config.signing_key
        query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
        exps, sigs = query.get("exp", []), query.get("sig", [])
        exp, sig = (exps[0], sigs[0]) if len(exps) == len(sigs) == 1 else ("", "")  # one of each, or none
        path = "/".join(parts)
        if key is None or not parts or not verify_signature(key, path, exp, sig):
            return self._respond(start_response, "403 Forbidden", {"error": "the link is invalid or has expired"})
        full = self._inside_root(parts)
        if full is None or not os.path.isfile(full):
            return self._respond(start_response, "404 Not Found", {"error": "no such file"})
        environ["PATH_INFO"] = ("/" + path).encode("utf-8").decode("latin-1")
        environ["QUERY_STRING"] = ""
        return self.dav(environ, start_response)


class _LoggedBody:
    """A response body that logs the request once the server closes it."""

    def __init__(self, body: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self.body = body
        self.on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.on_close()


class _AuthGate:
    """Outermost layer: decides whether the request carries a valid token
    before anything else sees (and drops) the credential."""

    def __init__(self, app: _App) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["ocs_transfer.authorized"] = self.app._authorized(environ)
        return self.app(environ, start_response)


def make_app(config: ServerConfig) -> WSGIApplication:
    """The server's WSGI application (WsgiDAV wrapped in our layers)."""
    from wsgidav.error_printer import ErrorPrinter
    from wsgidav.http_authenticator import HTTPAuthenticator
    from wsgidav.request_resolver import RequestResolver
    from wsgidav.wsgidav_app import WsgiDAVApp

    provider = AtomicFilesystemProvider(str(config.root), readonly=config.readonly)
    dav = WsgiDAVApp(
        {
            "provider_mapping": {"/": provider},
            # Authentication happens in _App; WsgiDAV sees only authorised requests.
            "simple_dc": {"user_mapping": {"*": True}},
            "http_authenticator": {"accept_basic": False, "accept_digest": False, "default_to_digest": False},
            "middleware_stack": [ErrorPrinter, HTTPAuthenticator, RequestResolver],
            "dir_browser": {"enable": False},
            "property_manager": None,
            "lock_storage": True,
            "block_size": _BLOCK_SIZE,
            "verbose": 1,
            "logging": {"enable": False},
            "suppress_version_info": True,
        }
    )
    return _AuthGate(_App(config, dav))


# -- slow clients -------------------------------------------------------------------------


@attrs.define
class _Watch:
    conn: Any
    started: float
    request: Any = None  #: set once the headers were read
    mark_time: float = 0.0
    mark_bytes: int = 0


class _SlowClientGuard:
    """Cuts connections that hold a worker thread too long: headers slower
    than ``header_timeout``, an upload body below ``body_min_rate`` bytes/s
    over a ``body_window``. Cutting is a socket shutdown: the worker's blocked
    read returns at once and cheroot drops the connection."""

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._watches: dict[int, _Watch] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, conn: Any) -> None:
        with self._lock:
            self._watches[id(conn)] = _Watch(conn, self.clock())

    def headers_read(self, conn: Any, request: Any) -> None:
        with self._lock:
            watch = self._watches.get(id(conn))
            if watch is not None:
                watch.request = request
                watch.mark_time, watch.mark_bytes = self.clock(), _bytes_read(conn)

    def end(self, conn: Any) -> None:
        with self._lock:
            self._watches.pop(id(conn), None)

    def check(self) -> int:
        """One pass: cut what is too slow; returns how many were cut."""
        now = self.clock()
        cut = []
        with self._lock:
            for key, watch in list(self._watches.items()):
                if watch.request is None:
                    if now - watch.started > self.config.header_timeout:
                        cut.append((watch, "headers too slow"))
                        del self._watches[key]
                    continue
                if getattr(getattr(watch.request, "rfile", None), "remaining", 0) <= 0:
                    watch.mark_time, watch.mark_bytes = now, _bytes_read(watch.conn)  # not reading a body now
                    continue
                if now - watch.mark_time >= self.config.body_window:
                    got = _bytes_read(watch.conn) - watch.mark_bytes
                    if got < self.config.body_min_rate * (now - watch.mark_time):
                        cut.append((watch, f"upload body too slow ({got} bytes in {now - watch.mark_time:.0f} s)"))
                        del self._watches[key]
                        continue
                    watch.mark_time, watch.mark_bytes = now, _bytes_read(watch.conn)
        for watch, why in cut:
            log.warning("dropping a connection from %s: %s", _peer(watch.conn), why)
            try:
                watch.conn.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(cut)

    def start(self) -> None:
        self._stop.clear()
        interval = max(0.05, min(1.0, self.config.header_timeout / 10))

        def run() -> None:
            while not self._stop.wait(interval):
                self.check()

        self._thread = threading.Thread(target=run, name="ocs-transfer-file-server-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _bytes_read(conn: Any) -> int:
    return int(getattr(conn.rfile, "bytes_read", 0))


def _peer(conn: Any) -> str:
    addr = getattr(conn, "remote_addr", None)
    return str(addr or "?")


def _connection_class(guard: _SlowClientGuard) -> type[Any]:
    """cheroot's connection and request classes, reporting to ``guard``, and
    closing (not draining) a connection whose response says
    ``Connection: close`` (cheroot would otherwise read the rest of an unread
    body, at the client's pace)."""
    from cheroot import server as cheroot_server

    class Request(cheroot_server.HTTPRequest):  # type: ignore[misc]
        def parse_request(self) -> None:
            super().parse_request()
            guard.headers_read(self.conn, self)

        def send_headers(self) -> None:
            if any(k.lower() == b"connection" and v.lower() == b"close" for k, v in self.outheaders):
                self.close_connection = True
            super().send_headers()

    class Connection(cheroot_server.HTTPConnection):  # type: ignore[misc]
        RequestHandlerClass = Request

        def communicate(self) -> bool:
            guard.begin(self)
            try:
                return bool(super().communicate())  # type: ignore[no-untyped-call]
            finally:
                guard.end(self)

    return Connection


# -- running it ----------------------------------------------------------------------------


def _refusing_gateway() -> type[Any]:
    """cheroot's WSGI gateway, except that a response saying ``Connection:
    close`` (a request refused before its body was read, e.g. without a
    valid token) closes the connection instead of first reading the rest of
    the body, which for a 500 MB upload is the whole upload."""
    from cheroot import wsgi

    class RefusingGateway(wsgi.Gateway_10):  # type: ignore[misc]
        def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            write = super().start_response(status, headers, exc_info)
            if any(k.lower() == "connection" and v.lower() == "close" for k, v in headers):
                self.req.close_connection = True
            return write

    return RefusingGateway


class FileServer:
    """The file server on cheroot. ``start()`` serves from a background thread
    (tests, embedding); ``serve_forever()`` from the calling thread (the CLI)."""

    def __init__(self, config: ServerConfig) -> None:
        from cheroot import wsgi

        self.config = config
        self._server = wsgi.Server(
            (config.host, config.port),
            make_app(config),
            numthreads=config.threads,
            timeout=int(config.socket_timeout),
            shutdown_timeout=5,
        )
        self._server.gateway = _refusing_gateway()
        # How often the serve loop looks up (and so how long stop() waits); 0.5 s by default.
        self._server.expiration_interval = 0.1
        self._guard = _SlowClientGuard(config)
        self._server.ConnectionClass = _connection_class(self._guard)
        self._thread: threading.Thread | None = None
        self._sweeping = threading.Event()
        self._sweeper: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"FileServer(root={str(self.config.root)!r}, bind={self._server.bind_addr!r})"

    @property
    def port(self) -> int:
        return int(self._server.bind_addr[1])

    @property
    def url(self) -> str:
        host = self._server.bind_addr[0]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        self._guard.start()
        self._start_sweeper()
        self._server.prepare()
        self._thread = threading.Thread(target=self._server.serve, name="ocs-transfer-file-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(
        self, stop: threading.Event | None = None, ready: Callable[[FileServer], None] | None = None
    ) -> None:
        """Serve until ``stop`` is set (or forever)."""
        self.start()
        if ready is not None:
            ready(self)
        try:
            (stop or threading.Event()).wait()
        finally:
            self.stop()

    def stop(self) -> None:
        self._server.stop()
        self._guard.stop()
        self._sweeping.set()
        for thread in (self._thread, self._sweeper):
            if thread is not None:
                thread.join(timeout=10)
        self._thread = self._sweeper = None

    def _start_sweeper(self) -> None:
        self._sweeping.clear()
        root, age = str(self.config.root), self.config.partial_max_age

        def run() -> None:
            while True:
                try:
                    sweep_partials(root, age)
                except OSError as exc:
                    log.warning("sweeping dead uploads under %s failed: %s", root, exc)
                if self._sweeping.wait(SWEEP_INTERVAL):
                    return

        self._sweeper = threading.Thread(target=run, name="ocs-transfer-file-server-sweeper", daemon=True)
        self._sweeper.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

