"""A fake of Dropbox's HTTP API v2, written from Dropbox's API documentation,
for the real SDK to talk to over plain HTTP on 127.0.0.1.

Faithful on the wire where our provider depends on it:

- every route is ``POST /2/<namespace>/<route>``; RPC routes take a JSON body
  and answer ``Content-Type: application/json``; upload routes take their
  argument in the ``Dropbox-API-Arg`` header and the bytes as the body;
  download routes answer the metadata in ``Dropbox-API-Result``;
- route errors are 409 with ``{"error_summary": ..., "error": {".tag": ...}}``,
  auth errors 401 (``expired_access_token``, ``invalid_access_token``), rate
  limits 429 with ``Retry-After`` and a JSON ``{"reason", "retry_after"}``;
- ``POST /oauth2/token`` refreshes (``grant_type=refresh_token`` with the app
  key and secret) and exchanges codes (``authorization_code``, PKCE's
  ``code_verifier``); a revoked refresh token answers 400 ``invalid_grant``;
- upload sessions: start / append_v2 / finish with cursors; appends other
  than the last must be multiples of 4 MiB; a wrong offset is
  ``incorrect_offset`` carrying ``correct_offset``; at most 150 MiB per
  request; ``content_hash`` (SHA-256 of the 4 MiB blocks' SHA-256s) checked
  when sent and reported in metadata; ``WriteMode`` add / overwrite (add with
  ``autorename`` makes "x (1)");
- paths are case-insensitive (``path_lower``), folders are made by uploads.

File bytes live in a temporary directory, never in memory, so a client's
memory can be measured in the same process.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import posixpath
import secrets
import shutil
import tempfile
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import attrs

BLOCK = 4 * 1024 * 1024
MAX_REQUEST = 150 * 1024 * 1024


def content_hash_of(path: str) -> str:
    overall = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            overall.update(hashlib.sha256(block).digest())
    return overall.hexdigest()


@attrs.define
class Fault:
    """One injected fault, for the next ``count`` requests to ``route`` (``"*"``: any)."""

    route: str
    kind: str  # "status" | "drop" (no response, body unread) | "lose" (do the work, then drop the response)
    status: int = 500
    body: dict[str, Any] | None = None
    headers: dict[str, str] = attrs.Factory(dict)
    count: int = 1


@attrs.define
class FileEntry:
    path_display: str
    disk: str
    size: int
    content_hash: str
    rev: str
    id: str
    modified: datetime


@attrs.define
class Session:
    disk: str
    offset: int = 0
    closed: bool = False


class FakeDropbox:
    """The fake API server. ``url`` serves both the API and the content host."""

    def __init__(self, *, app_key: str = "fakeappkey123", app_secret: str = "fakeappsecret456") -> None:
        self.app_key = app_key
        self.app_secret = app_secret
        self.email = "observer@example.org"
        self.account_id = "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"
        self.refresh_tokens: set[str] = {"refresh-token-" + secrets.token_hex(16)}
        self.access_tokens: dict[str, bool] = {}  # token -> still valid
        self.token_lifetime = 14400
        self.codes: dict[str, dict[str, str]] = {}  # code -> {"challenge", "redirect_uri"}
        self.quota: int | None = None
        self.files: dict[str, FileEntry] = {}
        self.folders: set[str] = {""}
        self.folder_display: dict[str, str] = {"": ""}
        self.sessions: dict[str, Session] = {}
        self.links: dict[str, str] = {}  # token -> path_lower
        self.temp_links: dict[str, str] = {}
        self.faults: list[Fault] = []
        self.corrupt_next = False  #: flip a byte of the next committed file (a server storing it wrong)
        self.calls: list[str] = []
        self.refreshes = 0
        self.lock = threading.RLock()
        self._counter = itertools.count(0x1A2B3C4D5)
        self._dir = tempfile.mkdtemp(prefix="fake-dropbox-")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-dropbox", daemon=True)

    @property
    def refresh_token(self) -> str:
        return next(iter(self.refresh_tokens))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeDropbox:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- test controls ------------------------------------------------------------------

    def inject(self, route: str, kind: str = "status", **kw: Any) -> Fault:
        fault = Fault(route, kind, **kw)
        with self.lock:
            self.faults.append(fault)
        return fault

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = False

    def revoke(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()
            self.access_tokens.clear()

    def issue_code(self, code_challenge: str, redirect_uri: str) -> str:
        """What the authorize page would redirect with after the user agreed."""
        code = "code-" + secrets.token_hex(8)
        self.codes[code] = {"challenge": code_challenge, "redirect_uri": redirect_uri}
        return code

    def used_bytes(self) -> int:
        return sum(f.size for f in self.files.values())

    def names(self) -> list[str]:
        """Every file's display path, sorted."""
        with self.lock:
            return sorted(f.path_display for f in self.files.values())

    def read(self, path: str) -> bytes:
        with open(self.files[path.lower()].disk, "rb") as f:
            return f.read()

    # -- helpers ------------------------------------------------------------------------

    def _take_fault(self, route: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.route in (route, "*") and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _new_disk(self) -> str:
        return os.path.join(self._dir, secrets.token_hex(12))

    def _meta(self, entry: FileEntry) -> dict[str, Any]:
        stamp = entry.modified.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            ".tag": "file",
            "name": posixpath.basename(entry.path_display),
            "id": entry.id,
            "client_modified": stamp,
            "server_modified": stamp,
            "rev": entry.rev,
            "size": entry.size,
            "path_lower": entry.path_display.lower(),
            "path_display": entry.path_display,
            "is_downloadable": True,
            "content_hash": entry.content_hash,
        }

    def _folder_meta(self, lower: str) -> dict[str, Any]:
        display = self.folder_display.get(lower, lower)
        return {
            ".tag": "folder",
            "name": posixpath.basename(display),
            "id": "id:" + hashlib.sha1(lower.encode()).hexdigest()[:22],
            "path_lower": lower,
            "path_display": display,
        }

    def _mkdirs(self, display_dir: str) -> None:
        parts = [p for p in display_dir.split("/") if p]
        for i in range(1, len(parts) + 1):
            display = "/" + "/".join(parts[:i])
            if display.lower() not in self.folders:
                self.folders.add(display.lower())
                self.folder_display[display.lower()] = display

    def _commit(self, disk: str, path: str, mode: Any, autorename: bool) -> dict[str, Any]:
        """Make the file at ``disk`` visible at ``path`` (the caller holds the lock)."""
        size = os.path.getsize(disk)
        lower = path.lower()
        tag = mode.get(".tag") if isinstance(mode, dict) else (mode or "add")
        existing = self.files.get(lower)
        if self.quota is not None and self.used_bytes() - (existing.size if existing else 0) + size > self.quota:
            os.unlink(disk)
            raise _RouteError({".tag": "insufficient_space"}, "insufficient_space")
        if lower in self.folders:
            os.unlink(disk)
            raise _RouteError({".tag": "conflict", "conflict": {".tag": "folder"}}, "conflict/folder")
        if existing is not None and tag == "add":
            if not autorename:
                os.unlink(disk)
                raise _RouteError({".tag": "conflict", "conflict": {".tag": "file"}}, "conflict/file")
            stem, ext = posixpath.splitext(path)
            for n in itertools.count(1):
                candidate = f"{stem} ({n}){ext}"
                if candidate.lower() not in self.files:
                    path, lower = candidate, candidate.lower()
                    break
        self._mkdirs(posixpath.dirname(path))
        if self.corrupt_next and size:
            self.corrupt_next = False
            with open(disk, "r+b") as f:
                f.seek(size // 2)
                byte = f.read(1)
                f.seek(size // 2)
                f.write(bytes([byte[0] ^ 0xFF]))
        old = self.files.get(lower)
        entry = FileEntry(
            path_display=path if old is None else old.path_display,
            disk=disk,
            size=size,
            content_hash=content_hash_of(disk),
            rev=f"{next(self._counter):015x}",
            id=old.id if old else "id:" + secrets.token_urlsafe(16)[:22],
            modified=datetime.now(UTC),
        )
        self.files[lower] = entry
        if old is not None:
            os.unlink(old.disk)
        return self._meta(entry)


class _RouteError(Exception):
    def __init__(self, error: dict[str, Any], summary: str, status: int = 409) -> None:
        super().__init__(summary)
        self.error = error
        self.summary = summary
        self.status = status


def _lookup_error(tag: str, inner: str = "not_found") -> _RouteError:
    return _RouteError({".tag": tag, tag: {".tag": inner}}, f"{tag}/{inner}/")


def _handler(fake: FakeDropbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        # -- plumbing ---------------------------------------------------------------

        def _send(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Dropbox-Request-Id", secrets.token_hex(8))
            for key, value in headers.items():
                self.send_header(key.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: Any, **headers: str) -> None:
            self._send(status, json.dumps(obj).encode(), **headers)

        def _body_to(self, disk: str | None) -> bytes | None:
            """Read the request body (to ``disk`` in pieces, or into memory)."""
            length = int(self.headers.get("Content-Length") or 0)
            if disk is None:
                return self.rfile.read(length)
            with open(disk, "ab") as out:
                left = length
                while left:
                    piece = self.rfile.read(min(left, 1 << 20))
                    if not piece:
                        raise ConnectionError("client went away mid-body")
                    out.write(piece)
                    left -= len(piece)
            return None

        def _authorized(self) -> bool:
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ")
            with fake.lock:
                state = fake.access_tokens.get(token)
            if state is None:
                self._json(401, {"error_summary": "invalid_access_token/", "error": {".tag": "invalid_access_token"}})
                return False
            if state is False:
                self._json(401, {"error_summary": "expired_access_token/", "error": {".tag": "expired_access_token"}})
                return False
            return True

        def do_GET(self) -> None:  # shared and temporary links
            parts = urlsplit(self.path).path.strip("/").split("/")
            with fake.lock:
                table = fake.links if parts[0] == "s" else fake.temp_links if parts[0] == "tmp" else {}
                lower = table.get(parts[1]) if len(parts) > 1 else None
                entry = fake.files.get(lower or "")
            if entry is None:
                self._send(404, b"not found", "text/plain")
                return
            with open(entry.disk, "rb") as f:
                self._send(200, f.read(), "application/octet-stream")

        def do_POST(self) -> None:
            route = urlsplit(self.path).path
            fake.calls.append(route)
            fault = fake._take_fault(route)
            if fault is not None and fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault is not None and fault.kind == "status":
                self._body_to(None)
                body = fault.body or {"error_summary": "internal/", "error": {".tag": "other"}}
                self._json(fault.status, body, **fault.headers)
                return
            try:
                if route == "/oauth2/token":
                    self._token()
                    return
                if not self._authorized():
                    self._body_to(None)
                    return
                status, result, headers, stream = self._route(route)
            except _RouteError as err:
                self._json(err.status, {"error_summary": err.summary + secrets.token_hex(2), "error": err.error})
                return
            except ConnectionError:
                self.close_connection = True
                return
            if fault is not None and fault.kind == "lose":  # the work is done; the answer never arrives
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if stream is not None:
                with open(stream, "rb") as f:
                    data = f.read()
                self._send(status, data, "application/octet-stream", **headers)
            else:
                self._json(status, result, **headers)

        # -- OAuth --------------------------------------------------------------------------

        def _token(self) -> None:
            form = {k: v[0] for k, v in parse_qs((self._body_to(None) or b"").decode()).items()}
            basic = self.headers.get("Authorization", "")
            if basic.startswith("Basic "):
                import base64

                key, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                form.setdefault("client_id", key)
                form.setdefault("client_secret", secret)
            if form.get("client_id") != fake.app_key:
                self._json(400, {"error": "invalid_client", "error_description": "Invalid client_id or client_secret"})
                return
            grant = form.get("grant_type")
            if grant == "refresh_token":
                if form.get("client_secret") != fake.app_secret:
                    self._json(400, {"error": "invalid_client", "error_description": "Invalid client_secret"})
                    return
                if form.get("refresh_token") not in fake.refresh_tokens:
                    self._json(
                        400, {"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"}
                    )
                    return
                fake.refreshes += 1
                token = "sl." + secrets.token_urlsafe(24)
                with fake.lock:
                    fake.access_tokens[token] = True
                self._json(200, {"access_token": token, "token_type": "bearer", "expires_in": fake.token_lifetime})
                return
            if grant == "authorization_code":
                issued = fake.codes.pop(form.get("code", ""), None)
                if issued is None or form.get("redirect_uri", "") != issued["redirect_uri"]:
                    self._json(
                        400, {"error": "invalid_grant", "error_description": "code doesn't exist or has expired"}
                    )
                    return
                verifier = form.get("code_verifier")
                if verifier is not None:
                    import base64

                    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
                    if digest.decode() != issued["challenge"]:
                        self._json(400, {"error": "invalid_grant", "error_description": "invalid code verifier"})
                        return
                elif form.get("client_secret") != fake.app_secret:
                    self._json(400, {"error": "invalid_client", "error_description": "Invalid client_secret"})
                    return
                refresh = "refresh-token-" + secrets.token_hex(16)
                token = "sl." + secrets.token_urlsafe(24)
                with fake.lock:
                    fake.refresh_tokens.add(refresh)
                    fake.access_tokens[token] = True
                self._json(200, {
                    "access_token": token, "token_type": "bearer", "expires_in": fake.token_lifetime,
                    "refresh_token": refresh, "scope": "files.content.write files.content.read sharing.write",
                    "uid": "12345", "account_id": fake.account_id,
                })  # fmt: skip
                return
            self._json(400, {"error": "unsupported_grant_type", "error_description": "unsupported grant_type"})

        # -- routes --------------------------------------------------------------------------

        def _arg(self) -> dict[str, Any]:
            raw = self.headers.get("Dropbox-API-Arg")
            if raw is None:
                raise _RouteError({".tag": "other"}, "missing Dropbox-API-Arg", 400)
            return dict(json.loads(raw))

        def _rpc(self) -> dict[str, Any]:
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                raise _RouteError({".tag": "other"}, 'Bad HTTP "Content-Type" header', 400)
            body = self._body_to(None) or b"null"
            loaded = json.loads(body)
            return dict(loaded) if isinstance(loaded, dict) else {}

        def _route(self, route: str) -> tuple[int, Any, dict[str, str], str | None]:
            none: dict[str, str] = {}
            if route == "/2/files/upload":
                arg = self._arg()
                disk = fake._new_disk()
                if int(self.headers.get("Content-Length") or 0) > MAX_REQUEST:
                    raise _RouteError({".tag": "payload_too_large"}, "payload_too_large/")
                self._body_to(disk)
                if arg.get("content_hash") and arg["content_hash"] != content_hash_of(disk):
                    os.unlink(disk)
                    raise _RouteError({".tag": "content_hash_mismatch"}, "content_hash_mismatch/")
                with fake.lock:
                    try:
                        meta = fake._commit(disk, arg["path"], arg.get("mode"), bool(arg.get("autorename")))
                    except _RouteError as err:
                        raise _RouteError(
                            {".tag": "path", "reason": err.error, "upload_session_id": "none"}, "path/" + err.summary
                        ) from None
                return 200, meta, none, None
            if route == "/2/files/upload_session/start":
                arg = self._arg()
                session_id = "pid_upload_session:" + secrets.token_urlsafe(24)
                session = Session(disk=fake._new_disk())
                self._body_to(session.disk)
                session.offset = os.path.getsize(session.disk)
                session.closed = bool(arg.get("close"))
                with fake.lock:
                    fake.sessions[session_id] = session
                return 200, {"session_id": session_id}, none, None
            if route in ("/2/files/upload_session/append_v2", "/2/files/upload_session/finish"):
                arg = self._arg()
                cursor = arg["cursor"]
                length = int(self.headers.get("Content-Length") or 0)
                with fake.lock:
                    session = fake.sessions.get(cursor["session_id"])
                finish = route.endswith("finish")

                def lookup(error: dict[str, Any], summary: str) -> _RouteError:
                    if finish:
                        return _RouteError(
                            {".tag": "lookup_failed", "lookup_failed": error}, "lookup_failed/" + summary
                        )
                    return _RouteError(error, summary)

                if session is None:
                    self._body_to(None)
                    raise lookup({".tag": "not_found"}, "not_found/")
                if session.closed and not (finish and length == 0):
                    self._body_to(None)
                    raise lookup({".tag": "closed"}, "closed/")
                if int(cursor["offset"]) != session.offset:
                    self._body_to(None)
                    raise lookup({".tag": "incorrect_offset", "correct_offset": session.offset}, "incorrect_offset/")
                if length > MAX_REQUEST:
                    self._body_to(None)
                    raise lookup({".tag": "payload_too_large"}, "payload_too_large/")
                closing = finish or bool(arg.get("close"))
                if not closing and length % BLOCK:
                    self._body_to(None)
                    raise lookup(
                        {".tag": "concurrent_session_invalid_data_size"}, "concurrent_session_invalid_data_size/"
                    )
                self._body_to(session.disk)
                session.offset = os.path.getsize(session.disk)
                session.closed = session.closed or bool(arg.get("close"))
                if not finish:
                    return 200, None, none, None
                commit = arg["commit"]
                with fake.lock:
                    fake.sessions.pop(cursor["session_id"], None)
                    try:
                        meta = fake._commit(
                            session.disk, commit["path"], commit.get("mode"), bool(commit.get("autorename"))
                        )
                    except _RouteError as err:
                        raise _RouteError({".tag": "path", "path": err.error}, "path/" + err.summary) from None
                return 200, meta, none, None
            if route == "/2/files/download":
                arg = self._arg()
                self._body_to(None)
                with fake.lock:
                    entry = fake.files.get(arg["path"].lower())
                if entry is None:
                    raise _lookup_error("path")
                return 200, None, {"Dropbox-API-Result": json.dumps(fake._meta(entry))}, entry.disk
            body = self._rpc()
            return self._rpc_route(route, body)

        def _rpc_route(self, route: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str], str | None]:
            none: dict[str, str] = {}
            path = str(body.get("path", ""))
            lower = path.lower().rstrip("/")
            with fake.lock:
                if route == "/2/files/get_metadata":
                    if lower in fake.files:
                        return 200, fake._meta(fake.files[lower]), none, None
                    if lower in fake.folders and lower:
                        return 200, fake._folder_meta(lower), none, None
                    raise _lookup_error("path")
                if route == "/2/files/delete_v2":
                    entry = fake.files.pop(lower, None)
                    if entry is not None:
                        os.unlink(entry.disk)
                        return 200, {"metadata": fake._meta(entry)}, none, None
                    if lower in fake.folders and lower:
                        inside = [k for k in fake.files if k.startswith(lower + "/")]
                        for key in inside:
                            os.unlink(fake.files.pop(key).disk)
                        fake.folders -= {f for f in fake.folders if f == lower or f.startswith(lower + "/")}
                        return 200, {"metadata": fake._folder_meta(lower)}, none, None
                    raise _lookup_error("path_lookup")
                if route == "/2/files/create_folder_v2":
                    if lower in fake.folders or lower in fake.files:
                        conflict = {".tag": "conflict", "conflict": {".tag": "folder"}}
                        raise _RouteError({".tag": "path", "path": conflict}, "path/conflict/folder/")
                    fake._mkdirs(path)
                    return 200, {"metadata": fake._folder_meta(lower)}, none, None
                if route in ("/2/files/list_folder", "/2/files/list_folder/continue"):
                    if route.endswith("continue"):
                        lower, recursive = json.loads(body["cursor"])
                    else:
                        recursive = bool(body.get("recursive"))
                        if lower and lower not in fake.folders:
                            raise _lookup_error("path")
                    prefix = lower + "/"
                    entries = [
                        fake._meta(f) for k, f in sorted(fake.files.items())
                        if k.startswith(prefix) and (recursive or "/" not in k[len(prefix):])
                    ] + [
                        fake._folder_meta(d) for d in sorted(fake.folders)
                        if d.startswith(prefix) and (recursive or "/" not in d[len(prefix):])
                    ]  # fmt: skip
                    return (
                        200,
                        {"entries": entries, "cursor": json.dumps([lower, recursive]), "has_more": False},
                        none,
                        None,
                    )
                if route == "/2/files/get_temporary_link":
                    entry = fake.files.get(lower)
                    if entry is None:
                        raise _lookup_error("path")
                    token = secrets.token_urlsafe(12)
                    fake.temp_links[token] = lower
                    return 200, {"metadata": fake._meta(entry), "link": f"{fake.url}/tmp/{token}"}, none, None
                if route == "/2/sharing/create_shared_link_with_settings":
                    entry = fake.files.get(lower)
                    if entry is None:
                        raise _lookup_error("path")
                    if lower in fake.links.values():
                        raise _RouteError({".tag": "shared_link_already_exists"}, "shared_link_already_exists/")
                    token = secrets.token_urlsafe(12)
                    fake.links[token] = lower
                    return 200, self._link(token, entry), none, None
                if route == "/2/sharing/list_shared_links":
                    found = [self._link(t, fake.files[p]) for t, p in fake.links.items()
                             if p in fake.files and (not lower or p == lower)]  # fmt: skip
                    return 200, {"links": found, "has_more": False}, none, None
                if route == "/2/users/get_current_account":
                    return 200, self._account(), none, None
                if route == "/2/users/get_space_usage":
                    allocated = {".tag": "individual", "allocated": fake.quota or 2 << 40}
                    return 200, {"used": fake.used_bytes(), "allocation": allocated}, none, None
            raise _RouteError({".tag": "other"}, f"Unknown API function: {route}", 400)

        def _link(self, token: str, entry: FileEntry) -> dict[str, Any]:
            meta = fake._meta(entry)
            return {
                ".tag": "file", "url": f"{fake.url}/s/{token}/{quote(meta['name'])}?dl=0", "name": meta["name"],
                "link_permissions": {
                    "can_revoke": True, "resolved_visibility": {".tag": "public"}, "visibility_policies": [],
                    "can_set_expiry": False, "can_remove_expiry": False, "allow_download": True,
                    "can_allow_download": True, "can_disallow_download": False, "allow_comments": True,
                    "team_restricts_comments": False,
                },
                "client_modified": meta["client_modified"], "server_modified": meta["server_modified"],
                "rev": meta["rev"], "size": meta["size"], "id": meta["id"], "path_lower": meta["path_lower"],
            }  # fmt: skip

        def _account(self) -> dict[str, Any]:
            return {
                "account_id": fake.account_id,
                "name": {"given_name": "Ada", "surname": "Observer", "familiar_name": "Ada",
                         "display_name": "Ada Observer", "abbreviated_name": "AO"},
                "email": fake.email, "email_verified": True, "disabled": False, "locale": "en",
                "referral_link": "https://db.tt/fake", "is_paired": False, "account_type": {".tag": "basic"},
                "root_info": {".tag": "user", "root_namespace_id": "3235641", "home_namespace_id": "3235641"},
                "country": "US",
            }  # fmt: skip

    return Handler


__all__ = ["BLOCK", "MAX_REQUEST", "FakeDropbox", "Fault", "content_hash_of"]
