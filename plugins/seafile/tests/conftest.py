"""Fixtures for the Seafile plugin's tests: the fake Seafile server
(seahub and the file server on two ports) and stores on it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ocs_transfer_seafile.store import SeafileStore

from .fake_seafile import FakeSeafile, Repo

USER, PASSWORD = "astro@example.edu", "correct horse battery"


@pytest.fixture(scope="module")
def shared_fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeSeafile]:
    with FakeSeafile(tmp_path_factory.mktemp("seafile")) as fake:
        fake.add_user(USER, PASSWORD)
        yield fake


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSeafile]:
    """A fake of its own (for fault tests)."""
    with FakeSeafile(tmp_path / "seafile") as server:
        server.add_user(USER, PASSWORD)
        yield server


def token_of(fake: FakeSeafile) -> str:
    return next(iter(fake.tokens))


@pytest.fixture(params=["account", "repo"])
def token_kind(request: pytest.FixtureRequest) -> str:
    """The kind of token the store is made with: an account token, or a
    library API token of the store's library. A test for one kind only says
    so with ``@pytest.mark.parametrize("token_kind", [...], indirect=True)``."""
    return str(request.param)


def token_for(fake: FakeSeafile, repo: Repo, kind: str) -> str:
    """A token of ``kind`` that can write ``repo``."""
    return token_of(fake) if kind == "account" else fake.add_repo_token(repo.id)


@pytest.fixture
def make_store(fake: FakeSeafile, token_kind: str) -> Callable[..., tuple[SeafileStore, Repo]]:
    """A store on a fresh library of ``fake`` (options as keyword arguments),
    with a token of ``token_kind`` (found out by asking the server)."""
    made: list[SeafileStore] = []

    def make(**options: Any) -> tuple[SeafileStore, Repo]:
        repo = fake.add_repo(f"lib-{uuid.uuid4().hex[:6]}")
        options.setdefault("max_wait", 0.01)
        config = SeafileStore.Config(server_url=fake.url, repo_id=repo.id, **options)
        store = SeafileStore.from_config(config, {"token": token_for(fake, repo, token_kind)})
        made.append(store)
        return store, repo

    yield make  # type: ignore[misc]
    for store in made:
        store.close()
