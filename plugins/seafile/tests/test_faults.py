"""The Seafile store against the fake server's faults (RELIABILITY.md's
catalogue): chunk failure and resume, a connection cut mid-chunk, an expired
upload link, 429, quota, a lost answer to the last chunk, 413, 401; and the
features around them (header style, encrypted libraries, mkdir, verification,
share links, secrets). Each runs with an account token and with a library
API token (``token_kind``), except the cases of the resumable chunked upload,
which library tokens cannot use (no ``file-uploaded-bytes`` route for them):
their uploads go in one request, with cases of their own below."""

from __future__ import annotations

import io
import re

import pytest
from ocs_transfer_seafile.fs import MiB

from ocs_transfer.exceptions import (
    ConfigurationError,
    CredentialError,
    IntegrityError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    StorageError,
)
from ocs_transfer.retry import Kind, classify
from ocs_transfer.testing import pattern_bytes

from .conftest import token_for, token_of
from .fake_seafile import EXPIRE, FakeSeafile

SIZE = 3 * MiB + 12345  # four chunks of 1 MiB
#: The resumable chunked upload needs an account token.
ACCOUNT_TOKEN_ONLY = pytest.mark.parametrize("token_kind", ["account"], indirect=True)
REPO_TOKEN_ONLY = pytest.mark.parametrize("token_kind", ["repo"], indirect=True)


def chunk_starts(fake: FakeSeafile) -> list[int]:
    """The first byte of every chunk the file server received, in order."""
    found = []
    for server, method, text in fake.log:
        match = re.search(r"bytes (\d+)-\d+/\d+", text)
        if server == "fileserver" and method == "POST" and match:
            found.append(int(match.group(1)))
    return found


def downloads(fake: FakeSeafile) -> int:
    return sum(1 for server, method, text in fake.log if server == "fileserver" and text.startswith("/files/"))


def put(store, data: bytes, path: str = "dir/file.fits"):
    return store.put(io.BytesIO(data), path, size=len(data))


