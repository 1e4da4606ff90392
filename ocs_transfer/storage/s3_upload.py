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

:attr:`UploadOutcome.crc32c` is what S3 then reports for the object when
the upload arrived intact, built from the CRC32Cs sent (each computed once,
from the buffer the store's hashing reader hashed): the full-object CRC32C
for single PUTs, the composite ``<crc>-N`` form for multipart uploads. The
store checks the object against it. A multipart ETag is never trusted: it
is not an MD5 of the content.

Parts are read straight into pooled buffers (:class:`~.hashing.BufferPool`)
and sent from them: no copy in Python, no fresh memory (and page faults) per
part. This module needs only a botocore S3 client and the ``crc32c``
package, whose CRC32C takes any buffer and releases the GIL.
"""

from __future__ import annotations

import base64
import ctypes
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
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
from .hashing import BufferPool, BufferRing, read_into

__all__ = [
    "Crc32cHasher",
    "S3Uploader",
    "UploadOutcome",
    "crc32c_function",
    "translate_s3_error",
]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: S3's limits for multipart uploads.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000


def crc32c_function() -> Callable[..., int]:
    """``crc32c.crc32c(data, value=0) -> int``, or a ConfigurationError saying
    how to install it."""
    try:
        from crc32c import crc32c
    except ImportError as exc:  # pragma: no cover - the s3 and gcs extras depend on it
        raise ConfigurationError("checksums need crc32c; install it with: pip install 'ocs-transfer[s3]'") from exc
    return crc32c  # type: ignore[no-any-return]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _b64_crc(value: int) -> str:
    return _b64(value.to_bytes(4, "big"))


class Crc32cHasher:
    """CRC32C of a whole stream; ``hexdigest()`` gives it base64-encoded, the
    form S3 and GCS report."""

    def __init__(self) -> None:
        self._crc32c = crc32c_function()
        self._value = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self._value = self._crc32c(data, self._value)

    def hexdigest(self) -> str:
        return _b64_crc(self._value)


@attrs.frozen
class UploadOutcome:
    version_id: str | None
    etag: str | None
    parts: int  #: 0 for a single PUT
    #: What S3 reports as the object's CRC32C if it holds what was sent: base64 (single PUT) or ``<base64>-<parts>``
    crc32c: str


def _fill(source: Any, view: memoryview) -> tuple[int, tuple[Future[None], ...]]:
    """Fill ``view`` from ``source``: through a :class:`HashingReader`'s
    ``fill`` (which hashes on the way, partly in the background: the
    futures), or any file object."""
    fill = getattr(source, "fill", None)
    if fill is not None:
        return fill(view)  # type: ignore[no-any-return]
    return read_into(source, view), ()


@functools.lru_cache(maxsize=32)
def _body_type(size: int) -> type[ctypes.Array[ctypes.c_char]]:
    def seek(self: Any, offset: int = 0, whence: int = 0) -> int:
        return 0  # nothing to rewind: every send starts at the first byte

    return type("RequestBody", (ctypes.c_char * size,), {"seek": seek, "__slots__": ()})


def _body(view: memoryview) -> Any:
    """``view`` as a request body, without a copy.

    botocore rewinds a body before a retry (``seek(0)``) unless it is
    bytes/bytearray/str, and urllib3 sends anything with the buffer protocol
    in one ``sendall`` (file-like objects go in 16 KiB reads). A ctypes array
    over the same memory has the buffer protocol (which a Python class of
    its own cannot have before 3.12), and this one has a ``seek``.
    """
    return _body_type(len(view)).from_buffer(view)


@attrs.define
class S3Uploader:
    """Uploads streams to one bucket through a botocore S3 ``client``.

    ``part_size`` and ``concurrency`` bound memory; the client needs at least
    ``concurrency`` pooled connections, and ``parameter_validation`` off
    (botocore's validator accepts only bytes, bytearray, str or file-like
    bodies, and our zero-copy bodies are none of these: see :func:`_body`). ``secrets`` are redacted from error
    messages. Thread-safe: one uploader serves concurrent uploads.
    """

    client: Any
    bucket: str
    part_size: int = 8 * MiB
    concurrency: int = 4
    multipart_threshold: int = 16 * MiB  #: smaller sources go up in one PUT (held in memory)
    secrets: tuple[Any, ...] = ()
    _first: BufferPool = attrs.field(init=False, repr=False)
    _parts: BufferPool = attrs.field(init=False, repr=False)

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
        # The first read covers the threshold in whole parts, so a multipart upload sends it as its first parts.
        # Reused buffers: a few uploads' worth is kept (fresh memory costs a page fault per 4 KiB).
        self._first = BufferPool(-(-self.multipart_threshold // self.part_size) * self.part_size, keep=4)
        self._parts = BufferPool(self.part_size, keep=self.concurrency + 1)

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
        with BufferRing(1, self._first) as ring:  # on exit: waits for the background MD5, gives the buffer back
            slot, view = ring.next()
            count, hashing = _fill(source, view)
            ring.hold(slot, *hashing)
            read = view[:count]
            if count >= self.multipart_threshold:
                parts = [read[at : at + self.part_size] for at in range(0, count, self.part_size)]
                return self._multipart(parts, source, key, extra, cancel)
            _check_cancel(cancel)
            crc = _b64_crc(crc32c_function()(read))
            try:
                response = self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=_body(read), ChecksumCRC32C=crc, **extra
                )
            except Exception as exc:
                raise self._translate(exc, f"upload of {key!r} failed") from exc
            return UploadOutcome(response.get("VersionId"), response.get("ETag"), 0, crc)

    # -- multipart ---------------------------------------------------------------------------

    def _multipart(
        self,
        first: list[memoryview],
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
        crcs = b"".join(base64.b64decode(part["ChecksumCRC32C"]) for part in parts)
        composite = f"{_b64_crc(crc32c_function()(crcs))}-{len(parts)}"
        return UploadOutcome(done.get("VersionId"), done.get("ETag"), len(parts), composite)

    def _send_parts(
        self,
        first: list[memoryview],
        source: IO[bytes],
        key: str,
        upload_id: str,
        cancel: threading.Event | None,
    ) -> list[dict[str, Any]]:
        """Send ``first`` (views of the first read) and then the rest of
        ``source`` part by part, ``concurrency`` at a time. Parts are read
        into a ring of ``concurrency + 1`` buffers: a buffer is refilled only
        once its part was sent, which bounds memory."""
        crc32c = crc32c_function()
        failed = threading.Event()
        done: dict[int, dict[str, Any]] = {}
        lock = threading.Lock()

        def send(number: int, data: memoryview) -> None:
            if failed.is_set():
                return  # the upload is over; its error is already on its way
            try:
                crc = _b64_crc(crc32c(data))
                response = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=_body(data),
                    ChecksumCRC32C=crc,
                )
            except BaseException:
                failed.set()
                raise
            with lock:
                done[number] = {"PartNumber": number, "ETag": response["ETag"], "ChecksumCRC32C": crc}

        sent: list[Future[None]] = []
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="ocs-transfer-s3-part")
        try:
            with BufferRing(self.concurrency + 1, self._parts) as ring:
                for data in first:
                    sent.append(pool.submit(send, len(sent) + 1, data))
                while not failed.is_set():
                    _check_cancel(cancel)
                    slot, view = ring.next()
                    count, hashing = _fill(source, view)
                    if not count:
                        break
                    if len(sent) == MAX_PARTS:
                        raise ConfigurationError(
                            f"{key!r} needs more than {MAX_PARTS} parts of {self.part_size} bytes; raise part_size"
                        )
                    sent.append(pool.submit(send, len(sent) + 1, view[:count]))
                    ring.hold(slot, *hashing, sent[-1])
        except BaseException:
            failed.set()  # parts not yet started are skipped
            raise
        finally:
            pool.shutdown(wait=True)
        for future in sent:
            exc = future.exception()
            if exc is not None:
                raise self._translate(exc, f"uploading a part of {key!r} failed") from exc
        return [done[n] for n in range(1, len(sent) + 1)]

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
