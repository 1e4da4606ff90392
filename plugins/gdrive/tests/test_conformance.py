"""The conformance suite (``ocs_transfer.testing.StoreTests``) on ``gdrive``
against the fake Drive, in My Drive and in a shared drive."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator

import pytest
from fake_drive import FakeDrive
from gdrive_helpers import make_store
from ocs_transfer_gdrive.store import GdriveStore

from ocs_transfer.testing import StoreTests


class TestGdriveMyDrive(StoreTests):
    @pytest.fixture
    def store(self, drive: FakeDrive) -> Iterator[GdriveStore]:
        with make_store(drive, root="archive/fits") as store:
            yield store

    @pytest.fixture
    def raw_listing(self, drive: FakeDrive) -> Callable[[], list[str]]:
        """Every file Drive holds anywhere (trashed ones too), by name under the store's root."""
        def listing() -> list[str]:
            return [p.removeprefix("archive/fits/") for p in drive.paths()]

        return listing

    @pytest.fixture
    def open_link(self, drive: FakeDrive) -> Callable[[str], bytes]:
        """A webViewLink names its file by id (``/file/d/<id>/view``): the
        bytes of the file with that id."""
        def content(url: str) -> bytes:
            parts = urllib.parse.urlsplit(url)
            assert parts.netloc == "drive.google.com", url
            prefix, file_id, view = parts.path.rsplit("/", 2)
            assert prefix == "/file/d" and view == "view", url
            return drive.content(file_id)

        return content

    @pytest.fixture
    def large_file_size(self) -> int:
        return 48 * (1 << 20)

    @pytest.fixture
    def bad_credentials_store(self, drive: FakeDrive) -> Iterator[GdriveStore]:
        creds = drive.credentials()
        drive.revoke(creds["refresh_token"])
        with make_store(drive, creds, root="archive/fits") as store:
            yield store

    @pytest.fixture
    def drop_connections(self, drive: FakeDrive) -> Callable[[], None]:
        return drive.drop_connections


class TestGdriveSharedDrive(TestGdriveMyDrive):
    @pytest.fixture
    def store(self, drive: FakeDrive) -> Iterator[GdriveStore]:
        drive_id = drive.add_shared_drive("Observatory")
        self._drive_id = drive_id
        with make_store(drive, root="archive/fits", drive_id=drive_id) as store:
            yield store

    @pytest.fixture
    def raw_listing(self, drive: FakeDrive, store: GdriveStore) -> Callable[[], list[str]]:
        def listing() -> list[str]:
            return [p.removeprefix("archive/fits/") for p in drive.paths(store.config.drive_id or "")]

        return listing
