"""Testing helpers shipped with ocs_transfer, and a pytest plugin.

- :mod:`ocs_transfer.testing.conformance`: :class:`StoreTests`, the suite every
  storage provider runs (see ``docs/storage.md``).
- :mod:`ocs_transfer.testing.data`: generated streams (:class:`PatternReader`)
  and the hostile and traversal names the suite uses.
- :mod:`ocs_transfer.testing.services`: skip (or, in CI, fail) tests whose
  service is not running.

Loading this module as a pytest plugin (``pytest_plugins =
["ocs_transfer.testing"]`` in a ``conftest.py``) adds the fixtures below, for a
provider's own tests beyond the suite.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.register_assert_rewrite("ocs_transfer.testing.conformance")

from .conformance import (  # noqa: E402 - after register_assert_rewrite
    ConnectionTests,
    LinkTests,
    NameTests,
    ProviderFixtures,
    ReadTests,
    RobustnessTests,
    StoreTests,
    VersioningTests,
    WriteTests,
)
from .data import (  # noqa: E402
    HOSTILE_NAMES,
    TRAVERSAL_PATHS,
    PatternReader,
    ShortReader,
    SourceReadError,
    pattern_bytes,
    pattern_digests,
)

__all__ = [
    "HOSTILE_NAMES",
    "TRAVERSAL_PATHS",
    "ConnectionTests",
    "LinkTests",
    "NameTests",
    "PatternReader",
    "ProviderFixtures",
    "ReadTests",
    "RobustnessTests",
    "ShortReader",
    "SourceReadError",
    "StoreTests",
    "VersioningTests",
    "WriteTests",
    "pattern_bytes",
    "pattern_digests",
    "pattern_reader",
]


@pytest.fixture
def pattern_reader() -> Callable[..., PatternReader]:
    """A factory of generated sources: ``pattern_reader(size,
    fail_after=None)``."""
    return PatternReader
