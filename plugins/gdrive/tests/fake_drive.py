"""A fake of the Google Drive v3 REST API and Google's OAuth token endpoint,
written from Google's documentation, served over HTTP on 127.0.0.1.

What it does as Drive does (developers.google.com/drive/api/reference/rest/v3):

- ``/token``: ``refresh_token``, ``authorization_code`` (with PKCE S256) and
  JWT-bearer (service account) grants; ``invalid_grant`` for an unknown or
  revoked refresh token; access tokens expire (``expire_tokens()``), and an
  expired one gets 401 ``authError`` with ``WWW-Authenticate``.
- ``files.list`` with the ``q`` subset Drive documents (``'<id>' in parents``,
  ``name = / !=``, ``mimeType = / !=``, ``trashed = true/false``, joined by
  ``and``), paging, ``fields`` selection (default fields only), and shared-drive
  items hidden unless ``supportsAllDrives`` + ``includeItemsFromAllDrives``.
- ``files.get`` (``alt=media`` with ``Range``), ``create``, ``update``
  (``trashed``), ``delete`` (folders with their contents), ``copy``,
  ``generateIds``, ``permissions.list/create``, ``about.get``.
- Uploads: ``uploadType=multipart`` (``multipart/related``) and
  ``uploadType=resumable`` sessions (``Location``; ``PUT`` with
  ``Content-Range``; ``308`` + ``Range: bytes=0-N``; a non-final chunk commits
  only its 256 KiB multiples; ``bytes */N`` status queries; ``200`` with the file
  once complete); a file appears only when its upload completes.
- Errors as ``{"error": {"code", "message", "errors": [{"domain", "reason",
  "message"}]}}``: 404 ``notFound``, 403 ``storageQuotaExceeded``, 403
  ``userRateLimitExceeded`` / 429 ``rateLimitExceeded`` with ``Retry-After``.

Faults for tests: :meth:`FakeDrive.add_fault` with a predicate on the request
and an action: an error response, a cut connection after N body bytes, or a
dropped response after the request was carried out.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

FOLDER = "application/vnd.google-apps.folder"
QUANTUM = 256 * 1024
DEFAULT_FIELDS = ("kind", "id", "name", "mimeType")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.headers = code, reason, message, headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message,
                          "errors": [{"domain": "global", "reason": self.reason, "message": self.message}]}}


@attrs.define
class Fault:
    """``when(request) -> bool`` picks requests; then ``status`` (an error
    response), ``cut_after`` (read that many body bytes, then drop the
    connection) or ``drop_response`` (do the request, send no response)."""

    when: Callable[[Request], bool]
    status: int | None = None
    reason: str = ""
    headers: dict[str, str] = attrs.Factory(dict)
    cut_after: int | None = None
    drop_response: bool = False
    times: int = 1
    hits: int = 0


@attrs.define
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _select(resource: dict[str, Any], fields: str | None, default: tuple[str, ...] = DEFAULT_FIELDS) -> dict[str, Any]:
    """Drive's partial response: ``fields=a,b(c,d)``."""
    if fields is None:
        return {k: v for k, v in resource.items() if k in default}
    if fields.strip() == "*":
        return dict(resource)
    out: dict[str, Any] = {}
    for name, sub in _parse_fields(fields):
        if name not in resource:
            continue
        value = resource[name]
        if sub is not None and isinstance(value, list):
            out[name] = [_select(v, sub) for v in value]
        elif sub is not None and isinstance(value, dict):
            out[name] = _select(value, sub)
        else:
            out[name] = value
    return out


def _parse_fields(text: str) -> list[tuple[str, str | None]]:
    items, depth, start, result = [], 0, 0, []
    for i, ch in enumerate(text + ","):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    for item in filter(None, items):
        if "(" in item:
            name, sub = item.split("(", 1)
            result.append((name.strip(), sub[:-1]))
        else:
            result.append((item.split("/")[0], None))
    return result


_TOKEN = re.compile(r"'(?:\\.|[^'\\])*'|!=|=|\w+|\S")


