"""Streaming S3 uploads with bounded memory, full speed and end-to-end checks.

One read of the source feeds everything: the bytes go to S3 in parts while
MD5, SHA-256 and CRC32C are computed on the way. MD5 and SHA-256 run on their
own threads (hashlib releases the GIL), so on a machine with two cores the MD5
of the whole file, not the sequence of hashes, bounds the speed.

- A source shorter than one part goes up in a single ``PutObject`` carrying
  ``Content-MD5`` and ``x-amz-checksum-crc32c``: the server checks both.
- Anything longer is a multipart upload with a fixed part size and at most
  ``concurrency`` parts in flight; memory stays under
  ``(concurrency + 1) x part_size`` whatever the file size. Each part carries
  its CRC32C, which servers that support S3's additional checksums verify on
  receipt. On any failure or cancellation the upload is aborted, and the abort
  itself is retried, so no orphaned parts are left behind.
- After completion the object is checked: its size, and its CRC32C as the
  server reports it (the composite ``<crc>-N`` form for multipart uploads)
  against the one we computed. A server that reports no usable checksum gets
  the object read back and its SHA-256 compared. A multipart ETag is never
  trusted: it is not an MD5 of the content.

The module only needs a botocore S3 client; it never imports boto3 itself.
"""

from __future__ import annotations

import base64
import hashlib
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

__all__ = ["UploadResult", "S3Uploader", "composite_crc32c", "translate_s3_error"]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: S3's limits for multipart uploads.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000

Progress = Callable[[int], None]


def _crc32c() -> Any:
    try:
        import google_crc32c
    except ImportError as exc:  # pragma: no cover - the s3 extra depends on it
        from ..exceptions import ConfigurationError

        raise ConfigurationError(
            "S3 uploads need google-crc32c; install it with: pip install 'ocs-transfer[s3]'"
        ) from exc
    return google_crc32c


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def composite_crc32c(part_digests: list[bytes]) -> str:
    """S3's checksum of a multipart upload: the CRC32C of the concatenated
    part CRC32Cs, base64, followed by ``-<number of parts>``."""
    crc = _crc32c().Checksum(b"".join(part_digests))
    return f"{_b64(crc.digest())}-{len(part_digests)}"


@attrs.frozen(kw_only=True)
class UploadResult:
    size: int
    md5: str
    sha256: str
    crc32c: str  #: as S3 reports it: base64, with ``-N`` for multipart uploads
    parts: int  #: 0 for a single PUT
    version_id: str | None
    etag: str | None
    verified_by: str  #: "crc32c" (the server's checksum) or "readback" (SHA-256 of a re-read)


