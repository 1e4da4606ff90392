"""RELIABILITY.md's fault cases on Drive: token expiry mid-upload, rate limits
with Retry-After, 5xx and cut connections mid-session, lost responses, quota,
revoked refresh tokens, size thresholds, integrity, duplicates and stale
folder ids. Chunks are 1 MiB and the multipart threshold 512 KiB here."""

from __future__ import annotations

import hashlib
import io

import pytest
from fake_drive import FOLDER, QUANTUM, FakeDrive, Fault, Request
from gdrive_helpers import MiB, Sleeps, make_fs, make_store
from ocs_transfer_gdrive.drivefs import DriveFileSystem

from ocs_transfer.exceptions import (
    ConfigurationError,
    CredentialError,
    IntegrityError,
    QuotaExceededError,
    RateLimitError,
    TransientStorageError,
)
from ocs_transfer.retry import Kind, classify
from ocs_transfer.testing import pattern_bytes

THRESHOLD = 512 * 1024


def chunk_put(n: int | None = None) -> object:
    """A predicate for the n-th chunk PUT of a session (1-based), or any."""
    seen = {"count": 0}

    def when(req: Request) -> bool:
        if req.method != "PUT" or "upload_id" not in req.query or req.headers.get("content-length") == "0":
            return False
        seen["count"] += 1
        return n is None or seen["count"] == n

    return when


def ranges(drive: FakeDrive) -> list[str]:
    return [r.headers.get("content-range", "") for r in drive.requests if r.method == "PUT"]


def upload_types(drive: FakeDrive) -> list[str]:
    return [r.query.get("uploadType", "") for r in drive.requests if r.path.startswith("/upload/") and
            r.method in ("POST", "PATCH")]  # fmt: skip


def stored(drive: FakeDrive, path: str) -> bytes:
    [f] = [f for f in drive.live() if f["name"] == path.rsplit("/", 1)[-1] and f["mimeType"] != FOLDER]
    return drive.content(f["id"])


def test_token_expiry_mid_upload_refreshes_and_continues(drive: FakeDrive, fs: DriveFileSystem) -> None:
    data = pattern_bytes(3 * MiB + 5)
    second = chunk_put(2)

    def expire(req: Request) -> bool:
        if second(req):
            drive.expire_tokens()  # the access token dies between chunks
        return False

    drive.add_fault(Fault(when=expire))
    fs.upload(io.BytesIO(data), "night/big.fits", size=len(data))
    assert stored(drive, "night/big.fits") == data
    assert drive.token_requests == 2  # one at start, one refresh after the 401


def test_429_retry_after_is_honoured(drive: FakeDrive, fs: DriveFileSystem, sleeps: Sleeps) -> None:
    drive.add_fault(Fault(when=lambda r: r.method == "GET" and r.path == "/drive/v3/files", status=429,
                          reason="rateLimitExceeded", headers={"Retry-After": "7"}))  # fmt: skip
    drive.add_fault(Fault(when=chunk_put(2), status=403, reason="userRateLimitExceeded", headers={"Retry-After": "3"}))
    data = pattern_bytes(2 * MiB + 1)
    fs.upload(io.BytesIO(data), "a.bin", size=len(data))
    assert stored(drive, "a.bin") == data
    assert 7.0 in sleeps and 3.0 in sleeps


def test_rate_limit_waits_are_bounded_then_handed_to_the_engine(drive: FakeDrive, sleeps: Sleeps) -> None:
    fs = make_fs(drive, sleeps, rate_limit_waits=3)
    drive.add_fault(Fault(when=lambda r: r.path == "/drive/v3/files", status=429, reason="rateLimitExceeded",
                          headers={"Retry-After": "120"}, times=100))  # fmt: skip
    with pytest.raises(RateLimitError) as caught:
        fs.upload(io.BytesIO(b"x"), "a.bin")
    assert sleeps == [60.0, 60.0, 60.0]  # each wait capped at max_wait, three of them
    decision = classify(caught.value)
    assert decision.kind is Kind.BACKOFF and decision.retry_after == 120.0


def test_5xx_mid_session_resumes(drive: FakeDrive, fs: DriveFileSystem) -> None:
    drive.add_fault(Fault(when=chunk_put(2), status=503, reason="backendError"))
    data = pattern_bytes(3 * MiB + 7)
    fs.upload(io.BytesIO(data), "r.bin", size=len(data))
    assert stored(drive, "r.bin") == data
    assert "bytes */3145735" in ranges(drive) or "bytes */*" in ranges(drive)  # asked where to go on


