"""The conformance suite and fsspec's abstract filesystem suite against the
fake Seafile server, each with an account token and with a library API token
(the ``token_kind`` fixture; a library token's store names no repo_id: it is
the token's own)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import fsspec
import fsspec.tests.abstract as abstract
import pytest
from ocs_transfer_seafile.fs import MiB, SeafileFileSystem
from ocs_transfer_seafile.store import SeafileStore

from ocs_transfer.testing import StoreTests

from .conftest import token_for, token_of
from .fake_seafile import FakeSeafile


class TestSeafileStore(StoreTests):
    @pytest.fixture
    def repo_id(self, shared_fake: FakeSeafile) -> str:
        return shared_fake.add_repo(f"lib-{uuid.uuid4().hex[:6]}").id

    @pytest.fixture
    def store(self, shared_fake: FakeSeafile, repo_id: str, token_kind: str) -> Iterator[SeafileStore]:
        # small upload chunks: the suite's files cross chunk boundaries (the resumable path runs)
        token = token_for(shared_fake, shared_fake.repos[repo_id], token_kind)
        config = SeafileStore.Config(server_url=shared_fake.url, repo_id=repo_id if token_kind == "account" else "",
                                     root="archive", upload_chunk_mib=2, direct_links=True, max_wait=0.01)  # fmt: skip
        with SeafileStore.from_config(config, {"token": token}) as store:
            yield store

    @pytest.fixture
    def raw_listing(self, shared_fake: FakeSeafile, repo_id: str) -> Callable[[], list[str]]:
        def listing() -> list[str]:
            return [p[len("archive/") :] for p in shared_fake.files(repo_id) if p.startswith("archive/")]

        return listing

    @pytest.fixture
    def links_fetchable(self) -> bool:
        return True

    @pytest.fixture
    def bad_credentials_store(self, shared_fake: FakeSeafile, repo_id: str, token_kind: str) -> Iterator[SeafileStore]:
        config = SeafileStore.Config(server_url=shared_fake.url, repo_id=repo_id, max_wait=0.01, auth=token_kind)
        with SeafileStore.from_config(config, {"token": "f" * 40}) as store:
            yield store

    @pytest.fixture
    def drop_connections(self, shared_fake: FakeSeafile) -> Callable[[], None]:
        return shared_fake.drop_connections

    @pytest.fixture
    def large_file_size(self) -> int:
        return 48 * MiB


def test_fsspec_registry_opens_seafile_urls(shared_fake: FakeSeafile) -> None:
    repo = shared_fake.add_repo("registry")
    opts = {"server_url": shared_fake.url, "token": token_of(shared_fake)}
    with fsspec.open(f"seafile://{repo.id}/a/b.txt", "wb", **opts) as f:
        f.write(b"through the registry")
    assert shared_fake.read(repo.id, "/a/b.txt") == b"through the registry"
    fs = fsspec.filesystem("seafile", repo_id=repo.id, **opts)
    assert isinstance(fs, SeafileFileSystem)
    assert fs.cat_file("a/b.txt", start=8, end=11) == b"the"


class TestFsspecAbstractSuite(
    abstract.AbstractFixtures,
    abstract.AbstractCopyTests,
    abstract.AbstractGetTests,
    abstract.AbstractPutTests,
    abstract.AbstractOpenTests,
    abstract.AbstractPipeTests,
):
    """fsspec's own suite for filesystems, on SeafileFileSystem."""

    @pytest.fixture
    def fs(self, shared_fake: FakeSeafile, token_kind: str) -> SeafileFileSystem:
        repo = shared_fake.add_repo("abstract-suite")
        token = token_for(shared_fake, repo, token_kind)
        return SeafileFileSystem(repo.id if token_kind == "account" else "", shared_fake.url, token)

    @pytest.fixture
    def fs_path(self) -> str:
        return f"suite-{uuid.uuid4().hex[:8]}"
