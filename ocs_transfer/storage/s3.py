"""The ``s3`` provider: Amazon S3 and S3-compatible servers (MinIO, Ceph,
SeaweedFS...). Install with ``pip install 'ocs-transfer[s3]'``.

Uploads go through :class:`~ocs_transfer.storage.s3_upload.S3Uploader`
(multipart with a fixed part size and bounded concurrency, atomic by nature:
the object appears only when complete). Everything else (info, listing,
reading, links, deletes) uses s3fs and the same credentials.

Verification never relies on a multipart ETag: the CRC32C S3 reports (the
composite ``<crc>-N`` form for multipart uploads) is compared with the one
computed while reading the source; a server that reports none gets the object
read back and its SHA-256 compared.

Configuration, with the ocs_archive variables it keeps working
(:meth:`S3Store.config_from_settings`)::

    FILESTORE_TYPE=s3  BUCKET=archive  S3_ENDPOINT_URL=...  S3_ADDRESSING_STYLE=path
    AWS_ACCESS_KEY_ID=...  AWS_SECRET_ACCESS_KEY=...  AWS_DEFAULT_REGION=...
    S3_DAYS_TO_IA_STORAGE=60   # data observed longer ago goes straight to STANDARD_IA

Neither s3fs nor boto3 is imported until a store is built.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Any, ClassVar, Self

import attrs

from ..exceptions import ConfigurationError, ObjectNotFoundError
from ..redact import Secret
from ..settings import Settings
from .base import Progress, StoredObject
from .bucket import BucketStore, content_disposition
from .hashing import HashingReader
from .s3_upload import MiB, S3Uploader, translate_s3_error

__all__ = ["S3Store"]

log = logging.getLogger(__name__)

#: The longest a SigV4 presigned URL may live.
MAX_LINK_EXPIRATION = timedelta(days=7)

_ADDRESSING = ("auto", "virtual", "path")
_SESSION_LOCK = threading.Lock()
_SHARED_SESSION: Any = None
_MULTIPART_ETAG = re.compile(r'-\d+"?$')

INSTALL_HINT = "the s3 provider needs s3fs and boto3: pip install 'ocs-transfer[s3]'"


def _secret_value(credentials: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = credentials.get(name)
        if value:
            return value.reveal() if isinstance(value, Secret) else str(value)
    return None


class _NoRedirects:
    """An aiohttp session whose requests never follow redirects."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.request(*args, allow_redirects=False, **kwargs)


@functools.cache
def _no_redirect_session_class() -> type[Any]:
    """aiobotocore's HTTP session (what s3fs reads and lists with) without
    redirects: aiohttp would follow a 3xx to any host; botocore itself (our
    uploads, heads, deletes) never does."""
    from aiobotocore.httpsession import AIOHTTPSession

    class NoRedirectSession(AIOHTTPSession):  # type: ignore[misc]
        async def _get_session(self, proxy_url: Any) -> Any:
            return _NoRedirects(await super()._get_session(proxy_url))

    return NoRedirectSession


