"""fsspec's own abstract test suite on the ``gdrivefs`` filesystem, and
``fsspec.open("gdrivefs://...")`` through the ``fsspec.specs`` entry point."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

import fsspec
import pytest
from fake_drive import FakeDrive
from fsspec.tests.abstract import (
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)
from gdrive_helpers import make_fs
from ocs_transfer_gdrive.drivefs import DriveFileSystem


@pytest.fixture(scope="module")
def module_drive() -> Iterator[FakeDrive]:
    with FakeDrive() as fake:
        yield fake


@pytest.fixture(scope="module")
def module_fs(module_drive: FakeDrive) -> Iterator[DriveFileSystem]:
    filesystem = make_fs(module_drive)
    yield filesystem
    filesystem.close()


class DriveFixtures(AbstractFixtures):
    @pytest.fixture
    def fs(self, module_fs: DriveFileSystem) -> DriveFileSystem:
        return module_fs

    @pytest.fixture
    def fs_join(self):  # type: ignore[no-untyped-def]
        return posixpath.join

    @pytest.fixture
    def fs_path(self, fs: DriveFileSystem) -> Iterator[str]:
        import uuid

        path = f"abstract-{uuid.uuid4().hex[:8]}"
        yield path
        if fs.exists(path):
            fs.rm(path, recursive=True)


@pytest.mark.slow
class TestCopy(DriveFixtures, AbstractCopyTests):
    pass


@pytest.mark.slow
class TestGet(DriveFixtures, AbstractGetTests):
    pass


@pytest.mark.slow
class TestPut(DriveFixtures, AbstractPutTests):
    pass


class TestOpen(DriveFixtures, AbstractOpenTests):
    pass


class TestPipe(DriveFixtures, AbstractPipeTests):
    pass


def test_fsspec_open_by_protocol(drive: FakeDrive) -> None:
    options = {**drive.credentials(), "api_url": drive.url, "token_url": drive.token_url}
    with fsspec.open("gdrivefs://pandas/table.csv", "wb", **options) as f:
        f.write(b"a,b\n1,2\n")
    with fsspec.open("gdrivefs://pandas/table.csv", "rb", **options) as f:
        assert f.read() == b"a,b\n1,2\n"
    assert drive.paths() == ["pandas/table.csv"]
    assert type(fsspec.filesystem("gdrivefs", **options)) is DriveFileSystem
