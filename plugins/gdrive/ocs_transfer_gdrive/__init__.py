"""Google Drive storage provider for ocs_transfer (provider ``gdrive``) and
an fsspec filesystem for Drive (protocol ``gdrivefs``)."""

from __future__ import annotations

__version__ = "0.1.0"
