"""The ``gdrive`` provider: files in a Google Drive (My Drive or a shared
drive) through :class:`~ocs_transfer_gdrive.drivefs.DriveFileSystem`.

Uploads are atomic on Drive (a file appears only when its upload completes),
so they go straight to the final name; verification compares Drive's
``md5Checksum`` of what it stored with the md5 computed while reading the
source. Links are the file's ``webViewLink``, shared as the ``share`` option
says.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar, Self

import attrs

from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.redact import Secret
from ocs_transfer.settings import Settings
from ocs_transfer.storage.fsspec_store import FsspecStore
from ocs_transfer.storage.hashing import HashingReader

from .auth import DEFAULT_API_URL, DEFAULT_TOKEN_URL
from .drivefs import SHARE_MODES, DriveFileSystem

__all__ = ["GdriveStore"]

CREDENTIAL_FIELDS = ("client_id", "client_secret", "refresh_token", "service_account_json")


class GdriveStore(FsspecStore):
    """Files in a Google Drive folder."""

    name: ClassVar[str] = "gdrive"
    schemes: ClassVar[tuple[str, ...]] = ("gdrive",)
    credential_fields: ClassVar[tuple[str, ...]] = CREDENTIAL_FIELDS
    #: Options naming servers we connect to (checked against OCS_TRANSFER_ENDPOINT_ALLOWLIST).
    endpoint_options: ClassVar[tuple[str, ...]] = ("api_url", "token_url")
    atomic_writes: ClassVar[bool] = True
    reread_to_verify: ClassVar[bool] = False

    @attrs.frozen(kw_only=True)
    class Config:
        root: str = ""  #: folder path under the root folder, e.g. fits-data (created as needed)
        root_folder_id: str | None = None  #: a folder id to start from (default: My Drive, or the shared drive)
        drive_id: str | None = None  #: a shared drive's id
        share: str = "none"  #: links: none (people with access), anyone_reader, domain_reader
        share_domain: str | None = None  #: the domain for share=domain_reader
        subject: str | None = None  #: with a service account: the user to impersonate (domain-wide delegation)
        api_url: str = DEFAULT_API_URL  #: scheme and host; /drive/v3 and /upload/drive/v3 under it
        token_url: str = DEFAULT_TOKEN_URL  #: the OAuth token endpoint (a full URL)
        multipart_threshold: int = 5 * 1024 * 1024  #: larger files use resumable uploads
        folder_cache_seconds: float = 60.0  #: how long resolved folder ids are trusted without a check
        connect_timeout: float | None = None  #: seconds (default: the settings' connect timeout)
        read_timeout: float | None = None  #: seconds (default: the settings' read timeout)

        def __attrs_post_init__(self) -> None:
            if self.share not in SHARE_MODES:
                raise ConfigurationError(f"option share={self.share!r} must be one of {', '.join(SHARE_MODES)}")
            if self.share == "domain_reader" and not self.share_domain:
                raise ConfigurationError("option share=domain_reader needs share_domain, e.g. share_domain=example.org")

    def __init__(
        self, fs: DriveFileSystem, config: GdriveStore.Config, *, secrets: tuple[Secret | None, ...] = ()
    ) -> None:
        super().__init__(fs, config.root.strip("/"), chunk_size=fs.chunk_size, secrets=secrets)
        self.config = config
        self._local = threading.local()  # .uploaded = (path, Drive's file resource) during this thread's put

    def __repr__(self) -> str:
        return f"GdriveStore(root={self.root!r}, drive_id={self.config.drive_id!r})"

    @classmethod
    def from_config(
        cls, config: Any, credentials: Mapping[str, Any] | None = None, *, settings: Settings | None = None
    ) -> Self:
        if not isinstance(config, cls.Config):
            raise ConfigurationError(f"the gdrive store needs a GdriveStore.Config, got {type(config).__name__}")
        creds = cls.parse_credentials(
            credentials, config=config, one_of=(("refresh_token", "service_account_json"),),
            needs={"refresh_token": "client_secret", "client_secret": "client_id"},
        )  # fmt: skip
        defaults = settings or Settings()
        fs = DriveFileSystem(
            **creds,  # type: ignore[arg-type]  # the credential fields, all Secret
            subject=config.subject, root_folder_id=config.root_folder_id, drive_id=config.drive_id,
            api_url=config.api_url, token_url=config.token_url,
            connect_timeout=config.connect_timeout or defaults.connect_timeout,
            read_timeout=config.read_timeout or defaults.read_timeout, chunk_size=defaults.chunk_size,
            multipart_threshold=config.multipart_threshold, folder_cache_seconds=config.folder_cache_seconds,
            skip_instance_cache=True,
        )  # fmt: skip
        return cls(fs, config, secrets=tuple(creds.values()))

    @classmethod
    def config_from_url(cls, url: str, **options: Any) -> Any:
        """``gdrive://fits-data/M31`` → ``root="fits-data/M31"`` in My Drive."""
        scheme, sep, rest = url.partition("://")
        if scheme != "gdrive" or not sep:
            raise ConfigurationError(f"{url!r}: gdrive URLs look like gdrive://folder/sub-folder")
        return cls.config_from_options({"root": rest.strip("/"), **options})

    def close(self) -> None:
        self.fs.close()

    # -- the FsspecStore override points ---------------------------------------------------

    def _ensure_parent(self, path: str) -> None:
        """Nothing: the upload resolves (and creates) its folders itself."""

    def _upload(
        self, reader: HashingReader, path: str, *, size: int | None, content_type: str | None,
        metadata: Mapping[str, str] | None, options: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self._local.uploaded = None
        result = self.fs.upload(reader, path, size=size, content_type=content_type or "application/octet-stream",
                                verify=False)  # fmt: skip (FsspecStore._verify compares the md5)
        self._local.uploaded = (path, self.fs._entry(path, result))

    def _info_raw(self, full: str, version_id: str | None = None) -> dict[str, Any]:
        uploaded = getattr(self._local, "uploaded", None)
        if uploaded is not None and uploaded[0] == full:
            self._local.uploaded = None
            return dict(uploaded[1])  # what the upload's final response said Drive stored
        return dict(self.fs.info(full))

    def _native_checksum(self, info: Mapping[str, Any]) -> tuple[str, str] | None:
        value = info.get("md5Checksum")
        return ("md5", str(value)) if value else None

    def link_lifetime(self, expiration: timedelta) -> timedelta | None:
        return None  # Drive's share links work until the file or its permission goes

    def _sign(self, path: str, version_id: str | None, expiration: timedelta) -> str:
        return str(self.fs.share_link(path, self.config.share, self.config.share_domain))
