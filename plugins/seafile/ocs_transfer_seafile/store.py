"""The ``seafile`` provider: a folder in a Seafile library, through
:class:`~ocs_transfer_seafile.fs.SeafileFileSystem`.

- Uploads are atomic on Seafile (a file appears when its last byte arrived)
  and replace an existing file, so they go straight to the final path.
- Verification: the size, and the file id the upload's answer reported
  against the id the library holds at the path; with ``verify = "download"``
  the stored file is also downloaded and hash-compared. When the answer to an
  upload was lost, the file is verified by download.
- ``get_url`` returns a share link (optionally with the ``link_password``
  credential), expiring after the expiration asked for.
- The ``token`` credential is an account token or a library API token
  (option ``auth``: ``auto`` asks the server). A library token works only in
  its own library (``repo_id`` may be left out: it is the token's), uploads
  in one request (it cannot ask how much of a chunked upload arrived), and
  its share links take no password and never expire.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar, NoReturn, Self

import attrs

from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.redact import Secret
from ocs_transfer.settings import Settings
from ocs_transfer.storage.fsspec_store import FsspecStore
from ocs_transfer.storage.hashing import DEFAULT_CHUNK_SIZE, HashingReader

from .api import AUTH_KINDS, SeafileApi, normalise_server_url
from .fs import MiB, SeafileFileSystem

__all__ = ["FILE_ID", "SeafileStore"]

#: The name of the "checksum" the store compares: Seafile's file id.
FILE_ID = "seafile-id"
VERIFY_MODES = ("id", "download")


class SeafileStore(FsspecStore):
    """A folder in a Seafile library."""

    name: ClassVar[str] = "seafile"
    schemes: ClassVar[tuple[str, ...]] = ("seafile",)
    credential_fields: ClassVar[tuple[str, ...]] = ("token", "link_password")
    endpoint_options: ClassVar[tuple[str, ...]] = ("server_url",)
    atomic_writes: ClassVar[bool] = True
    reread_to_verify: ClassVar[bool] = True
    needs_size: ClassVar[bool] = True  #: the upload API takes the total size first

    @attrs.frozen(kw_only=True)
    class Config:
        server_url: str  #: scheme and host, e.g. https://seafile.example.edu
        repo_id: str = ""  #: the library's id (``ocs-transfer seafile list-repos``); a library token's own by default
        auth: str = "auto"  #: the token: "account", "repo" (a library API token) or "auto" (ask the server)
        repoid: str = ""  #: the results service's spelling of repo_id
        root: str = ""  #: a folder in the library that holds the store
        verify: str = "id"  #: "id" (size + file id) or "download" (also download and hash-compare)
        upload_chunk_mib: int = 32  #: chunk size of the resumable upload (the memory it takes)
        resumable: bool | None = None  #: chunked uploads: None asks the server
        link_expire_days: int | None = None  #: share links expire after this (default: what the caller asks)
        direct_links: bool = False  #: links download at once (``?dl=1``) instead of showing Seafile's page
        header_style: str | None = None  #: "Token" or "Bearer"; None: from the server's version
        verify_tls: bool = True
        connect_timeout: float | None = None  #: seconds (default: the settings' connect timeout)
        read_timeout: float | None = None  #: seconds (default: the settings' read timeout)
        attempts: int = 5  #: tries of one request or chunk on transient failures
        max_wait: float = 60.0  #: the longest wait between tries, seconds

        def library(self) -> str:
            return self.repo_id or self.repoid

    def __init__(self, fs: SeafileFileSystem, config: SeafileStore.Config, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 link_password: Secret | None = None, secrets: tuple[Secret | None, ...] = ()) -> None:  # fmt: skip
        super().__init__(fs, config.root.strip("/"), chunk_size=chunk_size, secrets=secrets)
        self.config = config
        self._link_password = link_password

    def __repr__(self) -> str:
        config = self.config
        return f"SeafileStore(server_url={config.server_url!r}, repo_id={config.library()!r}, root={self.root!r})"

    @classmethod
    def from_config(cls, config: Any, credentials: Mapping[str, Any] | None = None, *,
                    settings: Settings | None = None) -> Self:  # fmt: skip
        if not isinstance(config, cls.Config):
            raise ConfigurationError(f"the seafile store needs a SeafileStore.Config, got {type(config).__name__}")
        normalise_server_url(config.server_url)
        if config.auth not in AUTH_KINDS:
            raise ConfigurationError(f"seafile option auth={config.auth!r} must be one of {', '.join(AUTH_KINDS)}")
        if not config.library() and config.auth == "account":
            raise ConfigurationError(
                "the seafile destination needs repo_id (see `ocs-transfer seafile list-repos`) with an account token"
            )
        if config.auth == "repo" and config.link_expire_days is not None:
            raise ConfigurationError(
                "seafile option link_expire_days needs an account token: share links made with a library API token"
                " cannot expire"
            )
        if config.auth == "repo" and config.resumable:
            raise ConfigurationError(
                "seafile option resumable=true needs an account token: a library API token cannot ask how much of"
                " an upload arrived, so its uploads go in one request"
            )
        if config.repo_id and config.repoid and config.repo_id != config.repoid:
            raise ConfigurationError("give the seafile destination repo_id or repoid, not two different ones")
        if config.verify not in VERIFY_MODES:
            raise ConfigurationError(
                f"seafile option verify={config.verify!r} must be one of {', '.join(VERIFY_MODES)}"
            )
        if config.upload_chunk_mib < 1:
            raise ConfigurationError("seafile option upload_chunk_mib must be at least 1")
        creds = cls.parse_credentials(credentials, required=("token",), needs={})
        token = creds["token"]
        if config.auth == "repo" and creds.get("link_password") is not None:
            raise ConfigurationError(
                "the link_password credential needs an account token: share links made with a library API token"
                " take no password"
            )
        defaults = settings or Settings()
        api = SeafileApi(
            config.server_url, token,
            connect_timeout=config.connect_timeout or defaults.connect_timeout,
            read_timeout=config.read_timeout or defaults.read_timeout,
            verify_tls=config.verify_tls, attempts=config.attempts, max_wait=config.max_wait,
            header_style=config.header_style,
        )  # fmt: skip
        fs = SeafileFileSystem(config.library(), api=api, upload_chunk_size=config.upload_chunk_mib * MiB,
                               resumable=config.resumable, direct_links=config.direct_links,
                               auth=config.auth)  # fmt: skip
        password = creds.get("link_password")
        return cls(fs, config, chunk_size=defaults.chunk_size, link_password=password, secrets=(token, password))

    @classmethod
    def config_from_url(cls, url: str, **options: Any) -> Any:
        """``seafile://<repo_id>/folder`` (``server_url`` as an option)."""
        if not url.startswith("seafile://") or not SeafileFileSystem._get_kwargs_from_urls(url).get("repo_id"):
            raise ConfigurationError(f"{url!r}: seafile URLs look like seafile://<repo_id>/folder")
        return cls.config_from_options({"repo_id": SeafileFileSystem._get_kwargs_from_urls(url)["repo_id"],
                                        "root": SeafileFileSystem._strip_protocol(url), **options})

    def close(self) -> None:
        self.fs.api.close()

    # -- errors ----------------------------------------------------------------------------

    def _raise(self, exc: BaseException, message: str) -> NoReturn:
        if isinstance(exc, FileNotFoundError) and not isinstance(exc, ConfigurationError):
            from ocs_transfer.exceptions import ObjectNotFoundError, OcsTransferError

            if not isinstance(exc, OcsTransferError):
                raise ObjectNotFoundError(f"{message}: not found in the Seafile library") from exc
        super()._raise(exc, message)

    # -- upload and verification -------------------------------------------------------------

    def _upload(self, reader: HashingReader, path: str, *, size: int | None, content_type: str | None,
                metadata: Mapping[str, str] | None,
                options: Mapping[str, Any] | None = None) -> Mapping[str, str] | None:  # fmt: skip
        if size is None:
            # the API needs the total size before the first byte: spool to disk first
            with tempfile.TemporaryFile() as spool:
                shutil.copyfileobj(reader, spool, self.chunk_size)
                total = spool.tell()
                spool.seek(0)
                result = self.fs.upload(spool, path, total)
        else:
            result = self.fs.upload(reader, path, size)
        return {FILE_ID: str(result["id"])} if result.get("id") else None

    def _native_checksum(self, info: Mapping[str, Any]) -> tuple[str, str] | None:
        value = info.get("id")
        return (FILE_ID, str(value)) if value else None

    def _verify(self, full: str, size: int, digests: Mapping[str, str], rel: str) -> dict[str, Any]:
        info = super()._verify(full, size, digests, rel)  # size and file id (a download when no id came back)
        if self.config.verify == "download" and digests.get(FILE_ID):
            super()._verify(full, size, {k: v for k, v in digests.items() if k != FILE_ID}, rel)
        return info

    def _open_for_verify(self, full: str) -> Any:
        return self.fs.open(full, "rb", block_size=self.chunk_size)

    # -- links -------------------------------------------------------------------------------

    def link_lifetime(self, expiration: timedelta) -> timedelta | None:
        if self.config.link_expire_days is not None:
            return timedelta(days=self.config.link_expire_days)
        return expiration

    def _sign(self, path: str, version_id: str | None, expiration: timedelta) -> str:
        seconds = expiration.total_seconds()
        if self.config.link_expire_days is not None and self.fs.routes.kind == "repo":
            raise ConfigurationError(
                "seafile option link_expire_days needs an account token: share links made with a library API token"
                " cannot expire; remove the option"
            )
        if self.config.link_expire_days is not None:
            seconds = self.config.link_expire_days * 86400
        return str(self.fs.sign(path, expiration=int(seconds), password=self._link_password))

    def delete_links(self, path: str) -> int:
        """Delete every share link to ``path``; how many there were."""
        links = self.fs.share_links(self._full(path))
        for link in links:
            self.fs.delete_share_link(str(link["token"]))
        return len(links)
