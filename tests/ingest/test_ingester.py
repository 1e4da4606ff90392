"""Ingesting one file without a queue: what the errors say, and the folders
an ingester takes files from."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ocs_transfer.exceptions import ConfigurationError, FileSpecificationError
from ocs_transfer.ingest import Ingester, IngestFileError, IngestMessage
from ocs_transfer.ingest.message import MAX_MESSAGE_SIZE, MessageError
from ocs_transfer.storage import get_store

from .conftest import md5_of


def ingester(**kwargs: object) -> Ingester:
    return Ingester(get_store("memory", root=f"ing-{uuid.uuid4().hex[:8]}"), **kwargs)  # type: ignore[arg-type]


def test_stores_then_recognises_the_repeat(files: dict[str, Path]) -> None:
    one = ingester()
    first = one.ingest(IngestMessage(str(files["good0"])))
    again = one.ingest(IngestMessage(str(files["good0"])))
    assert (first.already_stored, first.repeat, again.already_stored, again.repeat) == (False, False, True, True)
    assert first.version_set == again.version_set
    assert first.version_set is not None and first.version_set["md5"] == md5_of(files["good0"])


def test_what_is_wrong_with_the_file_is_said(files: dict[str, Path]) -> None:
    one = ingester()
    with pytest.raises(IngestFileError, match="no such file"):
        one.ingest(IngestMessage(str(files["good0"].parent / "coj1m011-kb05-20150219-0999-e91.fits.fz")))
    with pytest.raises(IngestFileError, match="is a directory"):
        one.ingest(IngestMessage(str(files["good0"].parent)))
    with pytest.raises(FileSpecificationError, match="truncated"):
        one.ingest(IngestMessage(str(files["bad"])))


def test_only_files_under_the_roots_are_taken(files: dict[str, Path], tmp_path: Path) -> None:
    inside = files["good0"].parent
    one = ingester(roots=[inside])
    assert one.ingest(IngestMessage(str(files["good0"]))).path is not None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = elsewhere / files["good1"].name
    outside.write_bytes(files["good1"].read_bytes())
    with pytest.raises(IngestFileError, match="not under the folders"):
        one.ingest(IngestMessage(str(outside)))
    link = inside / "coj1m011-kb05-20150219-0300-e91.fits.fz"
    link.symlink_to(outside)  # a link inside pointing out is refused too
    with pytest.raises(IngestFileError, match="not under the folders"):
        one.ingest(IngestMessage(str(link)))
    sibling = tmp_path / (inside.name + "-sibling")  # a folder whose name starts like the root's
    sibling.mkdir()
    with pytest.raises(IngestFileError, match="not under the folders"):
        one.ingest(IngestMessage(str(sibling / "x.fits")))


def test_an_ingester_needs_somewhere_to_put_files() -> None:
    with pytest.raises(ConfigurationError, match="nothing to ingest into"):
        Ingester(None)
    with pytest.raises(ConfigurationError, match="need the transfer engine"):
        ingester(destinations=["copies"])
    with pytest.raises(ConfigurationError, match="has no transfer ledger"):
        ingester().ingest(IngestMessage("/data/a.fits", destinations=("copies",)))


def test_oversized_messages_are_refused() -> None:
    body = b'{"filepath": "/a.fits", "metadata": {"X": "' + b"x" * MAX_MESSAGE_SIZE + b'"}}'
    with pytest.raises(MessageError, match="send the path, not the file"):
        IngestMessage.parse(body)
