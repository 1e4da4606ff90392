import importlib.metadata

import ocs_transfer_seafile


def test_version_matches_distribution() -> None:
    assert ocs_transfer_seafile.__version__ == importlib.metadata.version("ocs-transfer-seafile")