def test_connection_cut_mid_chunk_resumes_from_the_servers_offset(drive: FakeDrive, fs: DriveFileSystem) -> None:
    cut = 300 * 1024
    drive.add_fault(Fault(when=chunk_put(2), cut_after=cut))
    data = pattern_bytes(3 * MiB + 11)
    fs.upload(io.BytesIO(data), "cut.bin", size=len(data))
    assert stored(drive, "cut.bin") == data
    kept = (MiB + cut) // QUANTUM * QUANTUM  # the fake kept the whole 256 KiB units that arrived
    sent = ranges(drive)
    assert any(r.startswith(f"bytes {kept}-") for r in sent), sent  # resumed exactly there


def test_lost_response_after_final_chunk_makes_no_duplicate(drive: FakeDrive, fs: DriveFileSystem) -> None:
    data = pattern_bytes(2 * MiB + 3)
    final = chunk_put()
    drive.add_fault(Fault(when=lambda r: final(r) and r.headers.get("content-range", "").endswith(f"/{len(data)}"),
                          drop_response=True))  # fmt: skip
    result = fs.upload(io.BytesIO(data), "once.bin", size=len(data))
    assert result["md5Checksum"] == hashlib.md5(data).hexdigest()
    assert drive.paths() == ["once.bin"]


def test_lost_response_of_a_multipart_create_makes_no_duplicate(drive: FakeDrive, fs: DriveFileSystem) -> None:
    drive.add_fault(Fault(when=lambda r: r.query.get("uploadType") == "multipart", drop_response=True))
    fs.upload(io.BytesIO(b"small"), "small.bin")
    assert drive.paths() == ["small.bin"]
    assert stored(drive, "small.bin") == b"small"


def test_retry_after_a_failed_put_whose_file_was_made_updates_it(drive: FakeDrive) -> None:
    """The engine's next attempt after a put that failed although Drive made the file."""
    store = make_store(drive, root="r")
    drive.add_fault(Fault(when=lambda r: r.query.get("uploadType") == "multipart", drop_response=True))
    drive.add_fault(Fault(when=lambda r: r.method == "GET" and r.path.startswith("/drive/v3/files/") and
                          "generateIds" not in r.path, status=503, reason="backendError", times=50))  # fmt: skip
    with pytest.raises(Exception) as first:
        store.put(io.BytesIO(b"v1"), "x.fits")
    assert classify(first.value).retryable
    drive.faults.clear()
    store.put(io.BytesIO(b"v2"), "x.fits")
    assert drive.paths() == ["r/x.fits"]
    assert stored(drive, "x.fits") == b"v2"


def test_quota_exceeded_fails_for_good_and_says_what_to_do(drive: FakeDrive) -> None:
    drive.quota = 1000
    store = make_store(drive)
    for size in (2000, 3 * MiB):  # multipart, and resumable (refused when the session opens)
        with pytest.raises(QuotaExceededError) as caught:
            store.put(io.BytesIO(pattern_bytes(size)), "full.bin", size=size)
        assert "free up space" in str(caught.value)
        assert classify(caught.value).kind is Kind.NEVER
    assert drive.paths() == []


def test_revoked_refresh_token_is_a_final_reauthorize_error(drive: FakeDrive, sleeps: Sleeps) -> None:
    creds = drive.credentials()
    drive.revoke(creds["refresh_token"])
    store = make_store(drive, creds, sleeps=sleeps)
    with pytest.raises(CredentialError) as caught:
        store.put(io.BytesIO(b"x"), "a.bin")
    assert "re-authorize the destination" in str(caught.value)
    assert classify(caught.value).kind is Kind.NEVER
    assert creds["refresh_token"] not in str(caught.value) and creds["client_secret"] not in str(caught.value)
    assert drive.token_requests == 1 and sleeps == []
    result = store.test_connection()
    assert not result.ok and "re-authorize" in result.message


@pytest.mark.parametrize("size", [0, 1, THRESHOLD - 1, THRESHOLD, THRESHOLD + 1, MiB - 1, MiB, MiB + 1,
                                  2 * MiB, 2 * MiB + 1])  # fmt: skip
