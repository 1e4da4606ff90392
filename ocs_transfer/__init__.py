"""ocs_transfer: move observatory data products to where they are kept and shared.

Importing this package does no work: settings are read, plugins loaded and
clients built only when first used.
"""

from __future__ import annotations

from .exceptions import (
    BackoffRetryError,
    DoNotRetryError,
    NonFatalDoNotRetryError,
    OcsTransferError,
    RetryError,
)
from .hookspecs import hookimpl
from .settings import Settings

__all__ = [
    "BackoffRetryError",
    "DoNotRetryError",
    "NonFatalDoNotRetryError",
    "OcsTransferError",
    "RetryError",
    "Settings",
    "__version__",
    "hookimpl",
]

__version__ = "0.1.0"
