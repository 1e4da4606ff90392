"""A fake Seafile server, written from the Seafile Web API documentation
(api2, api/v2.1, the resumable-upload guide), faithful on the wire: seahub's
API and the file server's upload, chunk and download routes listen on two
ports, as real deployments have them (seahub :8000, the file server :8082).

Two kinds of token: account tokens (``api2`` and ``api/v2.1`` routes, every
library) and library ("repo") API tokens (:meth:`FakeSeafile.add_repo_token`),
which seahub takes only on the ``api/v2.1/via-repo-token/`` routes and only
for their own library, with their own permission (``r`` or ``rw``); each
kind is refused (401) on the other's routes, as seahub's two authentication
classes do.

Files live on disk (so multi-GB uploads take no memory); a file's id is the
SHA-1 of its bytes (real Seafile hashes its block list: an opaque 40-hex id to
a client either way). Faults are injected with :meth:`FakeSeafile.fail_next`,
:meth:`cut_next_upload`, :meth:`lose_next_answer` and
:meth:`expire_upload_links`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import secrets
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import attrs

#: A fault "status" that expires every upload link instead of answering.
EXPIRE = -1


@attrs.define
class Entry:
    kind: str  # "file" or "dir"
    size: int = 0
    id: str = ""
    mtime: int = 0
    blob: str = ""


@attrs.define
class Repo:
    id: str
    name: str
    encrypted: bool = False
    permission: str = "rw"
    quota: int | None = None  # bytes
    entries: dict[str, Entry] = attrs.Factory(lambda: {"/": Entry("dir")})

    def used(self) -> int:
        return sum(e.size for e in self.entries.values() if e.kind == "file")


@attrs.define
class Fault:
    where: str  # "api", "upload", "download"
    status: int = 0
    retry_after: str | None = None
    route: str = ""  # only requests whose path contains this
    skip: int = 0  # let this many matching requests through first


class FakeSeafile:
    """Both servers, in threads on 127.0.0.1 (free ports)."""

    def __init__(self, root: Path, *, version: str = "11.0.4", resumable: bool = True,
                 max_upload_size: int | None = None, link_life: float = 3600.0) -> None:  # fmt: skip
        self.root = root
        self.version = version
        self.resumable = resumable
        self.max_upload_size = max_upload_size
        self.link_life = link_life
        self.users: dict[str, tuple[str, str | None]] = {}
        self.tokens: dict[str, str] = {}  # token -> username
        self.repo_tokens: dict[str, tuple[str, str]] = {}  # library API token -> (repo id, "r" or "rw")
        self.repos: dict[str, Repo] = {}
        self.upload_tokens: dict[str, tuple[str, str, float]] = {}  # token -> (repo, parent_dir, expiry)
        self.download_tokens: dict[str, tuple[str, str]] = {}  # token -> (repo, path)
        self.partials: dict[tuple[str, str], tuple[int, str]] = {}  # (repo, path) -> (bytes, temp file)
        self.share_links: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.cut_uploads: list[tuple[int, int]] = []  # (uploads to let through, body bytes before the cut)
        self.auth_styles: set[str] = set()  # the Authorization schemes clients used
        self.sockets: set[socket.socket] = set()  # open client connections, for drop_connections
        self.detail_ids: dict[str, str] = {}  # path -> the id file/detail reports instead (another writer's file)
        self.lost_answers = 0  # commit the next final upload, then close without answering
        self.log: list[tuple[str, str, str]] = []  # (server, method, path + range)
        self.lock = threading.RLock()
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)
        self.seahub = _Server(self, "seahub")
        self.fileserver = _Server(self, "fileserver")
        self.file_server_url = self.fileserver.url  # what links point at (a proxy may stand in between)

    @property
    def url(self) -> str:
        return self.seahub.url

    def close(self) -> None:
        self.seahub.close()
        self.fileserver.close()

    def __enter__(self) -> FakeSeafile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- set-up ----------------------------------------------------------------------------

    def add_user(self, username: str, password: str, *, otp: str | None = None) -> str:
        token = secrets.token_hex(20)
        self.users[username] = (password, otp)
        self.tokens[token] = username
        return token

    def add_repo_token(self, repo_id: str, permission: str = "rw") -> str:
        """A library API token for ``repo_id`` (made in the library's settings)."""
        token = secrets.token_hex(20)
        self.repo_tokens[token] = (repo_id, permission)
        return token

    def add_repo(self, name: str, **kw: Any) -> Repo:
        repo = Repo(id=str(uuid.uuid4()), name=name, **kw)
        self.repos[repo.id] = repo
        return repo

    # -- faults ----------------------------------------------------------------------------

    def fail_next(self, where: str, status: int, *, times: int = 1, retry_after: str | None = None,
                  route: str = "", skip: int = 0) -> None:  # fmt: skip
        """Answer matching requests with ``status`` (``EXPIRE``: expire every
        upload link, then serve the request)."""
        with self.lock:
            self.faults += [Fault(where, status, retry_after, route, skip) for _ in range(times)]

    def cut_next_upload(self, after_bytes: int, *, skip: int = 0) -> None:
        """Cut the connection of an upload after ``after_bytes`` of its body
        (after letting ``skip`` uploads through)."""
        with self.lock:
            self.cut_uploads.append((skip, after_bytes))

    def lose_next_answer(self) -> None:
        with self.lock:
            self.lost_answers += 1

    def drop_connections(self) -> None:
        """Cut every client connection of both servers."""
        with self.lock:
            socks, self.sockets = list(self.sockets), set()
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def expire_upload_links(self) -> None:
        with self.lock:
            self.upload_tokens = {t: (r, p, 0.0) for t, (r, p, _) in self.upload_tokens.items()}

    def take_fault(self, where: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.where == where and fault.route in path:
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    self.faults.remove(fault)
                    return fault
        return None

    # -- storage ---------------------------------------------------------------------------

    def read(self, repo_id: str, path: str) -> bytes:
        entry = self.repos[repo_id].entries[path]
        return (self.root / "blobs" / entry.blob).read_bytes()

    def files(self, repo_id: str) -> list[str]:
        return sorted(p.lstrip("/") for p, e in self.repos[repo_id].entries.items() if e.kind == "file")

    def commit(self, repo: Repo, parent: str, name: str, temp: str, replace: bool) -> Entry:
        digest = hashlib.sha1(usedforsecurity=False)
        size = 0
        with open(temp, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
                size += len(block)
        file_id = digest.hexdigest()
        blob = uuid.uuid4().hex
        os.replace(temp, self.root / "blobs" / blob)
        with self.lock:
            path = posixpath.join(parent, name)
            if path in repo.entries and not replace:
                stem, dot, ext = name.partition(".")
                n = 1
                while posixpath.join(parent, f"{stem} ({n}){dot}{ext}") in repo.entries:
                    n += 1
                path = posixpath.join(parent, f"{stem} ({n}){dot}{ext}")
            old = repo.entries.get(path)
            if old is not None and old.blob:
                with contextlib.suppress(FileNotFoundError):
                    (self.root / "blobs" / old.blob).unlink()
            entry = Entry("file", size, file_id, int(time.time()), blob)
            repo.entries[path] = entry
        return entry


class _Server:
    def __init__(self, fake: FakeSeafile, role: str) -> None:
        handler = type(f"{role}Handler", (_Handler,), {"fake": fake, "role": role})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Abort(Exception):
    """The client went away mid-body (or a fault cut it): nothing is stored."""


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSeafile
    role: str
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake.lock:
            self.fake.sockets.add(self.connection)

    # -- plumbing --------------------------------------------------------------------------

    def _send(self, status: int, body: Any = None, *, headers: dict[str, str] | None = None,
              raw: bytes | None = None) -> None:  # fmt: skip
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/json; charset=utf-8" if raw is None else "application/octet-stream"
        )
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, **headers: str) -> None:
        self._send(status, {"error_msg": message}, headers=headers)

    def _drain(self) -> None:
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            got = self.rfile.read(min(left, 1 << 20))
            if not got:
                break
            left -= len(got)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        if "json" in (self.headers.get("Content-Type") or ""):
            loaded = json.loads(raw or "{}")
            return loaded if isinstance(loaded, dict) else {}
        return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        self.route = unquote(parts.path)
        self.query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        rng = self.headers.get("Content-Range") or self.headers.get("Range") or ""
        with self.fake.lock:
            self.fake.log.append((self.role, self.command, f"{self.route} {rng}".strip()))
        where = "api" if self.role == "seahub" else ("download" if self.route.startswith("/files/") else "upload")
        fault = self.fake.take_fault(where, self.route)
        if fault is not None and fault.status == EXPIRE:
            self.fake.expire_upload_links()
            fault = None
        if fault is not None:
            if self.command == "POST":
                self._drain()
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._error(fault.status, f"injected {fault.status}", **headers)
            return
        try:
            if self.role == "seahub":
                self._seahub()
            else:
                self._fileserver()
        except _Abort:
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _handle

    # -- seahub ----------------------------------------------------------------------------

    def _user(self) -> str | None:
        """The account an account token belongs to (library tokens are not
        account tokens: ``None``)."""
        token = self._presented_token()
        return None if token is None else self.fake.tokens.get(token)

    def _presented_token(self) -> str | None:
        """The token of an Authorization header in a style the server's
        version takes (``Bearer`` from Seafile 11 on, ``Token`` always)."""
        header = self.headers.get("Authorization") or ""
        kind, _, token = header.partition(" ")
        self.fake.auth_styles.add(kind)
        major = int(self.fake.version.split(".")[0])
        return token if kind in (("Token", "Bearer") if major >= 11 else ("Token",)) else None

    def _listing(self, repo: Repo, p: str) -> list[dict[str, Any]]:
        prefix = p.rstrip("/") + "/"
        return [
            {"id": e.id or "0" * 40, "type": e.kind, "name": k[len(prefix):], "size": e.size, "mtime": e.mtime,
             "permission": "rw", "parent_dir": prefix}
            for k, e in sorted(repo.entries.items())
            if k.startswith(prefix) and k != p and "/" not in k[len(prefix):]
        ]  # fmt: skip

    def _mkdir(self, repo: Repo, p: str) -> str:
        """Make folder ``p`` (its parent exists); Seafile renames a duplicate."""
        parent, name = posixpath.split(p)
        with self.fake.lock:
            target, n = p, 1
            while target in repo.entries:
                target = posixpath.join(parent, f"{name} ({n})")
                n += 1
            repo.entries[target] = Entry("dir", mtime=int(time.time()))
        return target

    def _delete_tree(self, repo: Repo, p: str) -> None:
        with self.fake.lock:
            for k in [k for k in repo.entries if k == p or k.startswith(p.rstrip("/") + "/")]:
                if k != "/":
                    del repo.entries[k]

    def _delete_file(self, repo: Repo, p: str) -> None:
        with self.fake.lock:
            entry = repo.entries.get(p)
            if entry is not None and entry.kind == "file":
                del repo.entries[p]
                with contextlib.suppress(FileNotFoundError):
                    (self.fake.root / "blobs" / entry.blob).unlink()

    def _download_url(self, repo: Repo, p: str) -> str:
        token = uuid.uuid4().hex
        self.fake.download_tokens[token] = (repo.id, p)
        return f"{self.fake.file_server_url}/files/{token}/{quote(posixpath.basename(p))}"

    def _upload_url(self, repo: Repo, p: str) -> str:
        token = str(uuid.uuid4())
        self.fake.upload_tokens[token] = (repo.id, p, time.time() + self.fake.link_life)
        return f"{self.fake.file_server_url}/upload-api/{token}"

    def _new_share_link(self, repo: Repo, path: str, password: Any, days: Any, permissions: Any) -> dict[str, Any]:
        fake = self.fake
        token = secrets.token_hex(10)
        expiry = (
            None if not days else time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + int(days) * 86400))
        )
        link = {"token": token, "link": f"{fake.url}/f/{token}/", "repo_id": repo.id, "path": path, "is_dir": False,
                "is_expired": False, "permissions": permissions or {}, "expire_date": expiry, "password": password,
                "expire_days": days}  # fmt: skip
        fake.share_links[token] = link
        return link

    def _repo(self, repo_id: str) -> Repo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self._error(404, "Library not found.")
        return repo

    def _seahub(self) -> None:
        route, q, fake = self.route, self.query, self.fake
        if route == "/api2/server-info/":
            return self._send(200, {"version": fake.version, "features": ["seafile-basic", "file-search"]})
        if route == "/api2/auth-token/" and self.command == "POST":
            return self._auth_token()
        if route.startswith("/f/"):
            return self._share_download(route.split("/")[2])
        if route.startswith("/api/v2.1/via-repo-token/"):
            return self._via_repo_token(route[len("/api/v2.1/via-repo-token/") :].strip("/"))
        if self._user() is None:
            if self.command == "POST":
                self._drain()
            return self._send(401, {"detail": "Invalid token"})
        if route == "/api2/auth/ping/":
            return self._send(200, "pong")
        if route == "/api2/repos/":
            return self._send(200, [
                {"type": "repo", "id": r.id, "name": r.name, "size": r.used(), "permission": r.permission,
                 "encrypted": r.encrypted, "owner": "user@example.edu", "mtime": int(time.time())}
                for r in fake.repos.values()
            ])  # fmt: skip
        if route.startswith("/api/v2.1/share-links/"):
            return self._share_links(route)
        bits = route.strip("/").split("/")
        if bits[:2] == ["api2", "repos"] and len(bits) >= 3:
            repo = self._repo(bits[2])
            if repo is None:
                return None
            return self._repo_route(repo, "/".join(bits[3:]))
        if bits[:3] == ["api", "v2.1", "repos"] and len(bits) >= 5 and bits[4] == "file-uploaded-bytes":
            repo = self._repo(bits[3])
            if repo is None:
                return None
            path = posixpath.join(q.get("parent_dir", "/"), q.get("file_name", ""))
            done = fake.partials.get((repo.id, path), (0, ""))[0]
            return self._send(
                200, {"uploadedBytes": done}, headers={"Accept-Ranges": "bytes"} if fake.resumable else {}
            )
        return self._error(404, "no such route in the fake")

    def _auth_token(self) -> None:
        form = self._form()
        user = self.fake.users.get(form.get("username", ""))
        if user is None or user[0] != form.get("password"):
            return self._send(400, {"non_field_errors": ["Unable to login with provided credentials."]})
        if user[1] is not None:
            otp = self.headers.get("X-SEAFILE-OTP")
            if not otp:
                return self._send(400, {"non_field_errors": ["Two factor auth token is missing."]},
                                  headers={"X-Seafile-OTP": "required"})  # fmt: skip
            if otp != user[1]:
                return self._send(400, {"non_field_errors": ["Two factor auth token is invalid."]},
                                  headers={"X-Seafile-OTP": "required"})  # fmt: skip
        token = next(t for t, u in self.fake.tokens.items() if u == form["username"])
        return self._send(200, {"token": token})

    def _repo_route(self, repo: Repo, rest: str) -> None:
        fake, q, method = self.fake, self.query, self.command
        p = q.get("p", "/")
        p = "/" + p.strip("/") if p != "/" else "/"
        if rest == "" and method == "GET":
            return self._send(200, {"id": repo.id, "name": repo.name, "encrypted": repo.encrypted,
                                    "permission": repo.permission, "size": repo.used(), "type": "repo"})  # fmt: skip
        if repo.encrypted:
            return (
                self._error(440, "Library is encrypted.")
                if method != "POST"
                else (self._drain(), self._error(440, "Library is encrypted."))[1]
            )
        entries = repo.entries
        if rest == "dir":
            if method == "GET":
                if entries.get(p, Entry("none")).kind != "dir":
                    return self._error(404, "Folder not found.")
                return self._send(200, self._listing(repo, p), headers={"oid": "0" * 40})
            if method == "POST":
                form = self._form()
                if form.get("operation") != "mkdir":
                    return self._error(400, "operation invalid.")
                if entries.get(posixpath.dirname(p), Entry("none")).kind != "dir":
                    return self._error(404, "Parent folder not found.")
                target = self._mkdir(repo, p)
                return self._send(
                    201, "success", headers={"Location": f"{fake.url}/api2/repos/{repo.id}/dir/?p={quote(target)}"}
                )
            if method == "DELETE":
                self._delete_tree(repo, p)
                return self._send(200, "success")
        if rest == "file/detail" and method == "GET":
            entry = entries.get(p)
            if entry is None or entry.kind != "file":
                return self._error(404, "File not found")
            return self._send(200, {"id": fake.detail_ids.get(p, entry.id), "type": "file",
                                    "name": posixpath.basename(p), "size": entry.size, "mtime": entry.mtime,
                                    "permission": "rw", "last_modifier_email": "user@example.edu"})  # fmt: skip
        if rest == "file":
            entry = entries.get(p)
            if method == "GET":
                if entry is None or entry.kind != "file":
                    return self._error(404, "File not found")
                return self._send(200, self._download_url(repo, p))
            if method == "DELETE":
                self._delete_file(repo, p)
                return self._send(200, "success")
        if rest == "upload-link" and method == "GET":
            if repo.permission != "rw":
                return self._error(403, "You do not have permission to access this folder.")
            if entries.get(p, Entry("none")).kind != "dir":
                return self._error(404, "Folder not found.")
            return self._send(200, self._upload_url(repo, p))
        return self._error(404, "no such route in the fake")

    def _via_repo_token(self, rest: str) -> None:
        """``api/v2.1/via-repo-token/...``: a library API token, in its own
        library (seahub's ViaRepo* views; paths in ``path=``)."""
        fake, method = self.fake, self.command
        found = fake.repo_tokens.get(self._presented_token() or "")
        if found is None:
            if method in ("POST", "PUT"):
                self._drain()
            return self._send(401, {"detail": "Token inactive or deleted"})
        repo, permission = fake.repos[found[0]], found[1]
        raw = self.query.get("path")
        p = "/" + (raw or "/").strip("/") if (raw or "/") != "/" else "/"
        entry = repo.entries.get(p, Entry("none"))
        if rest == "repo-info" and method == "GET":
            return self._send(200, {"repo_id": repo.id, "repo_name": repo.name, "size": repo.used(),
                                    "file_count": len(fake.files(repo.id)),
                                    "last_modified": time.strftime("%Y-%m-%dT%H:%M:%S+00:00")})  # fmt: skip
        if rest == "dir" and method == "GET":
            if entry.kind != "dir":
                return self._error(404, f"Folder {p} not found.")
            return self._send(200, {"user_perm": permission, "dir_id": "0" * 40, "repo_name": repo.name,
                                    "dirent_list": self._listing(repo, p)})  # fmt: skip
        if rest == "dir" and method == "POST":
            form = self._form()
            if not raw or not raw.startswith("/") or p == "/":
                return self._error(400, "path invalid.")
            if form.get("operation") != "mkdir":
                return self._error(400, "operation invalid.")
            if repo.entries.get(posixpath.dirname(p), Entry("none")).kind != "dir":
                return self._error(404, f"Folder {posixpath.dirname(p)} not found.")
            if permission != "rw":
                return self._error(403, "Permission denied.")
            target = self._mkdir(repo, p)
            return self._send(200, {"type": "dir", "repo_id": repo.id, "parent_dir": posixpath.dirname(target),
                                    "obj_name": posixpath.basename(target), "obj_id": "0" * 40,
                                    "mtime": time.strftime("%Y-%m-%dT%H:%M:%S+00:00")})  # fmt: skip
        if rest == "dir" and method == "DELETE":
            if not raw or p == "/":
                return self._error(400, "path invalid.")
            if entry.kind != "dir":
                return self._error(404, f"Folder {p} not found.")
            if permission != "rw":
                return self._error(403, "Permission denied.")
            self._delete_tree(repo, p)
            return self._send(200, {"success": True, "commit_id": "0" * 40})
        if rest == "file" and method == "GET":
            if not raw:
                return self._error(400, "path invalid.")
            if entry.kind != "file":
                return self._error(404, f"File {p} not found.")
            mtime = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(entry.mtime))
            return self._send(200, {"type": "file", "repo_id": repo.id, "parent_dir": posixpath.dirname(p),
                                    "obj_name": posixpath.basename(p), "obj_id": fake.detail_ids.get(p, entry.id),
                                    "size": entry.size, "can_preview": False, "can_edit": False,
                                    "mtime": mtime})  # fmt: skip
        if rest == "file" and method == "DELETE":
            if not raw:
                return self._error(400, "path invalid.")
            if entry.kind != "file":
                return self._send(200, {"success": True})  # seahub: a missing file is success
            if permission != "rw":
                return self._error(403, "Permission denied.")
            self._delete_file(repo, p)
            return self._send(200, {"success": True, "commit_id": "0" * 40})
        if rest == "upload-link" and method == "GET":
            if entry.kind != "dir":
                return self._error(404, f"Folder {p} not found.")
            if permission != "rw":
                return self._error(403, "You do not have permission to access this folder.")
            return self._send(200, self._upload_url(repo, p))
        if rest == "download-link" and method == "GET":
            if not raw:
                return self._error(400, "path invalid.")
            if entry.kind != "file":
                return self._error(404, "File not found")
            return self._send(200, self._download_url(repo, p))
        if rest == "share-links" and method == "POST":
            body = self._form()
            path = str(body.get("path") or "")
            if not path:
                return self._error(400, "path invalid.")
            if path != "/" and repo.entries.get(path, Entry("none")).kind == "none":
                return self._error(404, f"Dirent {path} not found.")
            if repo.encrypted:
                return self._error(403, "Permission denied.")
            link = self._new_share_link(repo, path, None, None, body.get("permissions"))  # neither is accepted
            return self._send(200, {**{k: v for k, v in link.items() if k not in ("password", "expire_days")},
                                    "password": "", "expire_date": ""})  # fmt: skip
        return self._error(404, "no such route in the fake")

    def _share_links(self, route: str) -> None:
        fake, method = self.fake, self.command
        token = route[len("/api/v2.1/share-links/") :].strip("/")
        if method == "GET" and not token:
            found = [link for link in fake.share_links.values()
                     if link["repo_id"] == self.query.get("repo_id")
                     and link["path"] == self.query.get("path", link["path"])]  # fmt: skip
            return self._send(200, found)
        if method == "DELETE" and token:
            if fake.share_links.pop(token, None) is None:
                return self._error(404, "Share link not found.")
            return self._send(200, {"success": True})
        if method == "POST" and not token:
            body = self._form()
            repo = fake.repos.get(str(body.get("repo_id")))
            if repo is None or repo.entries.get(str(body.get("path")), Entry("none")).kind == "none":
                return self._error(404, "file/folder not found.")
            password = body.get("password")
            if password is not None and len(str(password)) < 8:
                return self._error(400, "Password is too short.")
            link = self._new_share_link(repo, str(body["path"]), password, body.get("expire_days"),
                                        body.get("permissions"))  # fmt: skip
            return self._send(200, {k: v for k, v in link.items() if k not in ("password", "expire_days")})
        return self._error(400, "bad share-link request")

    def _share_download(self, token: str) -> None:
        link = self.fake.share_links.get(token)
        if link is None:
            return self._error(404, "Link does not exist.")
        if self.query.get("dl") != "1" or link.get("password"):
            return self._send(200, raw=b"<html>share page</html>")
        dtoken = uuid.uuid4().hex
        self.fake.download_tokens[dtoken] = (link["repo_id"], link["path"])
        return self._send(302, headers={"Location": f"{self.fake.file_server_url}/files/{dtoken}/x"})

    # -- file server -----------------------------------------------------------------------

    def _fileserver(self) -> None:
        bits = self.route.strip("/").split("/")
        if bits[0] == "files" and self.command in ("GET", "HEAD"):
            return self._download(bits[1])
        if bits[0] == "upload-api" and self.command == "POST" and len(bits) == 2:
            return self._upload(bits[1])
        return self._send(404, raw=b"Not found")

    def _download(self, token: str) -> None:
        fake = self.fake
        found = fake.download_tokens.get(token)
        entry = fake.repos[found[0]].entries.get(found[1]) if found else None
        if entry is None:
            return self._send(404, raw=b"Bad access token")
        size, start, end, status = entry.size, 0, entry.size, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start, end, status = int(a), (int(b) + 1 if b else size), 206
            end = min(end, size)
            if start >= size and size:
                return self._send(416, raw=b"", headers={"Content-Range": f"bytes */{size}"})
        self.send_response(status)
        self.send_header("Content-Length", str(max(0, end - start)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{max(start, end - 1)}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return None
        with open(fake.root / "blobs" / entry.blob, "rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                block = f.read(min(left, 1 << 20))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)
        return None

    def _upload(self, token: str) -> None:
        fake = self.fake
        link = fake.upload_tokens.get(token)
        if link is None or link[2] < time.time():
            self._drain()
            return self._send(403, raw=b"Access denied")
        repo = fake.repos[link[0]]
        cut = None
        with fake.lock:
            if fake.cut_uploads:
                skip, after = fake.cut_uploads[0]
                if skip:
                    fake.cut_uploads[0] = (skip - 1, after)
                else:
                    cut = after
                    fake.cut_uploads.pop(0)
        fields, temp = self._multipart(cut)
        try:
            return self._store(repo, link[1], fields, temp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def _store(self, repo: Repo, link_dir: str, fields: dict[str, str], temp: str) -> None:
        fake = self.fake
        parent = fields.get("parent_dir", "")
        parent = "/" + parent.strip("/") if parent.strip("/") else "/"
        if parent != link_dir and not parent.startswith(link_dir.rstrip("/") + "/"):
            return self._send(403, raw=b"Access denied")
        if repo.entries.get(parent, Entry("none")).kind != "dir":
            return self._send(404, raw=b"Parent dir doesn't exist.")
        name = fields.get("filename", "")
        crange = self.headers.get("Content-Range")
        if crange:
            name = _disposition_filename(self.headers.get("Content-Disposition") or "") or name
        if not name or "/" in name or len(name.encode()) > 255:
            return self._send(440, raw=b"Invalid filename")
        size = os.path.getsize(temp)
        total = size
        path = posixpath.join(parent, name)
        if crange:
            unit, _, spec = crange.partition(" ")
            span, _, total_text = spec.partition("/")
            first, _, last = span.partition("-")
            start, stop, total = int(first), int(last) + 1, int(total_text)
            if unit != "bytes" or stop - start != size:
                return self._send(400, raw=b"Content-Range mismatch")
        limit = fake.max_upload_size
        if limit is not None and total > limit:
            return self._send(442, raw=b"File size is too large")
        if (
            repo.quota is not None
            and repo.used() - (repo.entries[path].size if path in repo.entries else 0) + total > repo.quota
        ):
            return self._send(443, raw=b"Out of quota")
        if crange:
            with fake.lock:
                done, partial = fake.partials.get((repo.id, path), (0, ""))
                if start != done:
                    return self._send(400, raw=b"Chunk does not start where the upload stands")
                if not partial:
                    partial = tempfile.mktemp(dir=fake.root / "tmp")
                with open(partial, "ab") as out, open(temp, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                fake.partials[(repo.id, path)] = (stop, partial)
                if stop < total:
                    return self._send(200, {"success": True})
                del fake.partials[(repo.id, path)]
            temp_final = partial
        else:
            temp_final = tempfile.mktemp(dir=fake.root / "tmp")
            os.replace(temp, temp_final)
        entry = fake.commit(repo, parent, name, temp_final, fields.get("replace") == "1")
        with fake.lock:
            lose = fake.lost_answers > 0
            fake.lost_answers -= 1 if lose else 0
        if lose:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            raise _Abort
        body = [{"name": name, "id": entry.id, "size": entry.size}]
        if self.query.get("ret-json") == "1":
            return self._send(200, body)
        return self._send(200, raw=entry.id.encode())

    def _multipart(self, cut: int | None) -> tuple[dict[str, str], str]:
        """Stream a multipart/form-data body: small fields into memory, the
        ``file`` part to a temporary file. An incomplete body raises _Abort."""
        ctype = self.headers.get("Content-Type") or ""
        boundary = ctype.partition("boundary=")[2].strip('"')
        length = int(self.headers.get("Content-Length") or -1)
        if not boundary or length < 0:
            self._send(400, raw=b"bad multipart")
            raise _Abort
        left = [length]

        def read(n: int) -> bytes:
            if cut is not None and length - left[0] >= cut:
                self.connection.shutdown(socket.SHUT_RDWR)
                raise _Abort
            want = min(n, left[0], (cut - (length - left[0])) if cut is not None else n)
            data = self.rfile.read(want) if want > 0 else b""
            left[0] -= len(data)
            if want > 0 and not data:
                raise _Abort
            return data

        fd, temp = tempfile.mkstemp(dir=self.fake.root / "tmp")
        out = os.fdopen(fd, "wb")
        fields: dict[str, str] = {}
        buf = b""
        delim = b"--" + boundary.encode()
        try:
            while delim not in buf:
                more = read(65536)
                if not more:
                    raise _Abort
                buf += more
            buf = buf[buf.index(delim) + len(delim) :]
            while True:
                while len(buf) < 2:
                    more = read(65536)
                    if not more:
                        raise _Abort
                    buf += more
                if buf.startswith(b"--"):
                    break  # the closing delimiter
                while b"\r\n\r\n" not in buf:
                    more = read(65536)
                    if not more:
                        raise _Abort
                    buf += more
                head, buf = buf[2:].split(b"\r\n\r\n", 1)
                disposition = next((line for line in head.decode().split("\r\n")
                                    if line.lower().startswith("content-disposition")), "")  # fmt: skip
                name = _param(disposition, "name")
                is_file = name == "file"
                if is_file:
                    fields["filename"] = _param(disposition, "filename")
                value = b""
                end = b"\r\n" + delim
                while True:
                    at = buf.find(end)
                    if at >= 0:
                        piece, buf = buf[:at], buf[at + len(end) :]
                        if is_file:
                            out.write(piece)
                        else:
                            value += piece
                        break
                    keep = len(end)
                    if len(buf) > keep:
                        piece, buf = buf[:-keep], buf[-keep:]
                        if is_file:
                            out.write(piece)
                        else:
                            value += piece
                    more = read(1 << 20)
                    if not more:
                        raise _Abort
                    buf += more
                if not is_file:
                    fields[name] = value.decode()
            while left[0] > 0:
                read(65536)
        except BaseException:
            out.close()
            os.unlink(temp)
            raise
        out.close()
        return fields, temp


def _param(header: str, key: str) -> str:
    """A parameter of a Content-Disposition value (quoted, with ``\\`` escapes)."""
    i = 0
    text = header
    needle = f"{key}="
    while True:
        i = text.find(needle, i)
        if i < 0:
            return ""
        if i == 0 or text[i - 1] in "; ":
            break
        i += 1
    rest = text[i + len(needle) :]
    if not rest.startswith('"'):
        return rest.split(";")[0].strip()
    out, j = [], 1
    while j < len(rest) and rest[j] != '"':
        if rest[j] == "\\" and j + 1 < len(rest):
            j += 1
        out.append(rest[j])
        j += 1
    return "".join(out)


def _disposition_filename(header: str) -> str:
    extended = _param(header, "filename*")
    if extended.lower().startswith("utf-8''"):
        return unquote(extended[7:])
    return _param(header, "filename")


@contextlib.contextmanager
def running(tmp: Path, **kw: Any) -> Iterator[FakeSeafile]:
    with FakeSeafile(tmp, **kw) as fake:
        yield fake
