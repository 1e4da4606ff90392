"""The ``dropbox`` provider: files in a Dropbox account, through the official
SDK.

dropboxdrivefs (fsspec over the SDK) is not used for any operation: the ones
a store needs are those it gets wrong (PROVIDERS.md: writes over 4 MiB fail,
one ``write()`` is one request, only access tokens, ``ls``/``mkdir``/``rm``
swallow errors, no content hash, an off-by-one read range). The store calls
the SDK directly:

- uploads: one ``files/upload`` request up to ``chunk_size`` (8 MiB by
  default), upload sessions above (start / append_v2 / finish, appends of
  ``chunk_size``, a multiple of 4 MiB); at most two chunks in memory;
  ``WriteMode.overwrite`` so a retry never makes "x (1)"; the file appears
  only at the commit (Dropbox's sessions are atomic);
- an append whose answer was lost is recognised by the server's
  ``correct_offset``; a commit whose answer was lost is adopted when the file
  at the path has our content hash;
- verification: Dropbox's ``content_hash``, computed while reading the source,
  compared with what the server reports;
- 429 waits at most ``max_rate_limit_wait`` seconds here, then becomes a
  ``RateLimitError`` carrying Retry-After for the engine's schedule; a full
  account is a final ``QuotaExceededError``; a revoked refresh token a final
  ``CredentialError`` saying to re-authorize;
- links: shared links (an existing one is reused) or temporary links.
"""

from __future__ import annotations

import io
import logging
import posixpath
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, timedelta
from typing import IO, Any, ClassVar, NoReturn, Self, TypeVar

import attrs

from ocs_transfer.exceptions import ConfigurationError, ObjectNotFoundError
from ocs_transfer.redact import Secret
from ocs_transfer.retry import Kind, classify
from ocs_transfer.settings import Settings
from ocs_transfer.storage.base import ObjectInfo
from ocs_transfer.storage.clients import PerThreadClient
from ocs_transfer.storage.fsspec_store import FsspecStore
from ocs_transfer.storage.hashing import Hasher, HashingReader
from ocs_transfer.storage.paths import safe_path
from ocs_transfer.transfer.guards import check_base_url

from .client import (
    BLOCK,
    DEFAULT_API_URL,
    DEFAULT_CONTENT_URL,
    ContentHasher,
    error_summary,
    make_client,
    translate_dropbox_error,
)

__all__ = ["DropboxStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")
MiB = 1024 * 1024
CONTENT_HASH = "dropbox-content-hash"
#: Dropbox accepts at most 150 MiB per request.
MAX_CHUNK = 148 * MiB
LINK_KINDS = ("shared", "temporary")
#: How long a Dropbox temporary link works.
TEMPORARY_LINK_LIFE = timedelta(hours=4)


def _base_url(name: str) -> Callable[[Any, Any, str], None]:
    def check(_: Any, __: Any, value: str) -> None:
        check_base_url(name, value)

    return check


