"""The ``gcs`` provider: Google Cloud Storage through gcsfs. Install with
``pip install 'ocs-transfer[gcs]'``.

Uploads are resumable uploads in ``chunk_size`` chunks (simple uploads below
one chunk); either way the object appears only when complete, and a failed
upload cancels its resumable session. Verification compares the CRC32C GCS
reports (or its MD5) with the one computed while reading the source. Version
ids are GCS generations.

Credentials, explicit before implicit:

1. ``service_account_json`` (the key file's content, e.g. a :class:`Secret`,
   or a dict) or ``service_account_file`` (a path) in the credentials;
2. ``anonymous=True`` in the config (emulators, public buckets);
3. otherwise Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``,
   gcloud login, the metadata server).

Signed links need a service-account key (1.); other credentials cannot sign.

Neither gcsfs nor google-auth is imported until a store is built.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import IO, Any, ClassVar, Self

import attrs

from ..exceptions import (
    ConfigurationError,
    CredentialError,
    OcsTransferError,
    PermissionDeniedError,
    TransientStorageError,
)
from ..redact import Secret, redact
from ..retry import translate
from ..settings import Settings
from .bucket import BucketStore, content_disposition
from .hashing import Hasher, HashingReader, iter_chunks
from .s3_upload import Crc32cHasher, MiB

__all__ = ["GCSStore"]

log = logging.getLogger(__name__)

INSTALL_HINT = "the gcs provider needs gcsfs and crc32c: pip install 'ocs-transfer[gcs]'"
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
#: The longest a V4 signed URL may live.
MAX_LINK_EXPIRATION = timedelta(days=7)
GOOGLE_ENDPOINT = "https://storage.googleapis.com"
#: GCS wants resumable chunks in multiples of 256 KiB.
CHUNK_QUANTUM = 256 * 1024


def _service_account_info(credentials: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = credentials.get("service_account_json")
    if raw:
        if isinstance(raw, Secret):
            raw = raw.reveal()
        if isinstance(raw, Mapping):
            return dict(raw)
        try:
            info = json.loads(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(
                "service_account_json is not valid JSON; paste the whole key file downloaded from the Google Cloud"
                " console (IAM > Service accounts > Keys)"
            ) from None
        if not isinstance(info, dict):
            raise ConfigurationError("service_account_json must be a JSON object (the service-account key file)")
        return info
    path = credentials.get("service_account_file")
    if path:
        try:
            with open(str(path), encoding="utf-8") as fh:
                info = json.load(fh)
        except OSError as exc:
            raise ConfigurationError(f"cannot read service_account_file {str(path)!r}: {exc.strerror}") from None
        except ValueError:
            raise ConfigurationError(f"service_account_file {str(path)!r} is not a JSON key file") from None
        return dict(info)
    return None


def translate_gcs_error(exc: BaseException, message: str, *, secrets: tuple[Any, ...] = ()) -> OcsTransferError:
    if isinstance(exc, OcsTransferError):
        return exc
    name = type(exc).__name__
    if name in ("DefaultCredentialsError", "RefreshError"):
        detail = redact(str(exc), secrets)
        if "invalid_grant" in detail or name == "RefreshError":
            return CredentialError(f"{message}: Google refused the credentials ({detail}); re-authorise")
        return ConfigurationError(
            f"{message}: no Google credentials found ({detail}). Give a service-account key, set"
            " GOOGLE_APPLICATION_CREDENTIALS, run 'gcloud auth application-default login', or set anonymous=True"
        )
    if "Invalid Content-Range" in str(exc):
        # A connection cut mid-chunk: GCS kept part of the chunk, and gcsfs
        # resent from its own offset instead of the server's. The object was
        # never committed; a new upload session (a retry) starts clean.
        return TransientStorageError(
            f"{message}: the resumable upload lost its place after a broken connection ({redact(str(exc), secrets)});"
            " retry to start a new upload"
        )
    return translate(exc, message, secrets=secrets)


class GCSStore(BucketStore):
    """Objects in a Google Cloud Storage bucket, under an optional prefix."""

    name: ClassVar[str] = "gcs"
    schemes: ClassVar[tuple[str, ...]] = ("gs", "gcs")
    supports_versioning: ClassVar[bool] = True
    credential_fields: ClassVar[tuple[str, ...]] = ("service_account_json", "service_account_file")
    endpoint_options: ClassVar[tuple[str, ...]] = ("endpoint_url",)
    links_hold_credentials: ClassVar[bool] = True  #: signed with the key id (and session token)
    translator = staticmethod(translate_gcs_error)

    @classmethod
    def ambient_identity(cls, options: Mapping[str, Any], credentials: Mapping[str, Any]) -> str | None:
        if credentials.get("service_account_json") or options.get("anonymous") is True:
            return None
        if credentials.get("service_account_file"):
            return "a key file on this server (service_account_file); paste the key as service_account_json"
        return "Google Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata server"

    @attrs.frozen(kw_only=True)
    class Config:
        bucket: str = attrs.field()
        prefix: str = ""
        project: str | None = None
        endpoint_url: str | None = None  #: e.g. an emulator's http://127.0.0.1:PORT; None means Google
        anonymous: bool = False  #: no credentials (emulators, public buckets)
        chunk_size: int = attrs.field(
            default=8 * MiB
        )  #: resumable upload chunk (a multiple of 256 KiB); memory is about 2 chunks
        timeout: float = 60.0  #: seconds per request

        @bucket.validator
        def _check_bucket(self, _: Any, value: str) -> None:
            if not value or "/" in value:
                raise ConfigurationError(f"GCS bucket must be a bucket name without '/', got {value!r}")

        @chunk_size.validator
        def _check_chunk(self, _: Any, value: int) -> None:
            if value < CHUNK_QUANTUM or value % CHUNK_QUANTUM:
                raise ConfigurationError(f"GCS chunk_size must be a positive multiple of 256 KiB, got {value}")

    def __init__(
        self,
        fs: Any,
        root: str,
        *,
        config: GCSStore.Config,
        signer: Any = None,
        secrets: tuple[Secret | str | None, ...] = (),
    ) -> None:
        super().__init__(fs, root, chunk_size=config.chunk_size, secrets=secrets)
        self.config = config
        self.signer = signer  #: service-account credentials able to sign URLs, when given

    def __repr__(self) -> str:
        return f"GCSStore(bucket={self.config.bucket!r}, prefix={self.config.prefix!r})"

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: Any,
        credentials: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
    ) -> Self:
        if not isinstance(config, cls.Config):
            raise ConfigurationError(f"the gcs provider needs a GCSStore.Config, got {type(config).__name__}")
        try:
            import crc32c  # noqa: F401 - checked here so the error names the extra
            import gcsfs
        except ImportError as exc:
            raise ConfigurationError(INSTALL_HINT) from exc
        info = _service_account_info(credentials or {})
        signer = None
        secrets: tuple[Secret | str | None, ...] = ()
        if info is not None:
            from google.oauth2 import service_account

            key = info.get("private_key")
            secrets = (key,) if isinstance(key, str) else ()
            try:
                signer = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    info, scopes=list(SCOPES)
                )
            except (ValueError, KeyError) as exc:
                raise CredentialError(
                    f"the service-account key is incomplete or malformed ({type(exc).__name__}); download a new"
                    " JSON key for the service account"
                ) from None
        token: Any = "anon" if config.anonymous else (signer or "google_default")
        project = config.project or (info or {}).get("project_id")
        try:
            fs = gcsfs.GCSFileSystem(
                project=project or "_",
                token=token,
                endpoint_url=config.endpoint_url,
                consistency="none",  # we verify ourselves, against the hashes of the bytes we read
                requests_timeout=config.timeout,
                version_aware=False,  # '#' and '?' are legal in object names
                skip_instance_cache=True,
                session_kwargs={"trace_configs": [_same_origin_only(config.endpoint_url or GOOGLE_ENDPOINT)]},
            )
        except Exception as exc:
            raise translate_gcs_error(exc, "setting up the GCS client failed", secrets=secrets) from exc
        return cls(fs, cls.bucket_root(config.bucket, config.prefix), config=config, signer=signer, secrets=secrets)

    @classmethod
    def config_from_settings(cls, settings: Settings, **options: Any) -> Any:
        return cls.Config(bucket=options.pop("bucket", settings.bucket), **options)

    # -- writing -------------------------------------------------------------------------

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
        out = self.fs.open(
            path,
            "wb",
            block_size=self.config.chunk_size,
            content_type=content_type or "application/octet-stream",
            metadata=dict(metadata) if metadata else None,
            fixed_key_metadata={"content_disposition": content_disposition(path.rsplit("/", 1)[-1])},
            consistency="none",
        )
        try:
            for chunk in iter_chunks(reader, self.config.chunk_size):
                out.write(chunk)
        except BaseException:
            # Closing would commit what was sent so far: mark the file closed so
            # nothing ever commits, and cancel the resumable session.
            out.closed = True
            endpoint = self.config.endpoint_url or GOOGLE_ENDPOINT
            if out.location and _origin(out.location) == _origin(endpoint):  # never DELETE elsewhere
                _cancel_session(out.location, self.config.timeout)
            raise
        out.close()
        self.fs.invalidate_cache(path)

    def _extra_hashers(self) -> dict[str, Hasher]:
        return {"crc32c": Crc32cHasher()}

    def _native_checksum(self, info: Mapping[str, Any]) -> tuple[str, str] | None:
        if info.get("crc32c"):
            return "crc32c", str(info["crc32c"])
        if info.get("md5Hash"):
            return "md5-base64", str(info["md5Hash"])
        return None

    def _expected_checksum(self, algorithm: str, digests: Mapping[str, str]) -> str | None:
        if algorithm == "md5-base64":
            return base64.b64encode(bytes.fromhex(digests["md5"])).decode()
        return digests.get(algorithm)

    def _version_id(self, info: Mapping[str, Any]) -> str | None:
        generation = info.get("generation")
        return str(generation) if generation else None

    def _info_raw(self, full: str, version_id: str | None = None) -> dict[str, Any]:
        self.fs.invalidate_cache(full)
        if version_id is None:
            return dict(self.fs.info(full))
        info = dict(self.fs.info(full, generation=version_id))
        if str(info.get("generation")) != str(version_id):
            # A server that keeps no generations answers with the live object.
            raise FileNotFoundError(f"{full} has no generation {version_id}")
        return info

    # -- the rest of the contract ----------------------------------------------------------

    def open(self, path: str, version_id: str | None = None) -> IO[bytes]:
        if version_id is None:
            return super().open(path)
        full = self._full(path)
        try:
            self._info_raw(full, version_id)
            return self.fs.open(full, "rb", generation=version_id)  # type: ignore[no-any-return]
        except Exception as exc:
            self._raise(exc, f"open of {path!r} (generation {version_id}) failed")

    def delete_file(self, path: str, version_id: str | None = None) -> None:
        """Delete the object; with ``version_id`` (a generation), that one."""
        if version_id is None:
            super().delete_file(path)
            return
        full = self._full(path)
        bucket, _, key = full.partition("/")
        try:
            self._info_raw(full, version_id)
            self.fs.call("DELETE", "b/{}/o/{}", bucket, key, generation=version_id, json_out=False)
            self.fs.invalidate_cache(full)
        except Exception as exc:
            self._raise(exc, f"delete of {path!r} (generation {version_id}) failed")

    def link_lifetime(self, expiration: timedelta) -> timedelta | None:
        return None if self.link_base_url else min(expiration, MAX_LINK_EXPIRATION)

    def _sign(self, path: str, version_id: str | None, expiration: timedelta) -> str:
        if self.signer is None:
            raise ConfigurationError(
                "GCS signed links need a service-account key: give 'service_account_json' (the key file's content)"
                " or 'service_account_file' in the credentials; Application Default Credentials from gcloud or"
                " anonymous access cannot sign"
            )
        if expiration > MAX_LINK_EXPIRATION or expiration.total_seconds() < 1:
            raise ConfigurationError(
                f"GCS signed links live between 1 second and {MAX_LINK_EXPIRATION.days} days; got {expiration}"
            )
        from google.cloud import storage

        bucket, _, key = path.partition("/")
        # Building a client makes no request; signing happens locally with the key.
        client = storage.Client(project=self.fs.project, credentials=self.signer)
        url: str = (
            client.bucket(bucket)
            .blob(key)
            .generate_signed_url(
                version="v4",
                expiration=expiration,
                method="GET",
                generation=int(version_id) if version_id else None,
                credentials=self.signer,
                api_access_endpoint=self.config.endpoint_url or "https://storage.googleapis.com",
            )
        )
        return url


def _origin(url: Any) -> tuple[str, str, int | None]:
    from yarl import URL

    parsed = URL(str(url))
    return (parsed.scheme or "").lower(), (parsed.host or "").lower(), parsed.port


def _same_origin_only(endpoint: str) -> Any:
    """An aiohttp trace config refusing every request gcsfs makes (followed
    redirects and resumable-session URIs included) to another origin than
    ``endpoint``: a server must not send the service elsewhere."""
    import aiohttp

    allowed = _origin(endpoint)

    def refuse(url: Any) -> None:
        if _origin(url) != allowed:
            raise PermissionDeniedError(
                f"the GCS endpoint sent the request to another host ({_origin(url)[1]}); only {allowed[1]} is used"
            )

    async def on_start(session: Any, context: Any, params: Any) -> None:
        refuse(params.url)

    async def on_redirect(session: Any, context: Any, params: Any) -> None:
        location = params.response.headers.get("Location")
        if location:
            refuse(params.response.url.join(type(params.response.url)(location)))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_redirect.append(on_redirect)
    return trace


def _cancel_session(location: str, timeout: float) -> None:
    """Cancel a resumable upload session: one DELETE on its URI (the URI is
    its own authorisation), best effort. An uncancelled session never becomes
    an object; GCS drops it after a week."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(location.replace("&ifGenerationMatch=0", ""), method="DELETE")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=min(timeout, 10.0)):  # noqa: S310 - the session URI GCS gave us
            pass
    except urllib.error.HTTPError as exc:
        if exc.code not in (499, 404, 410):  # 499 is GCS's "cancelled"
            log.info("cancelling a GCS upload session answered %s", exc.code)
    except OSError as exc:
        log.warning("could not cancel a GCS upload session: %s", type(exc).__name__)
