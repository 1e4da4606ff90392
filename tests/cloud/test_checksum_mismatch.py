"""A provider that reports a checksum other than ours (issue 20).

An HTTP proxy of our own sits between the real client (botocore, gcsfs) and
the real local server (moto, the GCS emulator) and rewrites what the server
says about a stored object: the ``x-amz-checksum-crc32c`` header of S3's
HEAD, the ``crc32c`` / ``md5Hash`` fields of GCS's object metadata. The upload
itself is untouched, so the bytes stored are right and only the report is
wrong: the store must believe the report, fail with :class:`IntegrityError`
(retryable) and remove the object; with a right MD5 and no CRC32C (GCS), the
MD5 comparison is what accepts it."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ocs_transfer.exceptions import IntegrityError
from ocs_transfer.retry import Kind, classify
from ocs_transfer.storage.gcs import GCSStore
from ocs_transfer.testing.servers import S3Endpoint

from .conftest import make_bucket, pattern, s3_store_for
from .test_gcs import emulator_client

#: (method, path, headers, body) -> (headers, body): what the proxy changes in a response
Rewrite = Callable[[str, str, dict[str, str], bytes], tuple[dict[str, str], bytes]]

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class RewritingProxy:
    """Forwards every request to ``upstream`` (host, port) and passes each
    response through ``rewrite`` (set by the test; identity at first).
    Counts the responses it changed in ``rewritten``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.rewrite: Rewrite | None = None
        self.rewritten = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                body = self._body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                if body or self.command in ("PUT", "POST", "PATCH"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    out_body = resp.read()
                    out_headers = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP}
                    length = resp.getheader("Content-Length")
                finally:
                    conn.close()
                if proxy.rewrite is not None:
                    new_headers, new_body = proxy.rewrite(self.command, self.path, out_headers, out_body)
                    if (new_headers, new_body) != (out_headers, out_body):
                        proxy.rewritten += 1
                    out_headers, out_body = new_headers, new_body
                    if self.command == "HEAD":
                        length = str(length) if length is not None else None
                    else:
                        length = str(len(out_body))
                self.send_response(resp.status, resp.reason)
                for k, v in out_headers.items():
                    self.send_header(k, v)
                if self.command == "HEAD":
                    if length is not None:
                        self.send_header("Content-Length", length)
                else:
                    self.send_header("Content-Length", str(len(out_body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out_body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def _upstream(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _flip(text: str) -> str:
    """A different value of the same form (base64 of the same length)."""
    raw = bytearray(base64.b64decode(text.split("-")[0]))
    raw[0] ^= 0xFF
    rest = text[len(text.split("-")[0]) :]
    return base64.b64encode(bytes(raw)).decode() + rest


def assert_integrity_error(put: Callable[[], Any]) -> IntegrityError:
    with pytest.raises(IntegrityError) as info:
        put()
    assert type(info.value) is IntegrityError
    assert classify(info.value).kind is Kind.RETRY  # a retry uploads again
    return info.value


# -- S3 -------------------------------------------------------------------------------


@pytest.fixture
def s3_proxy(moto_endpoint: S3Endpoint) -> Iterator[RewritingProxy]:
    proxy = RewritingProxy(_upstream(moto_endpoint.url))
    yield proxy
    proxy.close()


def _s3_reports(value: str) -> Rewrite:
    """S3's HEAD answers ``x-amz-checksum-crc32c: value``. moto keeps no
    CRC32C for uploads through this proxy (the upload's checksum trailer does
    not survive the re-framing), so the report is entirely the proxy's."""

    def rewrite(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        if method == "HEAD":
            headers = {k: v for k, v in headers.items() if k.lower() != "x-amz-checksum-crc32c"}
            headers["x-amz-checksum-crc32c"] = value
        return headers, body

    return rewrite


def test_s3_reporting_another_crc32c_fails_the_upload_and_removes_the_object(
    moto_endpoint: S3Endpoint, s3_proxy: RewritingProxy
) -> None:
    import google_crc32c  # Google's CRC32C: the right value, computed independently of ours

    bucket = make_bucket(moto_endpoint)
    store = s3_store_for(moto_endpoint, bucket, endpoint_url=s3_proxy.url)
    data = pattern(1000, seed=3)
    crc = base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
    s3_proxy.rewrite = _s3_reports(crc)
    right = store.put(io.BytesIO(data), "ok.fits", size=len(data))
    assert right.provider_checksum == f"crc32c:{crc}"  # the right report is accepted and recorded
    s3_proxy.rewrite = _s3_reports(_flip(crc))
    error = assert_integrity_error(lambda: store.put(io.BytesIO(data), "x.fits", size=len(data)))
    assert f"the destination's crc32c is {_flip(crc)}, the source's is {crc}" in str(error)  # both values shown
    client = moto_endpoint.boto3_client()
    assert client.list_objects_v2(Bucket=bucket, Prefix="x.fits").get("KeyCount", 0) == 0
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# -- GCS ------------------------------------------------------------------------------


@pytest.fixture
def gcs_proxy(gcs_url: str) -> Iterator[RewritingProxy]:
    proxy = RewritingProxy(_upstream(gcs_url))
    yield proxy
    proxy.close()


@pytest.fixture
def proxied_gcs(gcs_proxy: RewritingProxy, gcs_bucket: str) -> GCSStore:
    config = GCSStore.Config(
        bucket=gcs_bucket, endpoint_url=gcs_proxy.url, anonymous=True, project="test", chunk_size=256 * 1024,
        timeout=10.0,
    )
    return GCSStore.from_config(config, None)


def _json_rewrite(change: Callable[[dict[str, Any]], None]) -> Rewrite:
    def rewrite(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if "json" not in content_type or not body:
            return headers, body
        doc = json.loads(body)
        if isinstance(doc, dict) and "md5Hash" in doc:
            change(doc)
            return headers, json.dumps(doc).encode()
        return headers, body

    return rewrite


def _wrong_crc(doc: dict[str, Any]) -> None:
    doc["crc32c"] = _flip(doc["crc32c"])


def _md5_only(doc: dict[str, Any]) -> None:
    doc.pop("crc32c", None)


def _md5_only_wrong(doc: dict[str, Any]) -> None:
    doc.pop("crc32c", None)
    doc["md5Hash"] = _flip(doc["md5Hash"])


@pytest.mark.parametrize(("change", "says"), [(_wrong_crc, "crc32c"), (_md5_only_wrong, "md5")])
def test_gcs_reporting_another_checksum_fails_the_upload_and_removes_the_object(
    gcs_url: str, gcs_bucket: str, gcs_proxy: RewritingProxy, proxied_gcs: GCSStore,
    change: Callable[[dict[str, Any]], None], says: str,
) -> None:
    data = pattern(300_000, seed=4)
    gcs_proxy.rewrite = _json_rewrite(change)
    error = assert_integrity_error(lambda: proxied_gcs.put(io.BytesIO(data), "x.fits", size=len(data)))
    assert says in str(error)
    assert gcs_proxy.rewritten >= 1
    assert [b.name for b in emulator_client(gcs_url).bucket(gcs_bucket).list_blobs()] == []


def test_gcs_md5_alone_is_compared_and_accepts_the_right_object(
    gcs_url: str, gcs_bucket: str, gcs_proxy: RewritingProxy, proxied_gcs: GCSStore
) -> None:
    """No CRC32C in the report: the MD5 (base64, as GCS gives it) is what is
    compared; the right one is accepted and recorded."""
    data = pattern(300_000, seed=5)
    gcs_proxy.rewrite = _json_rewrite(_md5_only)
    stored = proxied_gcs.put(io.BytesIO(data), "x.fits", size=len(data))
    expected = base64.b64encode(hashlib.md5(data).digest()).decode()
    assert stored.provider_checksum == f"md5-base64:{expected}"
    assert gcs_proxy.rewritten >= 1
    assert emulator_client(gcs_url).bucket(gcs_bucket).blob("x.fits").download_as_bytes() == data
