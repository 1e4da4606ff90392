"""Storage: the store contract, the fsspec-backed store, layouts and path safety."""

from __future__ import annotations

from .base import ConnectionTestResult, FileStore, ObjectInfo, StoredObject

__all__ = ["FileStore", "StoredObject", "ObjectInfo", "ConnectionTestResult"]