@ACCOUNT_TOKEN_ONLY
def test_chunk_failure_resumes_from_uploaded_bytes(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store(upload_chunk_mib=1)
    data = pattern_bytes(SIZE)
    fake.fail_next("upload", 500, skip=1)  # the second chunk fails
    obj = put(store, data)
    assert fake.read(repo.id, "/dir/file.fits") == data and obj.size == SIZE
    assert chunk_starts(fake) == [0, MiB, MiB, 2 * MiB, 3 * MiB]  # resent the failed chunk only
    assert any("file-uploaded-bytes" in text for _, _, text in fake.log)


@ACCOUNT_TOKEN_ONLY
def test_connection_cut_mid_chunk_resumes(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store(upload_chunk_mib=1)
    data = pattern_bytes(SIZE)
    fake.cut_next_upload(300_000, skip=2)  # the third chunk's connection is cut part-way
    put(store, data)
    assert fake.read(repo.id, "/dir/file.fits") == data
    assert chunk_starts(fake) == [0, MiB, 2 * MiB, 2 * MiB, 3 * MiB]


@ACCOUNT_TOKEN_ONLY
def test_expired_upload_link_gets_a_fresh_one(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store(upload_chunk_mib=1)
    data = pattern_bytes(SIZE)
    fake.fail_next("upload", EXPIRE, skip=1)
    put(store, data)
    assert fake.read(repo.id, "/dir/file.fits") == data
    links = [t for s, m, t in fake.log if "upload-link" in t]
    assert len(links) == 2
    assert chunk_starts(fake) == [0, MiB, MiB, 2 * MiB, 3 * MiB]


@ACCOUNT_TOKEN_ONLY
def test_lost_answer_to_the_last_chunk_verifies_by_download(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store(upload_chunk_mib=1)
    data = pattern_bytes(SIZE)
    fake.lose_next_answer()
    obj = put(store, data)
    assert fake.read(repo.id, "/dir/file.fits") == data and obj.sha256
    assert downloads(fake) >= 1  # no file id came back: the stored file was read and hashed
    assert fake.files(repo.id) == ["dir/file.fits"]


def test_429_waits_and_retries(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store()
    fake.fail_next("api", 429, retry_after="1", route="upload-link", times=2)
    put(store, b"slow down")
    assert fake.read(repo.id, "/dir/file.fits") == b"slow down"


def test_429_that_persists_is_a_backoff_error(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store(attempts=2)
    fake.fail_next("api", 429, retry_after="30", route="upload-link", times=5)
    with pytest.raises(RateLimitError) as caught:
        put(store, b"x")
    assert caught.value.retry_after == 30.0 and classify(caught.value).kind is Kind.BACKOFF
    assert fake.files(repo.id) == []


def test_quota_is_final_with_a_readable_message(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store(upload_chunk_mib=1)
    repo.quota = MiB
    with pytest.raises(QuotaExceededError, match="out of quota") as caught:
        put(store, pattern_bytes(2 * MiB))
    assert classify(caught.value).kind is Kind.NEVER
    assert fake.files(repo.id) == []


def test_413_from_a_proxy_says_what_to_do(fake: FakeSeafile, make_store) -> None:
    store, _ = make_store()
    fake.fail_next("upload", 413)
    with pytest.raises(StorageError, match="client_max_body_size") as caught:
        put(store, b"big")
    assert classify(caught.value).kind is Kind.NEVER


def test_401_is_a_credential_error_without_the_token(fake: FakeSeafile, token_kind: str) -> None:
    from ocs_transfer_seafile.store import SeafileStore

    repo = fake.add_repo("lib")
    bad = "0123456789abcdef0123456789abcdef01234567"
    config = SeafileStore.Config(server_url=fake.url, repo_id=repo.id, auth=token_kind)
    store = SeafileStore.from_config(config, {"token": bad})
    with pytest.raises(CredentialError, match="get-token") as caught:
        put(store, b"x")
    assert bad not in str(caught.value) and bad not in repr(store)
    assert not store.test_connection().ok


@pytest.mark.parametrize(("version", "style"), [("10.0.1", "Token"), ("11.0.4", "Bearer")])
def test_header_style_follows_the_server_version(tmp_path, version: str, style: str, token_kind: str) -> None:
    from ocs_transfer_seafile.store import SeafileStore

    with FakeSeafile(tmp_path, version=version) as fake:
        fake.add_user("u@example.edu", "pw")
        repo = fake.add_repo("lib")
        token = token_for(fake, repo, token_kind)
        with SeafileStore.from_config(SeafileStore.Config(server_url=fake.url, repo_id=repo.id), {"token": token}) as s:
            put(s, b"hello")
        assert fake.auth_styles == {style}


@ACCOUNT_TOKEN_ONLY  # repo-info does not say whether a library is encrypted
def test_encrypted_library_is_refused(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store()
    repo.encrypted = True
    with pytest.raises(ConfigurationError, match="encrypted"):
        put(store, b"x")


def test_mkdir_looks_first(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store()
    store.fs.makedirs("a/b/c", exist_ok=True)
    store.fs._known_dirs.clear()  # a new process: nothing cached
    store.fs.makedirs("a/b/c", exist_ok=True)
    put(store, b"x", "a/b/c/f.txt")
    dirs = sorted(p for p, e in repo.entries.items() if e.kind == "dir")
    assert dirs == ["/", "/a", "/a/b", "/a/b/c"]


def test_overwrite_replaces_rather_than_renames(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store()
    put(store, b"one")
    put(store, b"two!")
    assert fake.files(repo.id) == ["dir/file.fits"]
    assert fake.read(repo.id, "/dir/file.fits") == b"two!"


def test_verify_by_id_and_by_download(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store()
    obj = put(store, b"by id")
    assert obj.provider_checksum == f"seafile-id:{repo.entries['/dir/file.fits'].id}"
    assert downloads(fake) == 0
    careful, _ = make_store(verify="download")
    put(careful, b"by download")
    assert downloads(fake) == 1


def test_a_different_file_at_the_path_fails_verification(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store()
    fake.detail_ids = {"/dir/file.fits": "f" * 40}  # the library holds another file than the upload's answer named
    with pytest.raises(IntegrityError, match="seafile-id"):
        put(store, b"x")
    assert fake.files(repo.id) == []  # the wrong file was removed; a retry uploads again


def test_share_links_with_password_and_expiry(fake: FakeSeafile, make_store) -> None:
    from datetime import timedelta

    from ocs_transfer_seafile.store import SeafileStore

    repo = fake.add_repo("links")
    config = SeafileStore.Config(server_url=fake.url, repo_id=repo.id, root="out")
    secret = "a-link-password"
    with SeafileStore.from_config(config, {"token": token_of(fake), "link_password": secret}) as store:
        put(store, b"zip", "results.zip")
        url = store.get_url("results.zip", expiration=timedelta(days=14))
        (link,) = fake.share_links.values()
        assert url == link["link"] and link["password"] == secret and link["expire_days"] == 14
        assert link["path"] == "/out/results.zip"
        assert secret not in url and secret not in repr(store)
        assert store.delete_links("results.zip") == 1
        assert fake.share_links == {}


@ACCOUNT_TOKEN_ONLY  # a library token's links cannot expire: the option is refused (below)
def test_link_expire_days_option_wins(fake: FakeSeafile, make_store) -> None:
    store, _ = make_store(link_expire_days=3)
    put(store, b"x")
    store.get_url("dir/file.fits")
    (link,) = fake.share_links.values()
    assert link["expire_days"] == 3


def test_logs_hold_no_token_and_no_link_token(fake: FakeSeafile, make_store, caplog) -> None:
    import logging

    store, _ = make_store(upload_chunk_mib=1)
    with caplog.at_level(logging.DEBUG):
        put(store, pattern_bytes(2 * MiB + 1))
        store.get_url("dir/file.fits")
        store.open("dir/file.fits").read()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "upload-api/***" in text  # the request lines are there, without their tokens
    secrets = [token_of(fake), *fake.upload_tokens, *fake.download_tokens, *fake.share_links]
    assert not [s for s in secrets if s in text]


# -- library (repo) API tokens -------------------------------------------------------------


@REPO_TOKEN_ONLY
def test_repo_token_uploads_in_one_request(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store(upload_chunk_mib=1)
    data = pattern_bytes(SIZE)
    put(store, data)
    assert fake.read(repo.id, "/dir/file.fits") == data
    uploads = [t for s, m, t in fake.log if s == "fileserver" and m == "POST"]
    assert len(uploads) == 1 and chunk_starts(fake) == []  # no Content-Range: one request
    assert not any("file-uploaded-bytes" in t for _, _, t in fake.log)
    seahub = [t for s, _, t in fake.log if s == "seahub"]
    assert all(t.startswith(("/api/v2.1/via-repo-token/", "/api2/server-info/")) for t in seahub)


@REPO_TOKEN_ONLY
def test_repo_token_cut_upload_is_retryable_and_leaves_nothing(fake: FakeSeafile, make_store) -> None:
    store, repo = make_store(upload_chunk_mib=1)
    fake.cut_next_upload(300_000)
    with pytest.raises(StorageError) as caught:
        put(store, pattern_bytes(SIZE))
    assert classify(caught.value).kind is not Kind.NEVER
    assert fake.files(repo.id) == []
    put(store, b"again")  # the next attempt goes through
    assert fake.read(repo.id, "/dir/file.fits") == b"again"


def test_repo_token_names_its_own_library(fake: FakeSeafile) -> None:
    from ocs_transfer_seafile.store import SeafileStore

    repo, other = fake.add_repo("mine"), fake.add_repo("other")
    token = fake.add_repo_token(repo.id)
    with SeafileStore.from_config(SeafileStore.Config(server_url=fake.url), {"token": token}) as store:
        put(store, b"derived")
        assert store.fs.repo_id == repo.id and fake.read(repo.id, "/dir/file.fits") == b"derived"
    wrong = SeafileStore.Config(server_url=fake.url, repo_id=other.id)
    with SeafileStore.from_config(wrong, {"token": token}) as store:
        with pytest.raises(ConfigurationError, match="works only in its own library") as caught:
            put(store, b"x")
        assert repo.id in str(caught.value) and other.id in str(caught.value) and token not in str(caught.value)
        assert not store.test_connection().ok
    assert fake.files(other.id) == []


def test_each_kind_of_token_is_refused_on_the_others_routes(fake: FakeSeafile) -> None:
    from ocs_transfer_seafile.store import SeafileStore

    repo = fake.add_repo("lib")
    for auth, token in (("account", fake.add_repo_token(repo.id)), ("repo", token_of(fake))):
        config = SeafileStore.Config(server_url=fake.url, repo_id=repo.id, auth=auth)
        with SeafileStore.from_config(config, {"token": token}) as store, pytest.raises(CredentialError):
            put(store, b"x")
    assert fake.files(repo.id) == []


def test_account_token_without_repo_id_says_what_to_do(fake: FakeSeafile) -> None:
    from ocs_transfer_seafile.store import SeafileStore

    with pytest.raises(ConfigurationError, match="repo_id"):
        SeafileStore.from_config(SeafileStore.Config(server_url=fake.url, auth="account"), {"token": "t"})
    with SeafileStore.from_config(SeafileStore.Config(server_url=fake.url), {"token": token_of(fake)}) as store:
        with pytest.raises(ConfigurationError, match="account token: the destination needs repo_id"):
            put(store, b"x")
    # a token neither kind takes is said to be refused, not to need repo_id
    with SeafileStore.from_config(SeafileStore.Config(server_url=fake.url), {"token": "f" * 40}) as store:
        with pytest.raises(CredentialError, match="refused the token"):
            put(store, b"x")


def test_read_only_repo_token_is_refused_with_a_readable_message(fake: FakeSeafile) -> None:
    from ocs_transfer_seafile.store import SeafileStore

    repo = fake.add_repo("lib")
    token = fake.add_repo_token(repo.id, permission="r")
    with SeafileStore.from_config(SeafileStore.Config(server_url=fake.url), {"token": token}) as store:
        with pytest.raises(PermissionDeniedError, match="read-write") as caught:
            put(store, b"x")
    assert classify(caught.value).kind is Kind.NEVER and fake.files(repo.id) == []


def test_repo_token_options_it_cannot_honour_are_refused_at_once(fake: FakeSeafile) -> None:
    from ocs_transfer_seafile.store import SeafileStore

    repo = fake.add_repo("lib")
    token = fake.add_repo_token(repo.id)
    with pytest.raises(ConfigurationError, match="resumable=true needs an account token"):
        SeafileStore.from_config(SeafileStore.Config(server_url=fake.url, auth="repo", resumable=True),
                                 {"token": token})  # fmt: skip
    with pytest.raises(ConfigurationError, match="link_password credential needs an account token"):
        SeafileStore.from_config(SeafileStore.Config(server_url=fake.url, auth="repo"),
                                 {"token": token, "link_password": "a-link-password"})  # fmt: skip
    with pytest.raises(ConfigurationError, match="link_expire_days needs an account token"):
        SeafileStore.from_config(SeafileStore.Config(server_url=fake.url, auth="repo", link_expire_days=3),
                                 {"token": token})  # fmt: skip
    # found out only by asking the server (token_kind auto): refused at first use
    config = SeafileStore.Config(server_url=fake.url, resumable=True)
    with SeafileStore.from_config(config, {"token": token}) as store:
        with pytest.raises(ConfigurationError, match="resumable=true"):
            put(store, b"x")


@REPO_TOKEN_ONLY
def test_repo_token_share_link_cannot_expire_or_be_deleted(fake: FakeSeafile, make_store) -> None:
    from datetime import timedelta

    store, _ = make_store()
    put(store, b"zip", "results.zip")
    url = store.get_url("results.zip", expiration=timedelta(days=14))
    (link,) = fake.share_links.values()
    assert url == link["link"] and link["path"] == "/results.zip" and link["expire_date"] is None
    with pytest.raises(ConfigurationError, match="cannot list or delete share links"):
        store.delete_links("results.zip")
    assert len(fake.share_links) == 1
