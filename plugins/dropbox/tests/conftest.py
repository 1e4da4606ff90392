"""The fake Dropbox API, and a store talking to it through the real SDK."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dropbox_helpers import MiB, make_store
from fake_dropbox import FakeDropbox


@pytest.fixture
def fake() -> Iterator[FakeDropbox]:
    server = FakeDropbox().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(fake: FakeDropbox) -> Iterator[Any]:
    with make_store(fake, chunk_size=4 * MiB) as s:
        yield s
