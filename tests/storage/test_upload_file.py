"""The ingester-style entry point ``upload_file``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ocs_transfer import NonFatalDoNotRetryError, Settings
from ocs_transfer.exceptions import AlreadyStoredError
from ocs_transfer.input import FileFactory
from ocs_transfer.storage import get_store, upload_file


def test_upload_file_returns_version_set_at_the_data_files_path(examples_dir: Path) -> None:
    source = examples_dir / "coj1m011-kb05-20150219-0125-e90.fits.fz"
    store = get_store("memory://upload-file-1")
    with source.open("rb") as f:
        version = upload_file(f, store=store, settings=Settings())
    with source.open("rb") as f:
        expected_path = FileFactory.get_datafile(f, settings=Settings()).get_filestore_path()
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    assert version == {"key": md5, "md5": md5, "extension": ".fits.fz"}
    assert [o.path for o in store.list()] == [expected_path]
    with store.get_fileobj(expected_path) as f:
        assert f.read() == source.read_bytes()


def test_identical_content_again_is_non_fatal_already_stored(examples_dir: Path) -> None:
    source = examples_dir / "cpt1m010-kb70-20151219-0073-e10.fits.fz"
    store = get_store("memory://upload-file-2")
    with source.open("rb") as f:
        upload_file(f, store=store, settings=Settings())
    with source.open("rb") as f, pytest.raises(NonFatalDoNotRetryError) as info:
        upload_file(f, store=store, settings=Settings())
    assert isinstance(info.value, AlreadyStoredError)
    assert len(list(store.list())) == 1

