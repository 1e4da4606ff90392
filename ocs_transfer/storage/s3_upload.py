"""Streaming S3 uploads with bounded memory and full speed.

The uploader reads its source (in a store, the hashing reader that computes
MD5 and SHA-256 in the same pass) one part at a time and sends it through a
botocore S3 client:

- A source shorter than one part goes up in a single ``PutObject`` carrying
  its ``x-amz-checksum-crc32c``.
- Anything longer is a multipart upload with a fixed part size and at most
  ``concurrency`` parts in flight, so memory stays under about
  ``(concurrency + 2) x part_size`` whatever the file size. Each part carries
  its CRC32C, which servers that support S3's additional checksums verify on
  receipt. The object appears only when the upload completes.
- On any failure or cancellation the multipart upload is aborted, and the
  abort itself is retried, so no orphaned parts are left behind.

What S3 then reports for the object is checked by the store against
:class:`Crc32cHasher` / :class:`CompositeCrc32cHasher`, computed while reading:
the full-object CRC32C for single PUTs, the composite ``<crc>-N`` form for
multipart uploads. A multipart ETag is never trusted: it is not an MD5 of the
content.

This module needs only a botocore S3 client and google-crc32c.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import attrs

from ..exceptions import (
    ConfigurationError,
    CredentialError,
    IntegrityError,
    OcsTransferError,
    TransferCancelledError,
)
from ..retry import call_with_retries, translate

__all__ = [
    "S3Crc32cHasher",
    "Crc32cHasher",
    "S3Uploader",
    "UploadOutcome",
    "crc32c_module",
    "translate_s3_error",
]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: S3's limits for multipart uploads.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000


def crc32c_module() -> Any:
    """google_crc32c, or a ConfigurationError saying how to install it."""
    try:
        import google_crc32c
    except ImportError as exc:  # pragma: no cover - the s3 and gcs extras depend on it
        raise ConfigurationError(
            "checksums need google-crc32c; install it with: pip install 'ocs-transfer[s3]'"
        ) from exc
    return google_crc32c


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class Crc32cHasher:
    """CRC32C of a whole stream; ``hexdigest()`` gives it base64-encoded, the
    form S3 and GCS report."""

    def __init__(self) -> None:
        self._crc = crc32c_module().Checksum()

    def update(self, data: bytes, /) -> None:
        self._crc.update(data)

    def hexdigest(self) -> str:
        return _b64(self._crc.digest())


class S3Crc32cHasher:
    """The CRC32C S3 reports for this stream uploaded by :class:`S3Uploader`,
    computed in one pass: below ``multipart_threshold`` bytes (a single PUT)
    the plain CRC32C, base64; otherwise the composite form for ``part_size``
    parts, the CRC32C of the concatenated part CRC32Cs, base64, then
    ``-<parts>``. Independent of how the stream is chunked when read."""

    def __init__(self, part_size: int, multipart_threshold: int | None = None) -> None:
        self._mod = crc32c_module()
        self.part_size = part_size
        self.threshold = part_size if multipart_threshold is None else multipart_threshold
        self._digests: list[bytes] = []
        self._current = self._mod.Checksum()
        self._filled = 0
        self._total = 0
        #: CRC32C of everything so far, kept only while the stream may still be a single PUT
        self._whole: Any = self._mod.Checksum() if self.threshold > part_size else None

    def update(self, data: bytes, /) -> None:
        if self._whole is not None:
            if self._total + len(data) < self.threshold:
                self._whole.update(data)
            else:
                self._whole = None
        self._total += len(data)
        offset = 0
        while offset < len(data):
            take = min(len(data) - offset, self.part_size - self._filled)
            # google_crc32c takes only bytes: slice (copy) only when a part boundary splits the chunk.
            self._current.update(data if take == len(data) else bytes(data[offset : offset + take]))
            self._filled += take
            offset += take
            if self._filled == self.part_size:
                self._digests.append(self._current.digest())
                self._current = self._mod.Checksum()
                self._filled = 0

    def hexdigest(self) -> str:
        if self._total < self.threshold:  # a single PUT
            if not self._digests:
                return _b64(self._current.digest())
            return _b64(self._whole.digest())
        digests = list(self._digests)
        if self._filled:
            digests.append(self._current.digest())
        return f"{_b64(self._mod.Checksum(b''.join(digests)).digest())}-{len(digests)}"


@attrs.frozen
class UploadOutcome:
    version_id: str | None
    etag: str | None
    parts: int  #: 0 for a single PUT


def _read_full(source: IO[bytes], size: int) -> bytes:
    """Read ``size`` bytes, or fewer only at EOF (pipes return short reads)."""
    data = source.read(size)
    if not data or len(data) == size:
        return data or b""
    pieces = [data]
    have = len(data)
    while have < size:
        more = source.read(size - have)
        if not more:
            break
        pieces.append(more)
        have += len(more)
    return b"".join(pieces)


@attrs.define
class S3Uploader:
    """Uploads streams to one bucket through a botocore S3 ``client``.

    ``part_size`` and ``concurrency`` bound memory; the client needs at least
    ``concurrency`` pooled connections. ``secrets`` are redacted from error
    messages.
    """

    client: Any
    bucket: str
    part_size: int = 8 * MiB
    concurrency: int = 4
    multipart_threshold: int = 16 * MiB  #: smaller sources go up in one PUT (held in memory)
    secrets: tuple[Any, ...] = ()

    def __attrs_post_init__(self) -> None:
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise ConfigurationError(
                f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes, got {self.part_size}"
            )
        if not self.part_size <= self.multipart_threshold <= MAX_PART_SIZE:
            raise ConfigurationError(
                f"multipart_threshold must be between part_size ({self.part_size}) and {MAX_PART_SIZE} bytes,"
                f" got {self.multipart_threshold}"
            )
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, got {self.concurrency}")

    def upload(
        self,
        source: IO[bytes],
        key: str,
        *,
        extra_args: Mapping[str, Any] | None = None,
        cancel: threading.Event | None = None,
    ) -> UploadOutcome:
        """Stream ``source`` from its position to EOF into ``key``: one PUT
        below ``multipart_threshold`` bytes, a multipart upload otherwise."""
        extra = dict(extra_args or {})
        # Read whole parts up to the threshold (rounded up), so every part but the last is full.
        body = _read_full(source, -(-self.multipart_threshold // self.part_size) * self.part_size)
        if len(body) >= self.multipart_threshold:
            # Large: the first parts are slices of what was read (one copy, once per upload).
            parts = [body[i : i + self.part_size] for i in range(0, len(body), self.part_size)]
            del body
            return self._multipart(parts, source, key, extra, cancel)
        _check_cancel(cancel)
        crc = _b64(crc32c_module().Checksum(body).digest())
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ChecksumCRC32C=crc, **extra)
        except Exception as exc:
            raise self._translate(exc, f"upload of {key!r} failed") from exc
        return UploadOutcome(response.get("VersionId"), response.get("ETag"), 0)

    # -- multipart ---------------------------------------------------------------------------

    def _multipart(
        self,
        first: list[bytes],
        source: IO[bytes],
        key: str,
        extra: dict[str, Any],
        cancel: threading.Event | None,
    ) -> UploadOutcome:
        _check_cancel(cancel)
        try:
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32C", **extra
            )
        except Exception as exc:
            raise self._translate(exc, f"starting the multipart upload of {key!r} failed") from exc
        upload_id: str = created["UploadId"]
        try:
            parts = self._send_parts(first, source, key, upload_id, cancel)
            _check_cancel(cancel)
            try:
                done = self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except Exception as exc:
                raise self._translate(exc, f"completing the multipart upload of {key!r} failed") from exc
        except BaseException:
            self.abort(key, upload_id)
            raise
        return UploadOutcome(done.get("VersionId"), done.get("ETag"), len(parts))

    def _send_parts(
        self,
        first: list[bytes],
        source: IO[bytes],
        key: str,
        upload_id: str,
        cancel: threading.Event | None,
    ) -> list[dict[str, Any]]:
        crc_mod = crc32c_module()
        # A slot is taken before each read after the first and given back when
        # that part is sent: at most `concurrency` parts wait or fly, plus the
        # one being read.
        slots = threading.BoundedSemaphore(self.concurrency)
        failed = threading.Event()
        errors: list[BaseException] = []
        done: dict[int, dict[str, Any]] = {}
        lock = threading.Lock()

        def send(number: int, data: bytes) -> None:
            try:
                if failed.is_set():
                    return
                crc = _b64(crc_mod.Checksum(data).digest())
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, ChecksumCRC32C=crc
                )
                with lock:
                    done[number] = {"PartNumber": number, "ETag": response["ETag"], "ChecksumCRC32C": crc}
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                failed.set()
            finally:
                slots.release()

        number = 0
        # `first` holds the parts read before deciding on a multipart upload;
        # popping them means no frame keeps a part alive after it is sent.
        data = first.pop(0)
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="ocs-transfer-s3-part")
        try:
            slots.acquire()
            while data:
                number += 1
                if number > MAX_PARTS:
                    raise ConfigurationError(
                        f"{key!r} needs more than {MAX_PARTS} parts of {self.part_size} bytes; raise part_size"
                    )
                pool.submit(send, number, data)
                del data
                # Wait for a free slot before reading more: this bounds memory.
                while not slots.acquire(timeout=0.5):
                    _check_cancel(cancel)
                if failed.is_set():
                    break
                _check_cancel(cancel)
                data = first.pop(0) if first else _read_full(source, self.part_size)
        except BaseException:
            failed.set()  # parts not yet started are skipped
            raise
        finally:
            pool.shutdown(wait=True)
        if errors:
            exc = errors[0]
            raise self._translate(exc, f"uploading a part of {key!r} failed") from exc
        return [done[n] for n in range(1, number + 1)]

    def abort(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload, retrying the abort; never raises (the
        upload's own error is what the caller must see)."""

        def attempt() -> None:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception as exc:
                response = getattr(exc, "response", None)
                if isinstance(response, Mapping) and (response.get("Error") or {}).get("Code") == "NoSuchUpload":
                    return
                raise

        try:
            call_with_retries(attempt, attempts=5, base_delay=0.2, max_delay=5)
        except Exception as exc:
            log.error(
                "could not abort the multipart upload of %s in bucket %s (upload id %s); its parts cost storage"
                " until a lifecycle rule removes them: %s",
                key,
                self.bucket,
                upload_id,
                type(exc).__name__,
            )

    def _translate(self, exc: BaseException, message: str) -> BaseException:
        if not isinstance(exc, Exception):
            return exc
        return translate_s3_error(exc, message, secrets=self.secrets)


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise TransferCancelledError("the upload was cancelled; nothing was left at the destination")


#: S3 error codes that mean the credentials themselves are wrong.
_CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "AuthorizationHeaderMalformed"}
)


def translate_s3_error(exc: Exception, message: str, *, secrets: tuple[Any, ...] = ()) -> OcsTransferError:
    """:func:`ocs_transfer.retry.translate` plus what only S3 says: a bad
    digest is an integrity failure (a retry uploads again), refused keys are a
    credential error, a missing credential chain is a configuration error."""
    from ..redact import redact

    if isinstance(exc, OcsTransferError):
        return exc
    response = getattr(exc, "response", None)
    code = (response.get("Error") or {}).get("Code") if isinstance(response, Mapping) else None
    detail = redact(f"{type(exc).__name__}: {exc}", secrets)
    if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
        return IntegrityError(f"{message}: the server received different bytes than were sent ({detail})")
    if code in _CREDENTIAL_CODES:
        return CredentialError(
            f"{message}: the S3 credentials were refused; check the access key and secret ({detail})"
        )
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError", "NoRegionError"):
        return ConfigurationError(
            f"{message}: {detail}. Give key and secret in the store's credentials, or set up the AWS environment"
            " variables or a profile"
        )
    return translate(exc, message, secrets=secrets)
