"""An fsspec filesystem over the Seafile Web API: ``seafile://<repo_id>/path``.

One instance works in one library (``repo_id``) of one server, with an
account token or a library ("repo") API token (``auth``: ``auto``
asks the server; a library token names its own library, so ``repo_id`` may
be left out). Registered
through fsspec's ``fsspec.specs`` entry point, so ``fsspec.filesystem("seafile",
server_url=..., repo_id=..., token=...)`` and ``fsspec.open("seafile://<repo_id>/a.txt",
server_url=..., token=...)`` work.

- Listing, info, mkdir (looking first: Seafile renames a duplicate mkdir to
  ``name (1)``), rm, ranged reads (a download link and ``Range`` requests).
- Uploads go through upload links (the file server's ``upload-api``) with
  ``replace=1``, so an upload replaces the file instead of adding a renamed
  copy. Files larger than one upload chunk go through the resumable chunked
  upload: after a failed chunk the server's ``file-uploaded-bytes`` count says
  where to go on; an expired upload link (403 from the file server) is
  replaced by a fresh one. The file appears in the library only when its last
  byte arrived: an upload is atomic.
- ``open(path, "wb")`` spools to a temporary file, because an upload needs the
  total size first.
- Encrypted libraries are refused (the Web API cannot write them without the
  library password).
- Share links: :meth:`share_link` (optional password and expiry),
  :meth:`delete_share_link`; :meth:`sign` gives a share link too.
"""

from __future__ import annotations

import contextlib
import logging
import math
import posixpath
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any, ClassVar
from urllib.parse import quote

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from ocs_transfer.exceptions import (
    ConfigurationError,
    IntegrityError,
    ObjectNotFoundError,
    OcsTransferError,
    RateLimitError,
    StorageError,
    TransientStorageError,
)
from ocs_transfer.redact import Secret

from .api import AUTH_KINDS, Routes, SeafileApi, detect_token_kind, error_for

__all__ = ["SeafileFileSystem", "UploadResult"]

log = logging.getLogger(__name__)

MiB = 1 << 20
#: Refreshing an expired upload link is tried this many times per upload.
LINK_REFRESHES = 3


class UploadResult(dict[str, Any]):
    """What an upload stored: ``name``, ``size`` and the file ``id`` the
    server reported (``None`` when the answer to the last chunk was lost but
    the file was found complete: verify by downloading)."""


def _mtime(value: Any) -> datetime | None:
    """Seconds since the epoch (``api2`` routes) or an ISO 8601 time
    (``via-repo-token/file``)."""
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value)
    return None


class SeafileFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """Files in one Seafile library."""

    protocol: ClassVar[tuple[str, ...]] = ("seafile",)
    root_marker = ""
    #: Instances hold a token: never share them through fsspec's instance cache.
    cachable = False

    def __init__(
        self,
        repo_id: str = "",
        server_url: str | None = None,
        token: Secret | str | None = None,
        *,
        api: SeafileApi | None = None,
        upload_chunk_size: int = 32 * MiB,
        resumable: bool | None = None,
        direct_links: bool = False,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        auth: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if auth not in AUTH_KINDS:
            raise ConfigurationError(f"auth {auth!r} must be one of {', '.join(AUTH_KINDS)}")
        if not repo_id and auth == "account":
            raise ConfigurationError(
                "a Seafile filesystem with an account token needs repo_id (the library's id; see"
                " `ocs-transfer seafile list-repos`)"
            )
        if api is None:
            if server_url is None:
                raise ConfigurationError("a Seafile filesystem needs server_url, e.g. https://seafile.example.edu")
            secret = token if isinstance(token, Secret) or token is None else Secret(str(token))
            api = SeafileApi(server_url, secret, connect_timeout=connect_timeout, read_timeout=read_timeout)
        self.api = api
        self.repo_id = str(repo_id)
        self.upload_chunk_size = max(MiB, int(upload_chunk_size))
        self._resumable = resumable
        self.direct_links = direct_links
        self._repo: dict[str, Any] | None = None
        self._known_dirs: set[str] = {""}
        self._lock = threading.Lock()
        self._auth = auth
        self._routes: Routes | None = None
        self._routes_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SeafileFileSystem(server_url={self.api.server_url!r}, repo_id={self.repo_id!r})"

    # -- paths ----------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        text = str(path)
        if text.startswith("seafile://"):
            text = text[len("seafile://") :].partition("/")[2]  # the host part is the library id
        return text.strip("/")

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        if str(path).startswith("seafile://"):
            return {"repo_id": str(path)[len("seafile://") :].partition("/")[0]}
        return {}

    @staticmethod
    def _p(path: str) -> str:
        """The library path Seafile wants: ``/a/b``."""
        return "/" + path.strip("/")

    # -- the token and its routes ----------------------------------------------------------

    @property
    def routes(self) -> Routes:
        """The routes for this filesystem's token, found out once. A library
        API token's own library becomes ``repo_id`` (a different ``repo_id``
        given is refused)."""
        if self._routes is None:
            with self._routes_lock:
                if self._routes is None:
                    self._routes = self._find_routes()
        return self._routes

    def _find_routes(self) -> Routes:
        kind = self._auth
        info: dict[str, Any] = {}
        if kind == "auto":
            kind, info = detect_token_kind(self.api)
        elif kind == "repo":
            info = dict(self.api.request("GET", Routes.for_repo_token("").library, what="opening the library").json())
        if kind == "account":
            if not self.repo_id:
                # a token refused as a library token may be no token at all: say so rather than ask for repo_id
                self.api.request("GET", "/api2/auth/ping/", what="checking the token")
                raise ConfigurationError(
                    "the Seafile token is an account token: the destination needs repo_id (the library's id;"
                    " see `ocs-transfer seafile list-repos`), or use a library API token"
                )
            return Routes.for_account(self.repo_id)
        own = str(info.get("repo_id", ""))
        if self.repo_id and own != self.repo_id:
            raise ConfigurationError(
                f"the Seafile library API token belongs to library {own!r} ({info.get('repo_name', '')!r}), not to"
                f" the configured repo_id {self.repo_id!r}: a library token works only in its own library; drop"
                " repo_id or give that library's id"
            )
        if self._resumable:
            raise ConfigurationError(
                "resumable=true needs an account token: with a library API token Seafile cannot say how much of"
                " an upload arrived, so uploads go in one request; drop the resumable option or use an account token"
            )
        self.repo_id = own
        self._repo = {"id": own, "name": info.get("repo_name", ""), "encrypted": False}
        log.debug("Seafile: a library API token for library %s", own)
        return Routes.for_repo_token(own)

    # -- the library ----------------------------------------------------------------------

    def library(self) -> dict[str, Any]:
        """The library's details (``GET /api2/repos/{id}/``; for a library
        token, ``via-repo-token/repo-info/``), checked once: an encrypted
        library is refused."""
        routes = self.routes
        if self._repo is None:
            try:
                repo = self.api.request("GET", routes.library, what="opening the library").json()
            except ObjectNotFoundError:
                raise ConfigurationError(
                    f"the Seafile library {self.repo_id!r} does not exist or the token cannot see it;"
                    " list the token's libraries with `ocs-transfer seafile list-repos`"
                ) from None
            if repo.get("encrypted"):
                raise ConfigurationError(
                    f"the Seafile library {repo.get('name', self.repo_id)!r} is encrypted: the Web API cannot write"
                    " it without the library password; use an unencrypted library"
                )
            self._repo = dict(repo)
        return self._repo

    # -- reading metadata -----------------------------------------------------------------

    def _entry(self, parent: str, item: Mapping[str, Any]) -> dict[str, Any]:
        name = posixpath.join(parent, str(item["name"])) if parent else str(item["name"])
        kind = "directory" if item.get("type") == "dir" else "file"
        return {
            "name": name, "type": kind, "size": int(item.get("size") or 0) if kind == "file" else 0,
            "id": item.get("id"), "mtime": _mtime(item.get("mtime")),
        }  # fmt: skip

    def _list_dir(self, path: str) -> list[dict[str, Any]] | None:
        """The entries of directory ``path``, or ``None`` when it is missing."""
        self.library()
        routes = self.routes
        try:
            body = self.api.request(
                "GET", routes.dir, params=routes.at(self._p(path)), what=f"listing {self._p(path)!r}"
            ).json()
        except ObjectNotFoundError:
            return None
        return [self._entry(path, item) for item in routes.entries(body)]

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        entries = self._list_dir(path)
        if entries is None:
            entries = [self.info(path)]  # a file lists as itself; raises when missing
        else:
            self._known_dirs.add(path)
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if not path:
            self.library()
            return {"name": "", "type": "directory", "size": 0}
        self.library()
        routes = self.routes
        try:
            item = routes.detail(self.api.request(
                "GET", routes.file_detail, params=routes.at(self._p(path)), what=f"info of {self._p(path)!r}"
            ).json())  # fmt: skip
        except ObjectNotFoundError:
            parent, name = posixpath.split(path)
            for entry in self._list_dir(parent) or []:
                if posixpath.basename(entry["name"]) == name:
                    return entry
            raise FileNotFoundError(path) from None
        if item.get("type") == "dir":
            return {"name": path, "type": "directory", "size": 0, "id": item.get("id")}
        return self._entry(posixpath.dirname(path), {**item, "name": posixpath.basename(path)})

    # -- directories ----------------------------------------------------------------------

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        path = self._strip_protocol(path)
        if not exist_ok and self.exists(path):
            raise FileExistsError(path)
        self.mkdir(path, create_parents=True)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Create ``path`` (and its parents), looking first: Seafile creates
        ``name (1)`` beside an existing ``name`` instead of failing."""
        path = self._strip_protocol(path)
        parts = [p for p in path.split("/") if p]
        if not create_parents and len(parts) > 1 and not self.isdir("/".join(parts[:-1])):
            raise FileNotFoundError(posixpath.dirname(path))
        current = ""
        for part in parts:
            parent, current = current, posixpath.join(current, part) if current else part
            if current in self._known_dirs:
                continue
            names = {posixpath.basename(e["name"]): e["type"] for e in self._list_dir(parent) or []}
            if names.get(part) == "file":
                raise FileExistsError(f"{current!r} is a file, not a folder")
            if part not in names:
                try:
                    self.api.request(
                        "POST", self.routes.dir, params=self.routes.at(self._p(current)), data={"operation": "mkdir"},
                        what=f"creating the folder {self._p(current)!r}",
                    )  # fmt: skip
                except (TransientStorageError, RateLimitError):
                    # the answer may have been lost after the folder was made: look before trying again
                    if not self.isdir(current):
                        raise
            self._known_dirs.add(current)

    def rmdir(self, path: str) -> None:
        self._rm_dir(self._strip_protocol(path))

    def _rm_dir(self, path: str) -> None:
        self.api.request(
            "DELETE", self.routes.dir, params=self.routes.at(self._p(path)), what=f"deleting {self._p(path)!r}"
        )
        self._known_dirs = {d for d in self._known_dirs if d != path and not d.startswith(path + "/")}

    def rm_file(self, path: str) -> None:
        path = self._strip_protocol(path)
        if not path:
            raise ValueError("refusing to delete the library root")
        self.library()
        self.api.request(
            "DELETE", self.routes.file, params=self.routes.at(self._p(path)), what=f"deleting {self._p(path)!r}"
        )

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        for one in [path] if isinstance(path, str) else list(path):
            name = self._strip_protocol(one)
            info = self.info(name)
            if info["type"] == "directory":
                if not recursive and self._list_dir(name):
                    raise OSError(f"{name!r} is a folder that is not empty; use recursive=True")
                if name:
                    self._rm_dir(name)
                else:
                    for entry in self._list_dir("") or []:
                        self.rm(entry["name"], recursive=True)
            else:
                self.rm_file(name)

    # -- reading --------------------------------------------------------------------------

    def download_link(self, path: str) -> str:
        response = self.api.request(
            "GET",
            self.routes.download_link,
            params=self.routes.at(self._p(path), reuse=1),
            what=f"download of {self._p(path)!r}",
        )
        return self.api.quoted(response)

    @contextlib.contextmanager
    def stream(self, path: str, start: int = 0, end: int | None = None, link: str | None = None) -> Iterator[Any]:
        """An httpx response streaming bytes ``start`` to ``end`` (exclusive)
        of ``path``."""
        import httpx

        url = link or self.download_link(self._strip_protocol(path))
        headers = {}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            with self.api.http.stream("GET", url, headers=headers) as response:
                if response.status_code not in (200, 206):
                    response.read()
                    raise error_for(response, f"download of {path!r}", secrets=self.api.secrets)
                if start and response.status_code == 200:
                    raise StorageError(f"download of {path!r}: the Seafile file server ignored the byte range")
                yield response
        except httpx.TransportError as exc:
            raise TransientStorageError(f"download of {path!r}: the connection failed ({type(exc).__name__})") from exc

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        size = None
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self.info(path)["size"]
        first = 0 if start is None else (max(0, size + start) if start < 0 and size is not None else start)
        last = None if end is None else (max(0, size + end) if end < 0 and size is not None else end)
        if last is not None and last <= first:
            self.info(path)  # missing files still raise
            return b""
        with self.stream(path, first, last) as response:
            return bytes(response.read())

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        path = self._strip_protocol(path)
        if "r" in mode:
            return SeafileReadFile(self, path, mode, block_size=block_size or 8 * MiB, cache_options=cache_options)
        if "a" in mode:
            raise NotImplementedError("Seafile cannot append to a file; write it whole")
        if "x" in mode and self.exists(path):
            raise FileExistsError(path)
        return SeafileWriteFile(self, path, mode, block_size=block_size or 8 * MiB, autocommit=autocommit)

    # -- writing --------------------------------------------------------------------------

    def put_file(self, lpath: str, rpath: str, callback: Any = None, **kwargs: Any) -> None:
        import os

        rpath = self._strip_protocol(rpath)
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        size = os.path.getsize(lpath)
        with open(lpath, "rb") as source:
            self.upload(source, rpath, size)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        import io

        path = self._strip_protocol(path)
        if mode == "create" and self.exists(path):
            raise FileExistsError(path)
        self.upload(io.BytesIO(value), path, len(value))

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        if truncate or not self.exists(path):
            self.pipe_file(path, b"")

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy through this machine (download, upload), streaming."""
        path1, path2 = self._strip_protocol(path1), self._strip_protocol(path2)
        info = self.info(path1)
        if info["type"] == "directory":
            self.makedirs(path2, exist_ok=True)
            return
        size = info["size"]
        with self.open(path1, "rb") as source:
            self.upload(source, path2, size)

    def resumable(self, parent: str, name: str) -> bool:
        """Whether the server takes chunked uploads (``ENABLE_RESUMABLE_FILEUPLOAD``:
        ``Accept-Ranges: bytes`` on ``file-uploaded-bytes``). Never with a
        library API token: it has no ``file-uploaded-bytes`` route."""
        if self.routes.uploaded_bytes is None:
            return False
        if self._resumable is None:
            try:
                response = self._uploaded_bytes_response(parent, name)
                self._resumable = response.headers.get("Accept-Ranges", "").lower() == "bytes"
            except StorageError as exc:
                log.info("Seafile: file-uploaded-bytes failed (%s); uploading in one request", type(exc).__name__)
                self._resumable = False
        return self._resumable

    def _uploaded_bytes_response(self, parent: str, name: str) -> Any:
        return self.api.request(
            "GET", str(self.routes.uploaded_bytes),
            params={"parent_dir": self._p(parent), "file_name": name}, what="asking how much of an upload arrived",
        )  # fmt: skip

    def uploaded_bytes(self, parent: str, name: str) -> int:
        return int(self._uploaded_bytes_response(parent, name).json().get("uploadedBytes") or 0)

    def upload_link(self, parent: str) -> str:
        response = self.api.request(
            "GET", self.routes.upload_link, params=self.routes.at(self._p(parent)), what="getting an upload link"
        )
        link = self.api.quoted(response)
        return link + ("&" if "?" in link else "?") + "ret-json=1"

    def upload(self, source: IO[bytes], path: str, size: int) -> UploadResult:
        """Upload ``size`` bytes read from ``source`` to ``path``, replacing any
        file there. Reads ``source`` sequentially, once, in pieces: memory
        stays at one upload chunk."""
        path = self._strip_protocol(path)
        parent, name = posixpath.split(path)
        if not name:
            raise ValueError("an upload needs a file name")
        self.library()
        if parent:
            self.mkdir(parent)
        if size > self.upload_chunk_size and self.resumable(parent, name):
            result = self._upload_chunked(source, parent, name, size)
        else:
            result = self._upload_whole(source, parent, name, size)
        log.debug("Seafile: stored %s (%d bytes, id %s)", path, size, result.get("id"))
        return result

    def _fields(self, parent: str) -> list[tuple[str, str]]:
        return [("parent_dir", self._p(parent)), ("replace", "1")]

    @staticmethod
    def _multipart(boundary: str, fields: list[tuple[str, str]], name: str, size: int) -> tuple[bytes, bytes]:
        """The multipart/form-data bytes before and after the file's content."""
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
            for key, value in fields
        )
        safe = name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        return head, f"\r\n--{boundary}--\r\n".encode()

    def _post_file(self, link: str, parent: str, name: str, pieces: Any, length: int,
                   content_range: str | None = None) -> Any:  # fmt: skip
        """POST one multipart body (``pieces`` yields the file's bytes) to the
        upload link; the raw response."""
        import itertools

        import httpx

        boundary = uuid.uuid4().hex
        head, tail = self._multipart(boundary, self._fields(parent), name, length)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
                   "Content-Length": str(len(head) + length + len(tail))}  # fmt: skip
        if content_range is not None:
            headers["Content-Range"] = content_range
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
        try:
            return self.api.http.post(link, content=itertools.chain([head], pieces, [tail]), headers=headers)
        except httpx.TransportError as exc:
            raise TransientStorageError(
                f"upload of {name!r}: the connection to the Seafile file server failed ({type(exc).__name__})"
            ) from exc

    def _result(self, response: Any, name: str, size: int) -> UploadResult:
        try:
            items = response.json()
        except ValueError:
            items = None
        if isinstance(items, list) and items and isinstance(items[0], Mapping):
            item = items[0]
            if int(item.get("size", size)) != size:
                raise IntegrityError(f"upload of {name!r}: the server stored {item.get('size')} bytes, we sent {size}")
            return UploadResult(name=item.get("name", name), size=size, id=item.get("id"))
        if isinstance(items, Mapping) and items.get("success") is True:
            raise StorageError(f"upload of {name!r}: the server did not finish the file after its last byte")
        text = response.text.strip()
        return UploadResult(name=name, size=size, id=text if len(text) == 40 else None)

    def _upload_whole(self, source: IO[bytes], parent: str, name: str, size: int) -> UploadResult:
        """One request. A source that fails or comes up short stops the body
        before its end, so the server discards it."""

        def pieces() -> Iterator[bytes]:
            sent = 0
            while sent < size:
                piece = source.read(min(8 * MiB, size - sent))
                if not piece:
                    break
                sent += len(piece)
                yield piece
            if sent != size or source.read(1):
                raise IntegrityError(f"upload of {name!r}: the source gave a different size than {size} bytes")

        refreshes = 0
        while True:
            link = self.upload_link(parent)
            response = self._post_file(link, parent, name, pieces(), size)
            if response.status_code in (200, 201):
                return self._result(response, name, size)
            if response.status_code in (403, 404) and refreshes < LINK_REFRESHES and size == 0:
                refreshes += 1  # an expired link; the body (empty) can be sent again
                continue
            raise error_for(response, f"upload of {name!r}", secrets=self.api.secrets)

    def _upload_chunked(self, source: IO[bytes], parent: str, name: str, size: int) -> UploadResult:
        """The resumable chunked upload. One chunk is held in memory, so a
        failed chunk can be sent again from wherever the server's
        ``uploadedBytes`` says it got to."""
        link: str | None = None
        refreshes = 0
        offset = 0
        started = time.time()
        while offset < size:
            want = min(self.upload_chunk_size, size - offset)
            chunk = _read_pieces(source, want)
            got = sum(len(p) for p in chunk)
            if got != want:
                raise IntegrityError(f"upload of {name!r}: the source ended at {offset + got} of {size} bytes")
            end = offset + got
            done = offset  # how far the server has this chunk
            attempt = 0
            while True:
                try:
                    link = link or self.upload_link(parent)
                    rng = f"bytes {done}-{end - 1}/{size}"
                    pieces = _slices(chunk, done - offset)
                    response = self._post_file(link, parent, name, pieces, end - done, content_range=rng)
                    if response.status_code in (200, 201):
                        if end == size:
                            return self._result(response, name, size)
                        break
                    if response.status_code in (403, 404) and refreshes < LINK_REFRESHES:
                        refreshes += 1
                        log.info("Seafile: the upload link of %s expired; getting a fresh one", name)
                        link = None
                        continue
                    raise error_for(response, f"upload of {name!r}", secrets=self.api.secrets)
                except (TransientStorageError, RateLimitError) as exc:
                    attempt += 1
                    if attempt >= self.api.attempts:
                        raise
                    self.api.wait(exc, attempt)
                    held = self.uploaded_bytes(parent, name)
                    if offset <= held <= end and held != 0:
                        done = held
                        if done == end:
                            break  # the chunk arrived; only its answer was lost
                        log.info("Seafile: resuming %s at byte %d after %s", name, done, type(exc).__name__)
                        continue
                    if held == 0 and offset == 0:
                        done = 0
                        continue
                    if end == size:
                        found = self._completed(parent, name, size, started)
                        if found is not None:
                            return found
                    raise TransientStorageError(
                        f"upload of {name!r}: the server holds {held} bytes of the upload, not between {offset}"
                        f" and {end}; the upload must start again"
                    ) from exc
            offset = end
        raise StorageError(f"upload of {name!r}: no chunk was sent")  # size > 0 always returns above

    def _completed(self, parent: str, name: str, size: int, started: float) -> UploadResult | None:
        """After the answer to the last chunk was lost: the file, when the
        server finished it (its id unknown: the caller verifies by download)."""
        try:
            info = self.info(posixpath.join(parent, name) if parent else name)
        except (FileNotFoundError, OcsTransferError):
            return None
        mtime = info.get("mtime")
        if info["type"] == "file" and info["size"] == size and (mtime is None or mtime.timestamp() >= started - 2):
            log.info(
                "Seafile: the answer to the last chunk of %s was lost; the file is there, verify by download", name
            )
            return UploadResult(name=name, size=size, id=None)
        return None

    # -- links ----------------------------------------------------------------------------

    def _links_managed(self, doing: str) -> None:
        if not self.routes.manage_links:
            raise ConfigurationError(
                f"{doing}: a Seafile library API token cannot list or delete share links; do it in the library's"
                " web interface, or use an account token"
            )

    def share_links(self, path: str) -> list[dict[str, Any]]:
        path = self._strip_protocol(path)
        self._links_managed(f"listing the share links of {self._p(path)!r}")
        items = self.api.request(
            "GET", "/api/v2.1/share-links/", params={"repo_id": self.repo_id, "path": self._p(path)},
            what=f"listing the share links of {self._p(path)!r}",
        ).json()  # fmt: skip
        return [dict(i) for i in items if isinstance(i, Mapping) and i.get("path") == self._p(path)]

    def share_link(
        self, path: str, *, password: Secret | None = None, expire_days: int | None = None
    ) -> dict[str, Any]:
        """A download share link to ``path`` (``POST /api/v2.1/share-links/``):
        its ``token``, ``link``, ``expire_date``. An existing link without a
        password that does not expire earlier is reused (older servers allow
        one link per path). With a library API token the link takes neither a
        password nor an expiry (``via-repo-token/share-links/`` has none): a
        password is refused, an expiry left out (the link lasts until it is
        deleted in the web interface)."""
        path = self._strip_protocol(path)
        self.info(path)  # a clear not-found
        if self.routes.kind == "repo":
            return self._repo_token_share_link(path, password, expire_days)
        body: dict[str, Any] = {"repo_id": self.repo_id, "path": self._p(path),
                                "permissions": {"can_edit": False, "can_download": True}}  # fmt: skip
        if password is not None:
            body["password"] = password.reveal()
        if expire_days is not None:
            body["expire_days"] = int(expire_days)
        try:
            return dict(
                self.api.request("POST", "/api/v2.1/share-links/", json=body, what="making a share link").json()
            )
        except StorageError as exc:
            if "already exists" not in str(exc) or password is not None:
                raise
        for link in self.share_links(path):
            if not link.get("is_expired"):
                return link
        raise StorageError(f"making a share link to {path!r}: the server says one exists but lists none")

    def _repo_token_share_link(self, path: str, password: Secret | None, expire_days: int | None) -> dict[str, Any]:
        if password is not None:
            raise ConfigurationError(
                "a Seafile library API token cannot make share links with a password; remove the link_password"
                " credential or use an account token"
            )
        if expire_days is not None:
            log.info("Seafile: a library API token's share links cannot expire; the link to %s lasts until deleted",
                     self._p(path))  # fmt: skip
        body = {"path": self._p(path), "permissions": {"can_edit": False, "can_download": True, "can_upload": False}}
        try:
            return dict(self.api.request("POST", self.routes.share_links, json=body, what="making a share link").json())
        except ObjectNotFoundError:
            raise ConfigurationError(
                "making a share link: this Seafile server has no share-link route for library API tokens (newer"
                " servers have one); use an account token for links"
            ) from None

    def delete_share_link(self, token: str) -> None:
        self._links_managed("deleting a share link")
        self.api.request("DELETE", f"/api/v2.1/share-links/{quote(token, safe='')}/", what="deleting a share link")

    def sign(self, path: str, expiration: int = 7 * 86400, **kwargs: Any) -> str:
        days = max(1, math.ceil(expiration / 86400))
        link = str(self.share_link(path, expire_days=days, password=kwargs.get("password"))["link"])
        return link + ("&" if "?" in link else "?") + "dl=1" if self.direct_links else link


