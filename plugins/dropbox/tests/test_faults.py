"""RELIABILITY.md's fault cases for Dropbox, on the fake API through the SDK:
token expiry mid-upload, 429 with Retry-After, 5xx and a cut connection
mid-session, lost answers after an append and after the commit, quota,
revoked refresh token, corruption, sizes around every threshold."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from dropbox_helpers import make_store
from fake_dropbox import FakeDropbox, content_hash_of

from ocs_transfer import exceptions as E
from ocs_transfer.retry import Kind, classify
from ocs_transfer.testing import PatternReader, pattern_bytes, pattern_digests

MiB = 1 << 20
CHUNK = 4 * MiB
UPLOAD, START = "/2/files/upload", "/2/files/upload_session/start"
APPEND, FINISH = "/2/files/upload_session/append_v2", "/2/files/upload_session/finish"


def _put(store: Any, path: str, size: int, **kw: Any) -> Any:
    return store.put(PatternReader(size), path, size=size, **kw)


def _check(fake: FakeDropbox, path: str, size: int) -> None:
    _, sha256 = pattern_digests(size)
    assert hashlib.sha256(fake.read(path)).hexdigest() == sha256
    assert fake.names() == [path], "exactly one file, no 'x (1)'"


@pytest.mark.parametrize(
    ("size", "routes"),
    [
        (0, [UPLOAD]),
        (CHUNK - 1, [UPLOAD]),
        (CHUNK, [UPLOAD]),
        (CHUNK + 1, [START, FINISH]),
        (2 * CHUNK, [START, FINISH]),
        (2 * CHUNK + 1, [START, APPEND, FINISH]),
        (3 * CHUNK + 5, [START, APPEND, APPEND, FINISH]),
    ],
)
def test_sizes_around_every_threshold(fake: FakeDropbox, store: Any, size: int, routes: list[str]) -> None:
    obj = _put(store, "M31/frame.fits", size)
    sent = [c for c in fake.calls if c.startswith(("/2/files/upload",))]
    assert sent == routes
    _check(fake, "/fits-data/M31/frame.fits", size)
    entry = fake.files["/fits-data/m31/frame.fits"]
    assert obj.provider_checksum == f"dropbox-content-hash:{content_hash_of(entry.disk)}"
    assert obj.version_id == entry.rev


def test_overwrite_replaces_without_a_second_file(fake: FakeDropbox, store: Any) -> None:
    store.put(io.BytesIO(b"first"), "x.fits")
    store.put(io.BytesIO(b"second"), "x.fits")
    assert fake.names() == ["/fits-data/x.fits"] and fake.read("/fits-data/x.fits") == b"second"


def test_access_token_expiring_mid_upload_is_refreshed(fake: FakeDropbox, store: Any) -> None:
    seen = [0]

    def progress(n: int) -> None:
        seen[0] += n
        if 3 * CHUNK < seen[0] <= 3 * CHUNK + n:  # the session started (the reader runs a chunk ahead)
            assert fake.access_tokens, "a token was in use"
            fake.expire_access_tokens()

    _put(store, "tok.fits", 3 * CHUNK + 7, progress=progress)
    _check(fake, "/fits-data/tok.fits", 3 * CHUNK + 7)
    assert fake.refreshes == 2


def test_429_with_retry_after_is_waited_out_within_the_bound(fake: FakeDropbox, store: Any) -> None:
    waits: list[float] = []
    store.sleep = waits.append
    body = {"error_summary": "too_many_write_operations/..", "error": {"reason": {".tag": "too_many_write_operations"},
                                                                         "retry_after": 7}}  # fmt: skip
    fake.inject(APPEND, status=429, body=body, headers={"Retry-After": "7"})
    _put(store, "slow.fits", 3 * CHUNK)
    assert waits == [7.0]
    _check(fake, "/fits-data/slow.fits", 3 * CHUNK)


def test_429_longer_than_the_bound_goes_to_the_engine(fake: FakeDropbox, store: Any) -> None:
    body = {"error_summary": "too_many_requests/..", "error": {"reason": {".tag": "too_many_requests"},
                                                                 "retry_after": 300}}  # fmt: skip
    fake.inject(UPLOAD, status=429, body=body, headers={"Retry-After": "300"})
    with pytest.raises(E.RateLimitError) as raised:
        _put(store, "busy.fits", 1000)
    decision = classify(raised.value)
    assert decision.kind is Kind.BACKOFF and decision.retry_after == 300
    assert fake.names() == []


def test_5xx_mid_session_resends_the_chunk(fake: FakeDropbox, store: Any) -> None:
    fake.inject(APPEND, status=503, body={"error_summary": "unavailable", "error": {".tag": "other"}})
    _put(store, "5xx.fits", 3 * CHUNK + 1)
    _check(fake, "/fits-data/5xx.fits", 3 * CHUNK + 1)
    assert fake.calls.count(APPEND) == 3


def test_connection_cut_mid_chunk_resumes_the_session(fake: FakeDropbox, store: Any) -> None:
    fake.inject(APPEND, "drop")
    _put(store, "cut.fits", 3 * CHUNK + 1)
    _check(fake, "/fits-data/cut.fits", 3 * CHUNK + 1)
    assert fake.calls.count(START) == 1  # the same session, resumed


def test_lost_answer_after_an_append_uses_the_servers_offset(fake: FakeDropbox, store: Any) -> None:
    fake.inject(APPEND, "lose")
    _put(store, "lost-append.fits", 3 * CHUNK + 1)
    _check(fake, "/fits-data/lost-append.fits", 3 * CHUNK + 1)


@pytest.mark.parametrize(("route", "size"), [(FINISH, 2 * CHUNK + 3), (UPLOAD, 1000)])
def test_lost_answer_after_the_commit_adopts_the_file(fake: FakeDropbox, store: Any, route: str, size: int) -> None:
    fake.inject(route, "lose")
    obj = _put(store, "lost-commit.fits", size)
    _check(fake, "/fits-data/lost-commit.fits", size)
    assert fake.calls.count(route) == 1  # adopted, never sent again
    assert obj.version_id == fake.files["/fits-data/lost-commit.fits"].rev


def test_quota_exceeded_fails_for_good_saying_what_to_do(fake: FakeDropbox, store: Any) -> None:
    fake.quota = 2 * CHUNK
    for size in (3 * CHUNK, 2 * CHUNK + 1):  # session and... session (limit crossed at the commit)
        with pytest.raises(E.QuotaExceededError, match="free up space in the Dropbox account") as raised:
            _put(store, "big.fits", size)
        assert classify(raised.value).kind is Kind.NEVER
    fake.quota = 10
    with pytest.raises(E.QuotaExceededError):
        _put(store, "small.fits", 100)
    assert fake.names() == []


def test_revoked_refresh_token_says_reauthorize(fake: FakeDropbox) -> None:
    store = make_store(fake)
    fake.revoke()
    with pytest.raises(E.CredentialError, match="re-authorize the destination") as raised:
        store.put(io.BytesIO(b"x"), "x.fits")
    assert classify(raised.value).kind is Kind.NEVER
    assert fake.refresh_token not in str(raised.value) if fake.refresh_tokens else True
    result = store.test_connection()
    assert not result.ok and "re-authorize" in result.message


def test_corruption_is_an_integrity_error_and_removes_the_object(fake: FakeDropbox, store: Any) -> None:
    fake.corrupt_next = True
    with pytest.raises(E.IntegrityError, match="dropbox-content-hash"):
        _put(store, "bad.fits", CHUNK + 10)
    assert fake.names() == []


def test_links_shared_reused_and_temporary(fake: FakeDropbox) -> None:
    store = make_store(fake)
    store.put(io.BytesIO(pattern_bytes(100)), "M31/a.fits")
    first = store.get_url("M31/a.fits")
    assert store.get_url("M31/a.fits") == first and len(fake.links) == 1  # the existing link, reused
    temporary = make_store(fake, link_kind="temporary").get_url("M31/a.fits")
    assert "/tmp/" in temporary


def test_base_url_options_are_checked() -> None:
    from ocs_transfer.storage import get_store

    creds = {"app_key": "k", "refresh_token": "r"}
    with pytest.raises(E.ConfigurationError, match="scheme and host only"):
        get_store("dropbox", credentials=creds, api_url="https://api.example.org/2")
    with pytest.raises(E.ConfigurationError, match="only for loopback"):
        get_store("dropbox", credentials=creds, content_url="http://content.example.org")
    with pytest.raises(E.ConfigurationError, match="multiple of 4 MiB"):
        get_store("dropbox", credentials=creds, chunk_size="5000000")
    with pytest.raises(E.CredentialError, match="refresh_token"):
        get_store("dropbox", credentials={"app_key": "k"})


def test_base_urls_obey_the_endpoint_allowlist() -> None:
    from ocs_transfer.settings import Settings
    from ocs_transfer.transfer.destinations import check_endpoints

    allow = Settings(endpoint_allowlist=("api.dropboxapi.com", "content.dropboxapi.com"))
    check_endpoints({"api_url": "https://api.dropboxapi.com"}, allow, "dropbox")
    with pytest.raises(E.ConfigurationError, match="ENDPOINT_ALLOWLIST"):
        check_endpoints({"content_url": "https://proxy.example.org"}, allow, "dropbox")