class _Hashes:
    """MD5 and SHA-256 of a stream, each updated in order on its own thread."""

    def __init__(self) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self._md5_pool = ThreadPoolExecutor(1, thread_name_prefix="md5")
        self._sha_pool = ThreadPoolExecutor(1, thread_name_prefix="sha256")

    def update(self, data: bytes) -> list[Future[None]]:
        return [self._md5_pool.submit(self.md5.update, data), self._sha_pool.submit(self.sha256.update, data)]

    def close(self) -> None:
        self._md5_pool.shutdown(wait=True, cancel_futures=True)
        self._sha_pool.shutdown(wait=True, cancel_futures=True)


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

    ``part_size`` and ``concurrency`` bound memory (about
    ``(concurrency + 1) x part_size``); the client needs at least
    ``concurrency`` pooled connections. ``secrets`` are redacted from error
    messages.
    """

    client: Any
    bucket: str
    part_size: int = 16 * MiB
    concurrency: int = 4
    verify_readback_limit: int | None = None  #: None: always read back when the server has no checksum
    secrets: tuple[Any, ...] = ()

    def __attrs_post_init__(self) -> None:
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise ConfigurationError(
                f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes, got {self.part_size}"
            )
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, got {self.concurrency}")

    # -- public ----------------------------------------------------------------------------

    def upload(
        self,
        source: IO[bytes],
        key: str,
        *,
        extra_args: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> UploadResult:
        """Stream ``source`` from its position to EOF into ``key``; verify it."""
        extra = dict(extra_args or {})
        first = _read_full(source, self.part_size)
        if len(first) < self.part_size:
            result = self._put_single(first, key, extra, cancel)
            if progress is not None and first:
                progress(len(first))
            return result
        # Hand the first part over in a list so no frame keeps it alive after it is sent.
        holder = [first]
        del first
        return self._put_multipart(holder, source, key, extra, progress, cancel)

    # -- single PUT ------------------------------------------------------------------------

    def _put_single(self, data: bytes, key: str, extra: dict[str, Any], cancel: threading.Event | None) -> UploadResult:
        _check_cancel(cancel)
        md5 = hashlib.md5(data, usedforsecurity=False)
        sha256 = hashlib.sha256(data).hexdigest()
        crc = _b64(_crc32c().Checksum(data).digest())
        try:
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentMD5=_b64(md5.digest()),
                ChecksumCRC32C=crc,
                **extra,
            )
        except Exception as exc:
            raise self._translate(exc, f"upload of {key!r} failed") from exc
        return self._verify(
            key,
            size=len(data),
            md5=md5.hexdigest(),
            sha256=sha256,
            crc=crc,
            parts=0,
            version_id=response.get("VersionId"),
            etag=response.get("ETag"),
        )

    # -- multipart ---------------------------------------------------------------------------

    def _put_multipart(
        self,
        first: list[bytes],
        source: IO[bytes],
        key: str,
        extra: dict[str, Any],
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> UploadResult:
        _check_cancel(cancel)
        try:
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32C", **extra
            )
        except Exception as exc:
            raise self._translate(exc, f"starting the multipart upload of {key!r} failed") from exc
        upload_id: str = created["UploadId"]
        try:
            size, part_crcs, etags, hashes = self._send_parts(first, source, key, upload_id, progress, cancel)
            _check_cancel(cancel)
            parts = [
                {"PartNumber": n, "ETag": etags[n], "ChecksumCRC32C": _b64(part_crcs[n - 1])}
                for n in range(1, len(part_crcs) + 1)
            ]
            try:
                done = self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except Exception as exc:
                raise self._translate(exc, f"completing the multipart upload of {key!r} failed") from exc
        except BaseException:
            self._abort(key, upload_id)
            raise
        return self._verify(
            key,
            size=size,
            md5=hashes.md5.hexdigest(),
            sha256=hashes.sha256.hexdigest(),
            crc=composite_crc32c(part_crcs),
            parts=len(part_crcs),
            version_id=done.get("VersionId"),
            etag=done.get("ETag"),
        )

    def _send_parts(
        self,
        first: list[bytes],
        source: IO[bytes],
        key: str,
        upload_id: str,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> tuple[int, list[bytes], dict[int, str], _Hashes]:
        crc_mod = _crc32c()
        slots = threading.BoundedSemaphore(self.concurrency)
        failed = threading.Event()
        errors: list[BaseException] = []
        etags: dict[int, str] = {}
        crcs: dict[int, bytes] = {}
        lock = threading.Lock()
        hashes = _Hashes()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3-part")

        def send(number: int, data: bytes) -> None:
            try:
                digest = crc_mod.Checksum(data).digest()
                with lock:
                    crcs[number] = digest
                if failed.is_set():
                    return
                response = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ChecksumCRC32C=_b64(digest),
                )
                with lock:
                    etags[number] = response["ETag"]
                if progress is not None:
                    progress(len(data))
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, which raises it
                with lock:
                    errors.append(exc)
                failed.set()

        def release_when_done(futures: list[Future[None]]) -> None:
            remaining = [len(futures)]

            def one_done(_: Future[None]) -> None:
                with lock:
                    remaining[0] -= 1
                    last = remaining[0] == 0
                if last:
                    slots.release()

            for fut in futures:
                fut.add_done_callback(one_done)

        size = 0
        number = 0
        data = first.pop()
        try:
            while data:
                number += 1
                if number > MAX_PARTS:
                    raise ConfigurationError(
                        f"{key!r} needs more than {MAX_PARTS} parts of {self.part_size} bytes; raise part_size"
                    )
                size += len(data)
                release_when_done([*hashes.update(data), pool.submit(send, number, data)])
                del data
                # Wait for a free slot before reading more: this bounds memory.
                while not slots.acquire(timeout=0.5):
                    _check_cancel(cancel)
                if failed.is_set():
                    break
                _check_cancel(cancel)
                data = _read_full(source, self.part_size)
        finally:
            pool.shutdown(wait=True)
            hashes.close()
        if errors:
            exc = errors[0]
            raise self._translate(exc, f"uploading part of {key!r} failed") from exc
        return size, [crcs[n] for n in range(1, number + 1)], etags, hashes

    def _abort(self, key: str, upload_id: str) -> None:
        def abort() -> None:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code == "NoSuchUpload":
                    return
                raise

        try:
            call_with_retries(abort, attempts=5, base_delay=0.2, max_delay=5)
        except Exception as exc:  # noqa: BLE001 - the upload's own error is what the caller must see
            log.error(
                "could not abort multipart upload of %s in bucket %s (id %s); it will cost storage until a lifecycle"
                " rule removes it: %s",
                key,
                self.bucket,
                upload_id,
                type(exc).__name__,
            )

    # -- verification ---------------------------------------------------------------------

    def _verify(
        self,
        key: str,
        *,
        size: int,
        md5: str,
        sha256: str,
        crc: str,
        parts: int,
        version_id: str | None,
        etag: str | None,
    ) -> UploadResult:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if version_id:
            params["VersionId"] = version_id
        try:
            head = call_with_retries(lambda: self.client.head_object(**params), attempts=3, base_delay=0.2)
        except Exception as exc:
            raise self._translate(exc, f"checking {key!r} after upload failed") from exc
        stored_size = head.get("ContentLength")
        if stored_size != size:
            self._remove_bad(key, version_id)
            raise IntegrityError(
                f"{key!r}: the server holds {stored_size} bytes but {size} were read from the source; removed"
            )
        reported = head.get("ChecksumCRC32C")
        usable = reported is not None and (
            (parts == 0 and "-" not in reported)
            or (parts > 0 and (head.get("ChecksumType") == "COMPOSITE" or reported.endswith(f"-{parts}")))
        )
        if usable:
            expected = crc.split("-")[0] if parts and "-" not in reported else crc
            if reported != expected:
                self._remove_bad(key, version_id)
                raise IntegrityError(f"{key!r}: the server's CRC32C {reported} differs from ours {crc}; removed")
            verified_by = "crc32c"
        else:
            self._readback(key, version_id, size, sha256)
            verified_by = "readback"
        return UploadResult(
            size=size,
            md5=md5,
            sha256=sha256,
            crc32c=crc,
            parts=parts,
            version_id=version_id or head.get("VersionId"),
            etag=etag,
            verified_by=verified_by,
        )

    def _readback(self, key: str, version_id: str | None, size: int, sha256: str) -> None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        digest = hashlib.sha256()
        got = 0
        try:
            body = self.client.get_object(**params)["Body"]
            try:
                for chunk in body.iter_chunks(chunk_size=MiB):
                    digest.update(chunk)
                    got += len(chunk)
            finally:
                body.close()
        except Exception as exc:
            raise self._translate(exc, f"reading {key!r} back to verify it failed") from exc
        if got != size or digest.hexdigest() != sha256:
            self._remove_bad(key, version_id)
            raise IntegrityError(f"{key!r}: what the server returns differs from what was uploaded; removed")

    def _remove_bad(self, key: str, version_id: str | None) -> None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        try:
            call_with_retries(lambda: self.client.delete_object(**params), attempts=3, base_delay=0.2)
        except Exception as exc:  # noqa: BLE001 - the integrity error is what the caller must see
            log.error("could not remove the corrupt object %s: %s", key, type(exc).__name__)

    def _translate(self, exc: BaseException, message: str) -> BaseException:
        if not isinstance(exc, Exception):
            return exc
        return translate_s3_error(exc, message, secrets=self.secrets)


#: S3 error codes that mean the credentials themselves are wrong.
_CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "AuthorizationHeaderMalformed"}
)


def translate_s3_error(exc: Exception, message: str, *, secrets: tuple[Any, ...] = ()) -> OcsTransferError:
    """:func:`ocs_transfer.retry.translate` plus what only S3 says: a bad
    digest is an integrity failure (retry uploads again), refused keys are a
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


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise TransferCancelledError("the upload was cancelled; nothing was left at the destination")