def _parse_q(q: str) -> list[Callable[[dict[str, Any]], bool]]:
    """The documented query forms, joined by ``and``."""
    tokens = _TOKEN.findall(q)
    clauses: list[list[str]] = [[]]
    for tok in tokens:
        if tok.lower() == "and":
            clauses.append([])
        else:
            clauses[-1].append(tok)

    def literal(tok: str) -> str:
        if not (tok.startswith("'") and tok.endswith("'")):
            raise ApiError(400, "invalid", "Invalid Value")
        return re.sub(r"\\(.)", r"\1", tok[1:-1])

    preds: list[Callable[[dict[str, Any]], bool]] = []
    for c in clauses:
        if len(c) == 3 and c[1] == "in" and c[2] == "parents":
            pid = literal(c[0])
            preds.append(lambda f, pid=pid: pid in f.get("parents", []))
        elif len(c) == 3 and c[0] in ("name", "mimeType") and c[1] in ("=", "!="):
            key, value, eq = c[0], literal(c[2]), c[1] == "="
            preds.append(lambda f, key=key, value=value, eq=eq: (f.get(key) == value) == eq)
        elif len(c) == 3 and c[0] == "trashed" and c[1] == "=" and c[2] in ("true", "false"):
            want = c[2] == "true"
            preds.append(lambda f, want=want: bool(f.get("trashed")) == want)
        else:
            raise ApiError(400, "invalid", "Invalid Value")
    return preds


