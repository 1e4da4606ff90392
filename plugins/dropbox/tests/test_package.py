import importlib.metadata

import ocs_transfer_dropbox


def test_version_matches_distribution() -> None:
    assert ocs_transfer_dropbox.__version__ == importlib.metadata.version("ocs-transfer-dropbox")