def _read_pieces(source: IO[bytes], n: int, piece: int = 8 * MiB) -> list[bytes]:
    """Up to ``n`` bytes of ``source`` as pieces of at most ``piece`` bytes
    (never joined: a chunk is held once)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        data = source.read(min(piece, n - got))
        if not data:
            break
        parts.append(data)
        got += len(data)
    return parts


def _slices(pieces: list[bytes], skip: int, step: int = MiB) -> Iterator[bytes]:
    """The bytes of ``pieces`` from offset ``skip`` on, ``step`` at a time."""
    for data in pieces:
        if skip >= len(data):
            skip -= len(data)
            continue
        view = memoryview(data)
        for i in range(skip, len(view), step):
            yield bytes(view[i : i + step])
        skip = 0


class SeafileReadFile(AbstractBufferedFile):  # type: ignore[misc]
    """Reads with ``Range`` requests on one download link."""

    def __init__(self, fs: SeafileFileSystem, path: str, mode: str, **kwargs: Any) -> None:
        info = fs.info(path)
        if info["type"] != "file":
            raise IsADirectoryError(path)
        self._link: str | None = None
        super().__init__(fs, path, mode, size=info["size"], **kwargs)
        self.details = info

    def _fetch_range(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        if self._link is None:
            self._link = self.fs.download_link(self.path)
        with self.fs.stream(self.path, start, end, link=self._link) as response:
            return bytes(response.read())


class SeafileWriteFile(AbstractBufferedFile):  # type: ignore[misc]
    """``open("wb")``: spools to a temporary file (the upload needs the total
    size first), uploads on close."""

    def _initiate_upload(self) -> None:
        self._spool = tempfile.TemporaryFile()

    def _upload_chunk(self, final: bool = False) -> bool:
        if not hasattr(self, "_spool"):
            self._initiate_upload()
        self.buffer.seek(0)
        shutil.copyfileobj(self.buffer, self._spool)
        if final:
            size = self._spool.tell()
            self._spool.seek(0)
            try:
                self.fs.upload(self._spool, self.path, size)
            finally:
                self._spool.close()
        return True

    def discard(self) -> None:
        spool = getattr(self, "_spool", None)
        if spool is not None:
            spool.close()
