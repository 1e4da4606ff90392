"""Path safety (placeholder: the full rules land with the layouts work)."""

from __future__ import annotations

from ..exceptions import UnsafePathError

__all__ = ["safe_path"]


def safe_path(path: str) -> str:
    """A relative ``/``-separated object path with no traversal."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise UnsafePathError(f"not a usable object path: {path!r}")
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in path:
        raise UnsafePathError(f"object path {path!r} must be relative, without '.', '..', '\\\\' or empty parts")
    return path