def _read_exact(reader: HashingReader, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        piece = reader.read(n - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class _Download(io.RawIOBase):
    """A download's body, streamed (the SDK's ``requests`` response)."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._response.raw.read(len(buffer), decode_content=True)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


class DropboxStore(FsspecStore):
    """Files under a folder of a Dropbox account."""

    name: ClassVar[str] = "dropbox"
    schemes: ClassVar[tuple[str, ...]] = ("dropbox",)
    credential_fields: ClassVar[tuple[str, ...]] = ("app_key", "app_secret", "refresh_token")
    endpoint_options: ClassVar[tuple[str, ...]] = ("api_url", "content_url")
    atomic_writes: ClassVar[bool] = True  # a file appears only when its upload is committed
    reread_to_verify: ClassVar[bool] = False  # content_hash is compared instead

    @attrs.frozen(kw_only=True)
    class Config:
        root: str = ""  #: the folder that holds the store, e.g. /fits-data ("" = the app's top folder)
        api_url: str = attrs.field(default=DEFAULT_API_URL, validator=_base_url("api_url"))  #: RPC + /oauth2/token
        content_url: str = attrs.field(default=DEFAULT_CONTENT_URL, validator=_base_url("content_url"))
        chunk_size: int = 8 * MiB  #: one request up to this size; upload-session chunks above (4 MiB multiple)
        link_kind: str = "shared"  #: "shared" (a permanent shared link, reused) or "temporary" (4 hours)
        max_rate_limit_wait: float = 60.0  #: wait out a 429 here up to this; longer waits go to the engine
        connect_timeout: float | None = None  #: seconds (default: the settings')
        read_timeout: float | None = None  #: seconds (default: the settings')

        def __attrs_post_init__(self) -> None:
            if self.chunk_size <= 0 or self.chunk_size % BLOCK or self.chunk_size > MAX_CHUNK:
                raise ConfigurationError(
                    f"dropbox chunk_size must be a multiple of 4 MiB (4194304) up to 148 MiB, got {self.chunk_size}"
                )
            if self.link_kind not in LINK_KINDS:
                raise ConfigurationError(f"dropbox link_kind must be one of {', '.join(LINK_KINDS)}")

    def __init__(
        self,
        config: DropboxStore.Config,
        clients: PerThreadClient[Any],
        *,
        secrets: tuple[Secret | None, ...] = (),
    ) -> None:
        root = "/" + config.root.strip("/") if config.root.strip("/") else ""
        super().__init__(None, root, chunk_size=config.chunk_size, secrets=secrets)
        self.config = config
        self.clients = clients
        self.sleep: Callable[[float], None] = time.sleep

    def __repr__(self) -> str:
        return f"DropboxStore(root={self.root!r})"

    @classmethod
    def from_config(
        cls, config: Any, credentials: Mapping[str, Any] | None = None, *, settings: Settings | None = None
    ) -> Self:
        if not isinstance(config, cls.Config):
            raise ConfigurationError(f"the dropbox provider needs a DropboxStore.Config, got {type(config).__name__}")
        creds = cls.parse_credentials(credentials, required=("app_key", "refresh_token"), needs={})
        defaults = settings or Settings()
        timeout = (float(config.connect_timeout or defaults.connect_timeout),
                   float(config.read_timeout or defaults.read_timeout))  # fmt: skip

        def factory() -> Any:
            return make_client(
                app_key=creds["app_key"], app_secret=creds.get("app_secret"), refresh_token=creds["refresh_token"],
                api_url=config.api_url, content_url=config.content_url, timeout=timeout, max_retries_on_error=2,
            )  # fmt: skip

        clients: PerThreadClient[Any] = PerThreadClient(factory, close=lambda c: c.close())
        secrets = (creds.get("app_secret"), creds["refresh_token"])
        return cls(config, clients, secrets=secrets)

    @classmethod
    def config_from_url(cls, url: str, **options: Any) -> Any:
        """``dropbox:///fits-data`` (the folder)."""
        from ocs_transfer.storage.options import split_url

        parts = split_url(url)
        return cls.config_from_options({"root": (parts.netloc + parts.path) or "", **options})

    def close(self) -> None:
        self.clients.close()

    # -- paths and errors ------------------------------------------------------------------

    @staticmethod
    def _dbx(full: str) -> str:
        return full if full.startswith("/") else "/" + full

    def _rel(self, full: str) -> str:
        root = self.root.lower()
        if root and full.lower().startswith(root + "/"):
            return full[len(root) + 1 :]
        return full.lstrip("/")

    def _raise(self, exc: BaseException, message: str) -> NoReturn:
        mapped = translate_dropbox_error(exc, message, self._secrets)
        if mapped is not exc:
            raise mapped from exc
        super()._raise(exc, message)

    def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        """``fn(client)`` with this thread's client, waiting out short rate
        limits (at most ``max_rate_limit_wait`` seconds each, three times)."""
        for attempt in range(4):
            try:
                with self.clients.using() as client:
                    return fn(client)
            except Exception as exc:
                decision = classify(exc)
                wait = decision.retry_after if decision.retry_after is not None else 1.0
                if decision.kind is not Kind.BACKOFF or attempt == 3 or wait > self.config.max_rate_limit_wait:
                    raise
                log.info("dropbox %s: rate limited, waiting %.1f s", what, wait)
                self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- metadata ----------------------------------------------------------------------------

    @staticmethod
    def _metadata_info(meta: Any) -> dict[str, Any]:
        from dropbox import files

        if isinstance(meta, files.FolderMetadata):
            return {"name": meta.path_display, "type": "directory", "size": 0}
        modified = meta.server_modified
        return {
            "name": meta.path_display,
            "type": "file",
            "size": meta.size,
            "content_hash": meta.content_hash,
            "rev": meta.rev,
            "id": meta.id,
            "modified": modified.replace(tzinfo=UTC) if modified.tzinfo is None else modified,
        }

    def _info_raw(self, full: str, version_id: str | None = None) -> dict[str, Any]:
        target = f"rev:{version_id}" if version_id else self._dbx(full)
        meta = self._call("get_metadata", lambda c: c.files_get_metadata(target))
        return self._metadata_info(meta)

    def _version_id(self, info: Mapping[str, Any]) -> str | None:
        rev = info.get("rev")
        return str(rev) if rev else None

    def _extra_hashers(self) -> dict[str, Hasher]:
        return {CONTENT_HASH: ContentHasher()}

    def _native_checksum(self, info: Mapping[str, Any]) -> tuple[str, str] | None:
        value = info.get("content_hash")
        return (CONTENT_HASH, str(value)) if value else None

    # -- upload --------------------------------------------------------------------------------

    def _ensure_parent(self, path: str) -> None:
        """Nothing to do: Dropbox creates the folders of an uploaded path."""

    def _upload(
        self,
        reader: HashingReader,
        path: str,
        *,
        size: int | None,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        options: Mapping[str, Any] | None = None,
    ) -> Mapping[str, str] | None:
        from dropbox import files

        target = self._dbx(path)
        chunk = self.config.chunk_size
        commit = files.CommitInfo(path=target, mode=files.WriteMode.overwrite, autorename=False, mute=True)
        pending = _read_exact(reader, chunk)
        following = _read_exact(reader, chunk) if len(pending) == chunk else b""
        if not following:
            meta = self._commit_once(
                reader, target, lambda c: c.files_upload(pending, target, mode=files.WriteMode.overwrite, mute=True)
            )
            return {"version_id": meta.rev}
        session_id = self._call(
            "upload_session/start", lambda c: c.files_upload_session_start(pending, close=False).session_id
        )
        offset = len(pending)
        pending = following
        while True:
            following = _read_exact(reader, chunk) if len(pending) == chunk else b""
            if not following:
                break
            offset = self._append(session_id, offset, pending)
            pending = following
        cursor = files.UploadSessionCursor(session_id=session_id, offset=offset)
        meta = self._commit_once(reader, target, lambda c: c.files_upload_session_finish(pending, cursor, commit))
        return {"version_id": meta.rev}

    def _append(self, session_id: str, offset: int, data: bytes) -> int:
        """Append ``data`` at ``offset``; the new offset. A retry after a lost
        answer finds the server already past it (``correct_offset``)."""
        from dropbox import exceptions as dx
        from dropbox import files

        end = offset + len(data)
        for attempt in range(3):
            cursor = files.UploadSessionCursor(session_id=session_id, offset=offset)
            try:

                def send(client: Any, cursor: Any = cursor) -> Any:
                    return client.files_upload_session_append_v2(data, cursor)

                self._call("append", send)
                return end
            except dx.ApiError as exc:
                error = exc.error
                if error is not None and error.is_incorrect_offset():
                    correct = error.get_incorrect_offset().correct_offset
                    if correct == end:
                        return end  # our earlier try landed; its answer was lost
                raise
            except Exception as exc:
                if attempt == 2 or not classify(exc).retryable:
                    raise
                log.info("dropbox append at %d failed (%s); sending the chunk again", offset, type(exc).__name__)
        raise AssertionError("unreachable")  # pragma: no cover

    def _commit_once(self, reader: HashingReader, target: str, send: Callable[[Any], Any]) -> Any:
        """Send the request that commits the file. When its answer is lost,
        look before sending again: the file with our content hash at the path
        means it was committed (adopt it)."""
        from dropbox import exceptions as dx

        try:
            return self._call("commit", send)
        except Exception as exc:
            if not classify(exc).retryable or isinstance(exc, dx.RateLimitError):
                raise
            first_error = exc
        expected = reader.digests().get(CONTENT_HASH)
        try:
            meta = self._call("get_metadata", lambda c: c.files_get_metadata(target))
        except Exception:
            raise first_error from None
        if getattr(meta, "content_hash", None) == expected:
            log.info("dropbox: the commit of %s landed though its answer was lost; adopting it", target)
            return meta
        raise first_error

    # -- the rest of the contract ---------------------------------------------------------------

    def _discard(self, full: str) -> None:
        try:
            self._call("delete", lambda c: c.files_delete_v2(self._dbx(full)))
        except Exception as exc:  # clean-up must not hide the real error
            if "not_found" not in error_summary(exc):
                log.warning("could not remove %s after a failed upload: %s", full, type(exc).__name__)

    def delete_file(self, path: str, version_id: str | None = None) -> None:
        full = self._full(path)
        try:
            info = self._info_raw(full)
            if info["type"] != "file":
                raise ObjectNotFoundError(f"{safe_path(path)!r} is a folder, not a file")
            self._call("delete", lambda c: c.files_delete_v2(self._dbx(full)))
        except Exception as exc:
            self._raise(exc, f"delete of {safe_path(path)!r} failed")

    def open(self, path: str, version_id: str | None = None) -> IO[bytes]:
        full = self._full(path)
        target = f"rev:{version_id}" if version_id else self._dbx(full)
        try:
            _, response = self._call("download", lambda c: c.files_download(target))
        except Exception as exc:
            self._raise(exc, f"open of {safe_path(path)!r} failed")
        return io.BufferedReader(_Download(response), buffer_size=MiB)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self._full(prefix.rstrip("/")) if prefix.strip("/") else self.root
        try:
            folder = self._dbx(base) if base else ""
            result = self._call("list_folder", lambda c: c.files_list_folder(folder, recursive=True))
        except Exception as exc:
            if "not_found" in error_summary(exc):
                return
            self._raise(exc, f"listing {prefix!r} failed")
        while True:
            for entry in result.entries:
                info = self._metadata_info(entry) if hasattr(entry, "path_display") else {"type": "other"}
                if info.get("type") != "file" or self.is_temporary(info["name"]):
                    continue
                yield self._object_info(info, self._rel(info["name"]))
            if not result.has_more:
                return
            cursor = result.cursor
            try:

                def more(client: Any, cursor: Any = cursor) -> Any:
                    return client.files_list_folder_continue(cursor)

                result = self._call("list_folder", more)
            except Exception as exc:
                self._raise(exc, f"listing {prefix!r} failed")

    def link_lifetime(self, expiration: timedelta) -> timedelta | None:
        # temporary links live four hours (Dropbox's rule); shared links until the file goes
        return TEMPORARY_LINK_LIFE if self.config.link_kind == "temporary" else None

    def _sign(self, path: str, version_id: str | None, expiration: timedelta) -> str:
        from dropbox import exceptions as dx

        target = self._dbx(path)
        if self.config.link_kind == "temporary":
            return str(self._call("temporary link", lambda c: c.files_get_temporary_link(target)).link)
        try:
            return str(self._call("shared link", lambda c: c.sharing_create_shared_link_with_settings(target)).url)
        except dx.ApiError as exc:
            if not exc.error.is_shared_link_already_exists():
                raise
        links = self._call("list shared links", lambda c: c.sharing_list_shared_links(path=target, direct_only=True))
        for link in links.links:
            if str(getattr(link, "path_lower", "") or target.lower()) == target.lower():
                return str(link.url)
        raise ObjectNotFoundError(f"Dropbox says {posixpath.basename(target)!r} has a shared link but lists none")