class S3Store(BucketStore):
    """Objects in an S3 bucket, under an optional prefix."""

    name: ClassVar[str] = "s3"
    schemes: ClassVar[tuple[str, ...]] = ("s3", "s3a")
    supports_versioning: ClassVar[bool] = True
    credential_fields: ClassVar[tuple[str, ...]] = ("key", "secret", "token")
    endpoint_options: ClassVar[tuple[str, ...]] = ("endpoint_url",)
    links_hold_credentials: ClassVar[bool] = True  #: signed with the key id (and session token)
    translator = staticmethod(translate_s3_error)

    @classmethod
    def ambient_identity(cls, options: Mapping[str, Any], credentials: Mapping[str, Any]) -> str | None:
        if _secret_value(credentials, "key", "aws_access_key_id"):
            return None
        if options.get("profile"):
            return f"the AWS profile {options['profile']!r} of this machine"
        return "the AWS credential chain: environment keys, profiles, the instance role"

    @attrs.frozen(kw_only=True)
    class Config:
        bucket: str = attrs.field()
        prefix: str = ""  #: a folder inside the bucket every path is relative to
        endpoint_url: str | None = None  #: for S3-compatible servers; None means AWS
        region: str | None = None
        addressing_style: str = "auto"  #: "auto", "virtual" or "path"
        signature_version: str = "s3v4"
        profile: str | None = None  #: an AWS profile name, used when no key/secret are given
        storage_class: str | None = None  #: e.g. "STANDARD", "INTELLIGENT_TIERING"; None: the bucket's default
        days_to_ia_storage: int | None = None  #: data observed longer ago goes to ``ia_storage_class``
        ia_storage_class: str = "STANDARD_IA"
        part_size: int = 8 * MiB  #: multipart part size; memory is about (concurrency + 2) x part_size
        multipart_threshold: int = 16 * MiB  #: smaller objects go up in one PUT (held in memory)
        concurrency: int = 4  #: parts in flight per upload
        connect_timeout: float = 10.0
        read_timeout: float = 60.0
        max_attempts: int = 5  #: botocore's per-request attempts (5xx, throttling, dropped connections)

        @bucket.validator
        def _check_bucket(self, _: Any, value: str) -> None:
            if not value or "/" in value:
                raise ConfigurationError(f"S3 bucket must be a bucket name without '/', got {value!r}")

        def __attrs_post_init__(self) -> None:
            if self.addressing_style not in _ADDRESSING:
                raise ConfigurationError(
                    f"S3 addressing_style must be one of {', '.join(_ADDRESSING)}, got {self.addressing_style!r}"
                )

    def __init__(
        self,
        fs: Any,
        root: str,
        *,
        config: S3Store.Config,
        client: Any,
        secrets: tuple[Secret | str | None, ...] = (),
    ) -> None:
        super().__init__(fs, root, chunk_size=config.part_size, secrets=secrets)
        self.config = config
        self.client = client
        self.uploader = S3Uploader(
            client,
            config.bucket,
            part_size=config.part_size,
            concurrency=config.concurrency,
            multipart_threshold=config.multipart_threshold,
            secrets=secrets,
        )

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.config.bucket!r}, prefix={self.config.prefix!r})"

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: Any,
        credentials: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
    ) -> Self:
        """Build the store. ``credentials`` may hold ``key``, ``secret`` and
        ``token`` (or the ``aws_access_key_id`` / ``aws_secret_access_key`` /
        ``aws_session_token`` names), plain or :class:`Secret`. Without them
        the usual AWS chain applies (environment, ``profile``, instance role)."""
        if not isinstance(config, cls.Config):
            raise ConfigurationError(f"the s3 provider needs an S3Store.Config, got {type(config).__name__}")
        try:
            import boto3
            import botocore.config
            import s3fs
        except ImportError as exc:
            raise ConfigurationError(INSTALL_HINT) from exc
        creds = credentials or {}
        key = _secret_value(creds, "key", "aws_access_key_id")
        secret = _secret_value(creds, "secret", "aws_secret_access_key")
        token = _secret_value(creds, "token", "aws_session_token")
        if bool(key) != bool(secret):
            raise ConfigurationError("S3 credentials need both 'key' and 'secret' (or neither, to use the AWS chain)")
        secrets = tuple(s for s in (secret, token) if s)
        s3_options: dict[str, Any] = {"payload_signing_enabled": False}
        if config.addressing_style != "auto":
            s3_options["addressing_style"] = config.addressing_style
        timeouts = {"connect_timeout": config.connect_timeout, "read_timeout": config.read_timeout}
        retries = {"mode": "standard", "total_max_attempts": config.max_attempts}
        client_config = botocore.config.Config(
            signature_version=config.signature_version,
            s3=s3_options,
            retries=retries,  # type: ignore[arg-type]
            max_pool_connections=max(10, 2 * config.concurrency),
            # We send our own CRC32C; botocore need not compute another.
            request_checksum_calculation="when_required",
            # The uploader sends bodies as zero-copy views of its reused buffers (s3_upload._body), which
            # urllib3 and the socket take as they are but botocore's parameter validator refuses; the
            # parameters are all built by our own code.
            parameter_validation=False,
            response_checksum_validation="when_required",
            **timeouts,
        )
        try:
            with _SESSION_LOCK:
                # Sessions are slow to build (they load the service models): share one,
                # giving credentials per client, unless a profile is asked for.
                session = boto3.session.Session(profile_name=config.profile) if config.profile and not key else None
                if session is None:
                    global _SHARED_SESSION
                    if _SHARED_SESSION is None:
                        _SHARED_SESSION = boto3.session.Session()
                    session = _SHARED_SESSION
                client = session.client(
                    "s3",
                    endpoint_url=config.endpoint_url,
                    region_name=config.region,
                    aws_access_key_id=key,
                    aws_secret_access_key=secret,
                    aws_session_token=token,
                    config=client_config,
                )
            fs = s3fs.S3FileSystem(
                key=key,
                secret=secret,
                token=token,
                profile=None if key else config.profile,
                endpoint_url=config.endpoint_url,
                version_aware=True,
                default_block_size=config.part_size,  # reads (and re-reads to verify) buffer one part
                client_kwargs={"region_name": config.region} if config.region else {},
                config_kwargs={
                    "http_session_cls": _no_redirect_session_class(),
                    "signature_version": config.signature_version,
                    "s3": {k: v for k, v in s3_options.items() if k == "addressing_style"},
                    "retries": retries,
                    **timeouts,
                },
            )
        except Exception as exc:
            raise translate_s3_error(exc, "setting up the S3 client failed", secrets=secrets) from exc
        return cls(fs, cls.bucket_root(config.bucket, config.prefix), config=config, client=client, secrets=secrets)

    @classmethod
    def config_from_settings(cls, settings: Settings, **options: Any) -> Any:
        """ocs_archive's variables: ``BUCKET``, ``S3_ENDPOINT_URL``,
        ``S3_ADDRESSING_STYLE``, ``S3_SIGNATURE_VERSION``,
        ``AWS_DEFAULT_REGION``, ``S3_DAYS_TO_IA_STORAGE``; the AWS keys come from
        the AWS chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``)."""
        values: dict[str, Any] = {
            "bucket": settings.bucket,
            "endpoint_url": settings.s3_endpoint_url or None,
            "region": settings.aws_default_region or None,
            "addressing_style": settings.s3_addressing_style or "auto",
            "signature_version": settings.s3_signature_version or "s3v4",
            "days_to_ia_storage": settings.s3_days_to_ia_storage,
        }
        values.update(options)
        return cls.Config(**values)

    # -- paths ---------------------------------------------------------------------------

    def _key(self, full: str) -> str:
        return full.split("/", 1)[1] if "/" in full else ""

    # -- writing -------------------------------------------------------------------------

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
        storage_class: str | None = None,
    ) -> StoredObject:
        """:meth:`FileStore.put`; ``storage_class`` (or ``options["storage_class"]``)
        for this object, default the config's."""
        if storage_class:
            options = {**(options or {}), "storage_class": storage_class}
        return super().put(
            source,
            path,
            size=size,
            content_type=content_type,
            metadata=metadata,
            progress=progress,
            cancel=cancel,
            extension=extension,
            options=options,
        )

    def store_file(
        self,
        data_file: Any,
        path: str | None = None,
        *,
        layout: Any = None,
        context: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> StoredObject:
        """:meth:`FileStore.store_file`; data observed more than
        ``days_to_ia_storage`` days ago goes to ``ia_storage_class``."""
        chosen = {"storage_class": self.storage_class_for(data_file), **(options or {})}
        return super().store_file(
            data_file, path, layout=layout, context=context, progress=progress, cancel=cancel, options=chosen
        )

    def storage_class_for(self, data_file: Any, now: datetime | None = None) -> str | None:
        """The storage class ocs_archive would choose for ``data_file``."""
        days = self.config.days_to_ia_storage
        if days is None:
            return self.config.storage_class
        source = data_file.get_header_data() if hasattr(data_file, "get_header_data") else data_file
        observed = source.get_observation_date() if hasattr(source, "get_observation_date") else None
        if isinstance(observed, str):
            try:
                observed = datetime.fromisoformat(observed.strip().replace("Z", "+00:00"))
            except ValueError:
                return self.config.storage_class  # unreadable date: the default class, never a failed upload
        if not isinstance(observed, datetime):
            return self.config.storage_class
        if observed.tzinfo is None:
            observed = observed.replace(tzinfo=UTC)
        if ((now or datetime.now(UTC)) - observed).days > days:
            return self.config.ia_storage_class
        return self.config.storage_class

    def _upload(
        self,
        reader: HashingReader,
        path: str,
        *,
        size: int | None,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        extra: dict[str, Any] = {
            "ContentType": content_type or "application/octet-stream",
            "ContentDisposition": content_disposition(path.rsplit("/", 1)[-1]),
        }
        if metadata:
            extra["Metadata"] = dict(metadata)
        storage_class = (options or {}).get("storage_class") or self.config.storage_class
        if storage_class:
            extra["StorageClass"] = storage_class
        try:
            sent = self.uploader.upload(reader, self._key(path), extra_args=extra, cancel=reader.cancel)  # type: ignore[arg-type]
        finally:
            self.fs.invalidate_cache(path)
        written = {"s3-crc32c": sent.crc32c}
        if sent.version_id:
            written["version_id"] = sent.version_id
        return written

    def _expected_checksum(self, algorithm: str, digests: Mapping[str, str]) -> str | None:
        ours = digests.get("s3-crc32c")
        if ours is None or ("-" in ours) != (algorithm == "crc32c-composite"):
            return None  # the server reports another form than our upload makes: verify by re-reading
        return ours

    def _native_checksum(self, info: Mapping[str, Any]) -> tuple[str, str] | None:
        value = info.get("ChecksumCRC32C")
        if not value:
            return None
        if "-" in value:
            return "crc32c-composite", value
        # A plain CRC32C on a multipart object is a full-object checksum only
        # when S3 says so; some servers report something else there.
        if _MULTIPART_ETAG.search(info.get("ETag") or "") and info.get("ChecksumType") != "FULL_OBJECT":
            return None
        return "crc32c", value

    def _version_id(self, info: Mapping[str, Any]) -> str | None:
        version = info.get("VersionId")
        return None if not version or version == "null" else str(version)

    def _open_for_verify(self, full: str) -> IO[bytes]:
        # botocore's streaming body reads exactly what is asked: no read-ahead buffers.
        body: IO[bytes] = self.client.get_object(Bucket=self.config.bucket, Key=self._key(full))["Body"]
        return body

    def _info_raw(self, full: str, version_id: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"Bucket": self.config.bucket, "Key": self._key(full), "ChecksumMode": "ENABLED"}
        if version_id:
            params["VersionId"] = version_id
        head = self.client.head_object(**params)
        info = {k: v for k, v in head.items() if k != "ResponseMetadata"}
        info.update(name=full, size=head.get("ContentLength"), type="file")
        return info

    def _discard(self, full: str) -> None:
        try:
            version = self._version_id(self._info_raw(full))
            params: dict[str, Any] = {"Bucket": self.config.bucket, "Key": self._key(full)}
            if version:
                params["VersionId"] = version
            self.client.delete_object(**params)
        except Exception as exc:  # clean-up must not hide the real error
            if not isinstance(translate_s3_error(exc, ""), ObjectNotFoundError):
                log.warning("could not remove %s after a failed upload: %s", full, type(exc).__name__)

    # -- the rest of the contract ----------------------------------------------------------

    def delete_file(self, path: str, version_id: str | None = None) -> None:
        """Delete the object; with ``version_id``, that version for good.
        Without it, a versioned bucket keeps older versions (S3 adds a delete
        marker)."""
        full = self._full(path)
        try:
            self._info_raw(full, version_id)
            params: dict[str, Any] = {"Bucket": self.config.bucket, "Key": self._key(full)}
            if version_id:
                params["VersionId"] = version_id
            self.client.delete_object(**params)
            self.fs.invalidate_cache(full)
        except Exception as exc:
            self._raise(exc, f"delete of {path!r} failed")

    def link_lifetime(self, expiration: timedelta) -> timedelta | None:
        return None if self.link_base_url else min(expiration, MAX_LINK_EXPIRATION)

    def _sign(self, path: str, version_id: str | None, expiration: timedelta) -> str:
        if expiration > MAX_LINK_EXPIRATION or expiration.total_seconds() < 1:
            raise ConfigurationError(
                f"S3 links live between 1 second and {MAX_LINK_EXPIRATION.days} days; got {expiration}"
            )
        params: dict[str, Any] = {"Bucket": self.config.bucket, "Key": self._key(path)}
        if version_id:
            params["VersionId"] = version_id
        url: str = self.client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=int(expiration.total_seconds())
        )
        return url

    def close(self) -> None:
        self.client.close()