def test_sizes_around_the_thresholds(drive: FakeDrive, fs: DriveFileSystem, size: int) -> None:
    data = pattern_bytes(size)
    result = fs.upload(io.BytesIO(data), "s.bin", size=size)
    assert int(result["size"]) == size and result["md5Checksum"] == hashlib.md5(data).hexdigest()
    assert stored(drive, "s.bin") == data
    assert upload_types(drive) == ["multipart" if size <= THRESHOLD else "resumable"]
    for crange in ranges(drive):  # every non-final chunk is a multiple of 256 KiB
        if not crange.startswith("bytes */") and crange.endswith("/*"):
            first, last = map(int, crange.split()[1].split("/")[0].split("-"))
            assert (last - first + 1) % QUANTUM == 0


def test_unsized_upload_and_unaligned_commit(drive: FakeDrive) -> None:
    fs = make_fs(drive, chunk_size=MiB)
    data = pattern_bytes(MiB * 2 + 100)

    class Unsized(io.RawIOBase):
        def __init__(self) -> None:
            self.inner = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self.inner.read(min(n, 300_000) if n > 0 else 300_000)  # odd-sized writes

    fs.upload(Unsized(), "u.bin")
    assert stored(drive, "u.bin") == data


def test_md5_mismatch_removes_the_file_and_is_an_integrity_error(drive: FakeDrive) -> None:
    store = make_store(drive, root="i")
    drive.corrupt_uploads = 2
    for size in (100, 2 * MiB):
        with pytest.raises(IntegrityError):
            store.put(io.BytesIO(pattern_bytes(size)), "bad.bin", size=size)
        assert drive.paths() == []
        assert classify(IntegrityError("x")).retryable


def test_overwrite_updates_the_same_file_and_trashes_duplicates(drive: FakeDrive, fs: DriveFileSystem) -> None:
    fs.upload(io.BytesIO(b"one"), "d/x.bin")
    [first] = drive.live()[1:]
    fs.upload(io.BytesIO(pattern_bytes(2 * MiB)), "d/x.bin")
    assert [f["id"] for f in drive.live() if f["name"] == "x.bin"] == [first["id"]]
    # someone else made a second "x.bin" beside it: the next overwrite leaves one
    with drive.lock:
        twin = dict(first, id="twin-id", seq=10**6)
        drive.files["twin-id"] = twin
    fs.upload(io.BytesIO(b"three"), "d/x.bin")
    assert drive.paths() == ["d/x.bin"] and stored(drive, "d/x.bin") == b"three"


def test_stale_folder_ids_are_detected(drive: FakeDrive, fs: DriveFileSystem) -> None:
    fs.upload(io.BytesIO(b"a"), "M31/a.fits")
    [folder] = [f for f in drive.live() if f["name"] == "M31"]
    folder["name"] = "M31-renamed"  # someone renames the folder in the Drive UI
    fs.upload(io.BytesIO(b"b"), "M31/b.fits")
    assert drive.paths() == ["M31-renamed/a.fits", "M31/b.fits"]
    assert not fs.exists("M31/a.fits")
    [folder] = [f for f in drive.live() if f["name"] == "M31"]
    drive._delete(folder["id"])  # and someone deletes the new one
    fs.upload(io.BytesIO(b"c"), "M31/c.fits")
    assert drive.paths() == ["M31-renamed/a.fits", "M31/c.fits"]


def test_service_account_json(drive: FakeDrive) -> None:
    store = make_store(drive, {"service_account_json": drive.service_account()})
    store.put(io.BytesIO(b"from a robot"), "sa.fits")
    assert stored(drive, "sa.fits") == b"from a robot"
    stranger = FakeDrive().service_account()  # a key the token endpoint does not know
    with pytest.raises(CredentialError):
        make_store(drive, {"service_account_json": stranger}).put(io.BytesIO(b"x"), "no.fits")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        make_store(drive, {"service_account_json": "{nope"})
    with pytest.raises(ConfigurationError, match="one of"):
        make_store(drive, {**drive.credentials(), "service_account_json": drive.service_account()})


def test_expired_session_fails_retryably_and_leaves_nothing(drive: FakeDrive, fs: DriveFileSystem) -> None:
    drive.add_fault(Fault(when=chunk_put(2), status=404, reason="notFound"))  # the session is gone
    with pytest.raises(TransientStorageError, match="starts over"):
        fs.upload(io.BytesIO(pattern_bytes(3 * MiB)), "gone.bin", size=3 * MiB)
    assert drive.paths() == []
