import importlib.metadata

import ocs_transfer_local


def test_version_matches_distribution() -> None:
    assert ocs_transfer_local.__version__ == importlib.metadata.version("ocs-transfer-local")
