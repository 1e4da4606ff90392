"""ocs_transfer: move observatory data products to where they are kept and shared.

Importing this package does no work: settings are read, plugins loaded and
clients built only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import (
    BackoffRetryError,
    DoNotRetryError,
    NonFatalDoNotRetryError,
    OcsTransferError,
    RetryError,
)
from .hookspecs import hookimpl

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name == "Settings":  # imported on first use: most programs never read settings from the environment
        from .settings import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
