"""Local-disk and WebDAV storage providers for ocs_transfer, and the
self-hosted file server."""

from __future__ import annotations

__version__ = "0.1.0"
