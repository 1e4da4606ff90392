"""A null S3 server: accepts uploads, checks no MD5 or signature, keeps no bytes.

For timing S3 clients without a storing server as the bottleneck. It answers
the calls uploaders make (PutObject, the multipart calls, HeadObject,
ListObjectsV2, DeleteObject) and remembers each object's size, metadata and
CRC32C (computed from the received bytes, so a client's verification is real),
never the content. No authentication. 127.0.0.1 only.

    python benchmarks/nulls3.py [--port N]     # prints "PORT <n>" when ready
"""

from __future__ import annotations

import argparse
import base64
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import google_crc32c

BUF = 1024 * 1024
_lock = threading.Lock()
#: key -> (size, crc32c header value, checksum type, metadata headers)
OBJECTS: dict[str, tuple[int, str, str, dict[str, str]]] = {}
#: upload id -> (key, {part number: (size, crc digest)}, metadata)
UPLOADS: dict[str, tuple[str, dict[int, tuple[int, bytes]], dict[str, str]]] = {}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "NullS3"

    def log_message(self, format: str, *args: object) -> None:
        pass

    # -- helpers ----------------------------------------------------------------------
    def _drain(self) -> tuple[int, bytes]:
        """Read the request body; (decoded size, CRC32C digest of it)."""
        crc = google_crc32c.Checksum()
        size = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline(1024)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = n
                while left:
                    data = self.rfile.read(min(left, BUF))
                    crc.update(data)
                    left -= len(data)
                self.rfile.readline(16)
                size += n
            return size, crc.digest()
        length = int(self.headers.get("Content-Length") or 0)
        left = length
        while left:
            data = self.rfile.read(min(left, BUF))
            if not data:
                break
            crc.update(data)
            left -= len(data)
        decoded = self.headers.get("x-amz-decoded-content-length")
        return (int(decoded) if decoded else length), crc.digest()

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if body:
            self.send_header("Content-Type", "application/xml")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _meta(self) -> dict[str, str]:
        keep = ("x-amz-meta-", "content-type", "content-disposition", "x-amz-storage-class")
        return {k.lower(): v for k, v in self.headers.items() if k.lower().startswith(keep)}

    def _path(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        return parts.path, parse_qs(parts.query, keep_blank_values=True)

    # -- verbs ------------------------------------------------------------------------
    def do_PUT(self) -> None:
        path, q = self._path()
        size, digest = self._drain()
        # Like S3, the ETag of a PUT is the body's MD5: echoed from Content-MD5 when the
        # client sent one (this server checks nothing), otherwise made up.
        sent_md5 = self.headers.get("Content-MD5")
        etag = f'"{base64.b64decode(sent_md5).hex()}"' if sent_md5 else f'"{uuid.uuid4().hex}"'
        if "uploadId" in q:
            with _lock:
                upload = UPLOADS.get(q["uploadId"][0])
                if upload is None:
                    self._send(404, b"<Error><Code>NoSuchUpload</Code></Error>")
                    return
                upload[1][int(q["partNumber"][0])] = (size, digest)
            self._send(200, headers={"ETag": etag, "x-amz-checksum-crc32c": _b64(digest)})
            return
        if "/" not in path.strip("/"):
            self._send(200)  # create bucket
            return
        with _lock:
            OBJECTS[path] = (size, _b64(digest), "FULL_OBJECT", self._meta())
        self._send(200, headers={"ETag": etag, "x-amz-checksum-crc32c": _b64(digest)})

    def do_POST(self) -> None:
        path, q = self._path()
        self._drain()
        if "uploads" in q:
            upload_id = uuid.uuid4().hex
            with _lock:
                UPLOADS[upload_id] = (path, {}, self._meta())
            bucket, _, key = path.lstrip("/").partition("/")
            body = (
                f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>"
            ).encode()
            self._send(200, body)
            return
        if "uploadId" in q:
            with _lock:
                upload = UPLOADS.pop(q["uploadId"][0], None)
            if upload is None:
                self._send(404, b"<Error><Code>NoSuchUpload</Code></Error>")
                return
            key, parts, meta = upload
            numbers = sorted(parts)
            size = sum(parts[n][0] for n in numbers)
            composite = (
                f"{_b64(google_crc32c.Checksum(b''.join(parts[n][1] for n in numbers)).digest())}-{len(numbers)}"
            )
            with _lock:
                OBJECTS[key] = (size, composite, "COMPOSITE", meta)
            body = (
                f'<CompleteMultipartUploadResult><Key>{key}</Key><ETag>"{uuid.uuid4().hex}-{len(numbers)}"</ETag>'
                f"<ChecksumCRC32C>{composite}</ChecksumCRC32C></CompleteMultipartUploadResult>"
            ).encode()
            self._send(200, body)
            return
        self._send(400, b"<Error><Code>InvalidRequest</Code></Error>")

    def do_HEAD(self) -> None:
        path, _ = self._path()
        with _lock:
            obj = OBJECTS.get(path)
        if obj is None:
            if path.strip("/").count("/") == 0:
                self._send(200)  # any bucket exists
                return
            self._send(404)
            return
        size, crc, kind, meta = obj
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("ETag", '"0"')
        self.send_header("Last-Modified", "Sat, 21 Nov 2026 00:00:00 GMT")
        self.send_header("x-amz-checksum-crc32c", crc)
        self.send_header("x-amz-checksum-type", kind)
        for k, v in meta.items():
            self.send_header(k, v)
        self.end_headers()

    def do_GET(self) -> None:
        path, q = self._path()
        if path.strip("/").count("/") == 0:  # ListObjects on a bucket: empty
            bucket = path.strip("/")
            body = (
                f"<ListBucketResult><Name>{bucket}</Name><Prefix>{q.get('prefix', [''])[0]}</Prefix>"
                "<KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>"
            ).encode()
            self._send(200, body)
            return
        self._send(404, b"<Error><Code>NoSuchKey</Code><Message>null server keeps no bytes</Message></Error>")

    def do_DELETE(self) -> None:
        path, q = self._path()
        with _lock:
            if "uploadId" in q:
                UPLOADS.pop(q["uploadId"][0], None)
            else:
                OBJECTS.pop(path, None)
        self._send(204)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
