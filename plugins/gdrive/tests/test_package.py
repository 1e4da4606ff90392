import importlib.metadata

import ocs_transfer_gdrive


def test_version_matches_distribution() -> None:
    assert ocs_transfer_gdrive.__version__ == importlib.metadata.version("ocs-transfer-gdrive")