class FakeDrive:
    """The fake's state and server. Use as a context manager."""

    def __init__(self, *, email: str = "observer@example.org", token_lifetime: int = 3600) -> None:
        self.email = email
        self.token_lifetime = token_lifetime
        self.lock = threading.RLock()
        self.blobs = tempfile.mkdtemp(prefix="fake-drive-")
        self.files: dict[str, dict[str, Any]] = {"root": {"id": "root", "name": "My Drive", "mimeType": FOLDER,
                                                          "parents": [], "trashed": False}}  # fmt: skip
        self.sessions: dict[str, dict[str, Any]] = {}
        self.clients: dict[str, str] = {"client-1.apps.googleusercontent.com": "client-secret-1"}
        self.refresh_tokens: dict[str, str] = {}  # token -> client id
        self.access_tokens: dict[str, float] = {}  # token -> expiry (time.time)
        self.codes: dict[str, dict[str, str]] = {}
        self.service_accounts: dict[str, Any] = {}  # e-mail -> public key
        self.issued_ids: set[str] = set()
        self.permissions: dict[str, list[dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.quota: int | None = None
        self.connections: set[socket.socket] = set()
        self.corrupt_uploads = 0  #: the next N stored uploads get a flipped byte (storage corruption)
        self.token_requests = 0
        self._seq = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.token_url = f"{self.url}/token"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> FakeDrive:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.blobs, ignore_errors=True)

    # -- test helpers ---------------------------------------------------------------------

    def new_refresh_token(self, client_id: str = "client-1.apps.googleusercontent.com") -> str:
        token = "1//" + secrets.token_urlsafe(32)
        self.refresh_tokens[token] = client_id
        return token

    def credentials(self) -> dict[str, str]:
        client = next(iter(self.clients))
        refresh = self.new_refresh_token(client)
        return {"client_id": client, "client_secret": self.clients[client], "refresh_token": refresh}

    def service_account(self, email: str = "uploader@project.iam.gserviceaccount.com") -> str:
        """A new service account's key file (JSON text), known to the token endpoint."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.service_accounts[email] = key.public_key()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()  # fmt: skip
        return json.dumps({"type": "service_account", "project_id": "project", "private_key_id": "k1",
                           "private_key": pem, "client_email": email, "client_id": "1",
                           "token_uri": "https://oauth2.googleapis.com/token"})  # fmt: skip

    def revoke(self, refresh_token: str) -> None:
        self.refresh_tokens.pop(refresh_token, None)

    def expire_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def drop_connections(self) -> None:
        """Cut every open client connection (as a restarting front end would)."""
        with self.lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def add_fault(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def add_shared_drive(self, name: str) -> str:
        drive_id = "0A" + secrets.token_hex(8)
        self.files[drive_id] = {"id": drive_id, "name": name, "mimeType": FOLDER, "parents": [], "trashed": False,
                                "driveId": drive_id}  # fmt: skip
        return drive_id

    def issue_code(self, client_id: str, redirect_uri: str, challenge: str) -> str:
        code = "4/" + secrets.token_urlsafe(16)
        self.codes[code] = {"client_id": client_id, "redirect_uri": redirect_uri, "challenge": challenge}
        return code

    def live(self) -> list[dict[str, Any]]:
        return [f for f in self.files.values() if not f.get("trashed") and f["id"] != "root" and f.get("parents")]

    def paths(self, root_id: str = "root", *, files_only: bool = True) -> list[str]:
        """Every live item under ``root_id`` as a path (names may repeat: duplicates show twice)."""
        out: list[str] = []

        def walk(pid: str, prefix: str) -> None:
            for f in self.live():
                if pid in f["parents"]:
                    path = f"{prefix}{f['name']}"
                    if f["mimeType"] == FOLDER:
                        if not files_only:
                            out.append(path + "/")
                        walk(f["id"], path + "/")
                    else:
                        out.append(path)

        with self.lock:
            walk(root_id, "")
        return sorted(out)

    def content(self, file_id: str) -> bytes:
        with open(os.path.join(self.blobs, file_id), "rb") as f:
            return f.read()

    def used(self) -> int:
        return sum(int(f.get("size") or 0) for f in self.files.values())

    # -- resources ------------------------------------------------------------------------------

    def _resource(self, f: dict[str, Any]) -> dict[str, Any]:
        r = {k: v for k, v in f.items() if k not in ("seq",)}
        r["kind"] = "drive#file"
        r["webViewLink"] = (f"https://drive.google.com/drive/folders/{f['id']}" if f["mimeType"] == FOLDER
                            else f"https://drive.google.com/file/d/{f['id']}/view?usp=drivesdk")  # fmt: skip
        return r

    def _visible(self, f: dict[str, Any], query: dict[str, str], listing: bool = False) -> bool:
        if not f.get("driveId"):
            return True
        ok = query.get("supportsAllDrives") == "true"
        if listing:
            ok = ok and query.get("includeItemsFromAllDrives") == "true"
        return ok

    def _get(self, file_id: str, query: dict[str, str]) -> dict[str, Any]:
        f = self.files.get(file_id)
        if f is None or not self._visible(f, query):
            raise ApiError(404, "notFound", f"File not found: {file_id}.")
        return f

    def _new_file(self, meta: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        file_id = meta.get("id")
        if file_id is not None:
            if file_id in self.files:
                raise ApiError(409, "duplicate", "A file already exists with the provided ID.")
            if file_id not in self.issued_ids:
                raise ApiError(400, "fileIdNotUsable", "The provided file ID is not usable.")
        else:
            file_id = secrets.token_urlsafe(24)
        parents = list(meta.get("parents") or ["root"])
        if len(parents) != 1:
            raise ApiError(400, "invalid", "A file must have exactly one parent.")
        parent = self._get(parents[0], query)
        if parent["mimeType"] != FOLDER:
            raise ApiError(400, "invalid", "The parent is not a folder.")
        now = _now()
        f = {"id": file_id, "name": str(meta.get("name") or "Untitled"), "mimeType": meta.get("mimeType")
             or "application/octet-stream", "parents": parents, "trashed": False, "createdTime": now,
             "modifiedTime": now, "seq": next(self._seq)}  # fmt: skip
        if parent.get("driveId"):
            f["driveId"] = parent["driveId"]
        return f

    def _store_blob(self, f: dict[str, Any], blob: str) -> None:
        size = os.path.getsize(blob)
        old = int(f.get("size") or 0)
        if self.quota is not None and self.used() - old + size > self.quota:
            os.unlink(blob)
            raise ApiError(403, "storageQuotaExceeded", "The user's Drive storage quota has been exceeded.")
        if self.corrupt_uploads and size:
            self.corrupt_uploads -= 1
            with open(blob, "r+b") as damaged:
                first = damaged.read(1)
                damaged.seek(0)
                damaged.write(bytes([first[0] ^ 0xFF]))
        md5 = hashlib.md5()
        with open(blob, "rb") as src:
            while data := src.read(1 << 20):
                md5.update(data)
        os.replace(blob, os.path.join(self.blobs, f["id"]))
        f.update(size=str(size), md5Checksum=md5.hexdigest(), modifiedTime=_now())
        self.files[f["id"]] = f

    def _delete(self, file_id: str) -> None:
        for child in [c for c in self.files.values() if file_id in c.get("parents", [])]:
            self._delete(child["id"])
        self.files.pop(file_id, None)
        try:
            os.unlink(os.path.join(self.blobs, file_id))
        except FileNotFoundError:
            pass


def _handler(drive: FakeDrive) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with drive.lock:
                drive.connections.add(self.connection)

        def finish(self) -> None:
            with drive.lock:
                drive.connections.discard(self.connection)
            super().finish()

        def _go(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            req = Request(self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()})
            drive.requests.append(req)
            self._remaining = int(self.headers.get("Content-Length") or 0)
            fault = None
            with drive.lock:
                for f in drive.faults:
                    if f.hits < f.times and f.when(req):
                        f.hits += 1
                        fault = f
                        break
            if fault is not None and fault.status is not None:
                self._read_all()
                err = ApiError(fault.status, fault.reason, f"fault {fault.status} {fault.reason}", fault.headers)
                return self._send(err.code, err.body(), err.headers)
            self._cut_after = fault.cut_after if fault is not None else None
            try:
                status, body, headers = self._route(req)
            except _Cut:
                return self._drop()
            except ApiError as err:
                self._read_all()
                status, body, headers = err.code, err.body(), err.headers
                if err.code == 401:
                    headers = {**headers, "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
            if fault is not None and fault.drop_response:
                return self._drop()
            self._send(status, body, headers)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _go

        # -- I/O --------------------------------------------------------------------------------

        def _read(self, n: int) -> bytes:
            n = min(n, self._remaining)
            if self._cut_after is not None:
                if self._cut_after <= 0:
                    raise _Cut()
                n = min(n, self._cut_after)
            data = self.rfile.read(n)
            self._remaining -= len(data)
            if self._cut_after is not None:
                self._cut_after -= len(data)
            return data

        def _read_all(self) -> bytes:
            chunks = []
            while self._remaining > 0:
                chunks.append(self._read(1 << 20))
            return b"".join(chunks)

        def _drop(self) -> None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            if isinstance(body, (bytes, bytearray)):
                data, ctype = bytes(body), "application/octet-stream"
            elif body is None:
                data, ctype = b"", None
            else:
                data, ctype = json.dumps(body).encode(), "application/json; charset=UTF-8"
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        # -- routes --------------------------------------------------------------------------------

        def _auth(self, req: Request) -> None:
            auth = req.headers.get("authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else ""
            with drive.lock:
                expiry = drive.access_tokens.get(token)
            if expiry is None or expiry < time.time():
                raise ApiError(401, "authError", "Request had invalid authentication credentials. Expected OAuth 2"
                               " access token, login cookie or other valid authentication credential.")

        def _route(self, req: Request) -> tuple[int, Any, dict[str, str]]:
            p, m, q = req.path, req.method, req.query
            if p == "/token" and m == "POST":
                return self._token()
            if p == "/o/oauth2/v2/auth" and m == "GET":
                return self._consent(q)
            self._auth(req)
            with drive.lock:
                if p == "/drive/v3/about" and m == "GET":
                    about = {"kind": "drive#about", "user": {"emailAddress": drive.email, "kind": "drive#user"}}
                    return 200, _select(about, q.get("fields"), ("kind",)), {}
                if p == "/drive/v3/files/generateIds" and m == "GET":
                    ids = [secrets.token_urlsafe(24) for _ in range(int(q.get("count", "10")))]
                    drive.issued_ids.update(ids)
                    return 200, {"kind": "drive#generatedIds", "space": q.get("space", "drive"), "ids": ids}, {}
                if p == "/drive/v3/files" and m == "GET":
                    return self._list(q)
                if p == "/drive/v3/files" and m == "POST":
                    meta = json.loads(self._read_all() or b"{}")
                    f = drive._new_file(meta, q)
                    if f["mimeType"] != FOLDER:
                        raise ApiError(400, "invalid", "Use an upload URL for file content.")
                    drive.files[f["id"]] = f
                    return 200, _select(drive._resource(f), q.get("fields")), {}
                match = re.fullmatch(r"/drive/v3/files/([^/]+)(/copy|/permissions)?", p)
                if match:
                    return self._file(req, match.group(1), match.group(2))
            match = re.fullmatch(r"/upload/drive/v3/files(?:/([^/]+))?", p)
            if match:
                return self._upload(req, match.group(1))
            raise ApiError(404, "notFound", f"Not Found: {p}")

        def _consent(self, q: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
            """The consent page, already agreed to: redirect back with a code."""
            if q.get("client_id") not in drive.clients or q.get("response_type") != "code":
                return 400, b"invalid_request", {}
            if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
                return 400, b"invalid_request: PKCE S256 expected", {}
            code = drive.issue_code(q["client_id"], q.get("redirect_uri", ""), q["code_challenge"])
            if q.get("access_type") != "offline":
                drive.codes[code]["online"] = "1"
            sep = "&" if "?" in q.get("redirect_uri", "") else "?"
            return 302, None, {"Location": f"{q.get('redirect_uri')}{sep}code={code}&state={q.get('state', '')}"}

        def _token(self) -> tuple[int, Any, dict[str, str]]:
            form = {k: v[-1] for k, v in parse_qs(self._read_all().decode()).items()}
            grant = form.get("grant_type")
            drive.token_requests += 1

            def bad(error: str, text: str, status: int = 400) -> tuple[int, Any, dict[str, str]]:
                return status, {"error": error, "error_description": text}, {}

            if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                try:
                    payload = json.loads(base64.urlsafe_b64decode(form["assertion"].split(".")[1] + "=="))
                except (KeyError, ValueError, IndexError):
                    return bad("invalid_grant", "Invalid JWT Signature.")
                key = drive.service_accounts.get(str(payload.get("iss")))
                if key is None:
                    return bad("invalid_grant", "Invalid grant: account not found")
                from cryptography.exceptions import InvalidSignature
                from cryptography.hazmat.primitives import hashes
                from cryptography.hazmat.primitives.asymmetric import padding

                head, body, sig = form["assertion"].split(".")
                try:
                    key.verify(base64.urlsafe_b64decode(sig + "=="), f"{head}.{body}".encode(), padding.PKCS1v15(),
                               hashes.SHA256())  # fmt: skip
                except InvalidSignature:
                    return bad("invalid_grant", "Invalid JWT Signature.")
                if payload.get("aud") != "https://oauth2.googleapis.com/token" or payload.get("exp", 0) < time.time():
                    return bad("invalid_grant", "Invalid JWT: audience or expiry")
            else:
                client = form.get("client_id", "")
                if drive.clients.get(client) != form.get("client_secret"):
                    return bad("invalid_client", "The OAuth client was not found.", 401)
                if grant == "refresh_token":
                    if drive.refresh_tokens.get(form.get("refresh_token", "")) != client:
                        return bad("invalid_grant", "Token has been expired or revoked.")
                elif grant == "authorization_code":
                    code = drive.codes.pop(form.get("code", ""), None)
                    verifier = form.get("code_verifier", "")
                    digest = hashlib.sha256(verifier.encode()).digest()
                    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                    if code is None or code["client_id"] != client or code["redirect_uri"] != form.get("redirect_uri"):
                        return bad("invalid_grant", "Malformed auth code.")
                    if code["challenge"] != challenge:
                        return bad("invalid_grant", "Invalid code verifier.")
                else:
                    return bad("unsupported_grant_type", "Invalid grant_type.")
            token = "ya29." + secrets.token_urlsafe(32)
            with drive.lock:
                drive.access_tokens[token] = time.time() + drive.token_lifetime
            body: dict[str, Any] = {"access_token": token, "expires_in": drive.token_lifetime, "token_type": "Bearer",
                                    "scope": "https://www.googleapis.com/auth/drive"}  # fmt: skip
            if grant == "authorization_code" and not code.get("online"):
                body["refresh_token"] = drive.new_refresh_token(form["client_id"])
            return 200, body, {}

        def _list(self, q: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
            preds = _parse_q(q.get("q", ""))
            corpora = q.get("corpora", "user")
            items = [f for f in drive.files.values() if f["id"] != "root" and f.get("parents")
                     and drive._visible(f, q, listing=True) and all(pr(f) for pr in preds)]  # fmt: skip
            if corpora == "drive":
                if q.get("includeItemsFromAllDrives") != "true" or not q.get("driveId"):
                    raise ApiError(403, "teamDrivesParameterRestricted",
                                   "corpora=drive needs driveId and includeItemsFromAllDrives")
                items = [f for f in items if f.get("driveId") == q["driveId"]]
            else:
                items = [f for f in items if not f.get("driveId") or q.get("includeItemsFromAllDrives") == "true"]
            items.sort(key=lambda f: f.get("seq", 0))
            size = min(int(q.get("pageSize", "100")), 1000)
            start = int(q.get("pageToken", "0") or 0)
            page = items[start : start + size]
            body: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False,
                                    "files": [drive._resource(f) for f in page]}  # fmt: skip
            if start + size < len(items):
                body["nextPageToken"] = str(start + size)
            fields = q.get("fields")
            if fields is None:
                body["files"] = [_select(f, None) for f in body["files"]]
                return 200, body, {}
            return 200, _select(body, fields), {}

        def _file(self, req: Request, file_id: str, sub: str | None) -> tuple[int, Any, dict[str, str]]:
            q, m = req.query, req.method
            f = drive._get(file_id, q)
            if sub == "/permissions":
                perms = drive.permissions.setdefault(file_id, [])
                if m == "GET":
                    return 200, _select({"kind": "drive#permissionList", "permissions": perms}, q.get("fields")), {}
                body = json.loads(self._read_all() or b"{}")
                if body.get("type") not in ("anyone", "domain", "user", "group") or not body.get("role"):
                    raise ApiError(400, "invalid", "Invalid permission")
                perm = {"kind": "drive#permission", "id": secrets.token_hex(6), **body}
                perms.append(perm)
                return 200, perm, {}
            if sub == "/copy":
                meta = json.loads(self._read_all() or b"{}")
                new = drive._new_file({"name": meta.get("name", f["name"]),
                                       "parents": meta.get("parents") or f["parents"],
                                       "mimeType": f["mimeType"]}, q)  # fmt: skip
                blob = os.path.join(drive.blobs, "copy-" + new["id"])
                shutil.copyfile(os.path.join(drive.blobs, file_id), blob)
                drive._store_blob(new, blob)
                return 200, _select(drive._resource(new), q.get("fields")), {}
            if m == "GET":
                if q.get("alt") == "media":
                    return self._media(f)
                return 200, _select(drive._resource(f), q.get("fields")), {}
            if m == "DELETE":
                drive._delete(file_id)
                return 204, None, {}
            if m == "PATCH":
                meta = json.loads(self._read_all() or b"{}")
                for key in ("name", "trashed", "mimeType"):
                    if key in meta:
                        f[key] = meta[key]
                if meta.get("trashed"):
                    stack = [file_id]
                    while stack:
                        pid = stack.pop()
                        for c in drive.files.values():
                            if pid in c.get("parents", []):
                                c["trashed"] = True
                                stack.append(c["id"])
                if "addParents" in q:
                    f["parents"] = [q["addParents"]]
                return 200, _select(drive._resource(f), q.get("fields")), {}
            raise ApiError(405, "methodNotAllowed", "Method not allowed")

        def _media(self, f: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
            if f["mimeType"] == FOLDER:
                raise ApiError(403, "fileNotDownloadable", "Only files with binary content can be downloaded.")
            data = drive.content(f["id"])
            rng = self.headers.get("Range")
            if rng:
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
                if not match:
                    raise ApiError(416, "requestedRangeNotSatisfiable", "Bad range")
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
                if start >= len(data):
                    raise ApiError(416, "requestedRangeNotSatisfiable", "Requested range not satisfiable")
                return 206, data[start : end + 1], {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
            return 200, data, {}

        # -- uploads -----------------------------------------------------------------------------------

        def _upload(self, req: Request, file_id: str | None) -> tuple[int, Any, dict[str, str]]:
            q, m = req.query, req.method
            if m == "PUT" and q.get("upload_id"):
                return self._chunk(q["upload_id"])
            if m == "DELETE" and q.get("upload_id"):
                with drive.lock:
                    drive.sessions.pop(q["upload_id"], None)
                return 499, None, {}
            kind = q.get("uploadType")
            if m not in ("POST", "PATCH") or (m == "PATCH") != (file_id is not None):
                raise ApiError(405, "methodNotAllowed", "Method not allowed")
            if kind == "multipart":
                ctype = self.headers.get("Content-Type", "")
                match = re.search(r"boundary=\"?([^\";]+)\"?", ctype)
                if not ctype.startswith("multipart/related") or not match:
                    raise ApiError(400, "badContent", "Multipart requests need multipart/related with a boundary")
                body = self._read_all()
                sep = b"--" + match.group(1).encode()
                pieces = body.split(sep)
                if len(pieces) < 4 or not pieces[-1].startswith(b"--"):
                    raise ApiError(400, "badContent", "Malformed multipart body")
                parts = []
                for piece in pieces[1:-1]:
                    _, _, content = piece.partition(b"\r\n\r\n")
                    if not content.endswith(b"\r\n"):
                        raise ApiError(400, "badContent", "Malformed multipart body")
                    parts.append(content[:-2])
                meta, media = json.loads(parts[0] or b"{}"), parts[1]
                with drive.lock:
                    f = self._target(file_id, meta, q)
                    blob = os.path.join(drive.blobs, "mp-" + secrets.token_hex(8))
                    with open(blob, "wb") as out:
                        out.write(media)
                    drive._store_blob(f, blob)
                    return 200, _select(drive._resource(f), q.get("fields")), {}
            if kind == "resumable":
                meta = json.loads(self._read_all() or b"{}")
                with drive.lock:
                    f = self._target(file_id, meta, q)  # checks now; the file exists only when complete
                    declared = self.headers.get("X-Upload-Content-Length")
                    if declared and drive.quota is not None and drive.used() + int(declared) > drive.quota:
                        raise ApiError(403, "storageQuotaExceeded", "The user's Drive storage quota has been exceeded.")
                    upload_id = secrets.token_urlsafe(18)
                    blob = os.path.join(drive.blobs, "session-" + upload_id)
                    open(blob, "wb").close()
                    drive.sessions[upload_id] = {"file": f, "blob": blob, "received": 0, "done": None,
                                                 "fields": q.get("fields")}  # fmt: skip
                host = self.headers.get("Host")
                return 200, None, {"Location": f"http://{host}/upload/drive/v3/files?uploadType=resumable&upload_id={upload_id}"}
            raise ApiError(400, "invalid", "Invalid uploadType")

        def _target(self, file_id: str | None, meta: dict[str, Any], q: dict[str, str]) -> dict[str, Any]:
            if file_id is None:
                return drive._new_file(meta, q)
            f = dict(drive._get(file_id, q))
            if "mimeType" in meta:
                f["mimeType"] = meta["mimeType"]
            return f

        def _chunk(self, upload_id: str) -> tuple[int, Any, dict[str, str]]:
            with drive.lock:
                session = drive.sessions.get(upload_id)
            if session is None:
                raise ApiError(404, "notFound", "Upload session not found or expired")
            crange = self.headers.get("Content-Range", "")
            match = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", crange.strip())
            if not match:
                raise ApiError(400, "invalid", "Bad Content-Range")
            total = None if match.group(3) == "*" else int(match.group(3))
            if session["done"] is not None:
                self._read_all()
                return 200, session["done"], {}
            if match.group(1) is not None:
                start, end = int(match.group(1)), int(match.group(2))
                if start > session["received"] or end - start + 1 != self._remaining:
                    raise ApiError(400, "invalid", "Content-Range does not match what the server has")
                final = total is not None and end + 1 == total
                keep_from = session["received"] - start  # bytes of this chunk the server already has
                got = 0
                with open(session["blob"], "r+b") as out:
                    out.seek(session["received"])
                    try:
                        while self._remaining > 0:
                            data = self._read(1 << 20)
                            if not data:
                                raise _Cut()
                            skip = max(0, min(len(data), keep_from - got))
                            out.write(data[skip:])
                            got += len(data)
                    except _Cut:
                        # a cut chunk keeps what arrived, in whole 256 KiB units
                        kept = (start + got) // QUANTUM * QUANTUM
                        session["received"] = max(session["received"], kept)
                        out.truncate(session["received"])
                        raise
                    committed = end + 1 if final else max(session["received"], (end + 1) // QUANTUM * QUANTUM)
                    session["received"] = committed
                    out.truncate(committed)
            elif total is not None and session["received"] == total:
                final = True
            else:
                final = False
            if total is not None and session["received"] == total:
                with drive.lock:
                    f = session["file"]
                    drive._store_blob(f, session["blob"])
                    session["done"] = _select(drive._resource(f), session["fields"])
                    return 200, session["done"], {}
            headers = {"Range": f"bytes=0-{session['received'] - 1}"} if session["received"] else {}
            return 308, None, headers

    return Handler


class _Cut(Exception):
    """Drop the connection now."""
