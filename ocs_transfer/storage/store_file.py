"""Storing a data file: where it goes, what it is, then :meth:`FileStore.put`."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .base import Progress, StoredObject

if TYPE_CHECKING:
    from .base import FileStore

__all__ = ["store_data_file", "destination_path"]


def destination_path(data_file: Any, *, layout: Any = None, context: Mapping[str, str] | None = None) -> str:
    """Where ``data_file`` goes: ``layout``'s path (a layout name, a template
    or a Layout), or the data file's own file-store path when no layout is
    given."""
    if layout is None:
        return str(data_file.get_filestore_path())
    from .layouts import get_layout

    return str(get_layout(layout).path_for(data_file, context or {}))


def store_data_file(
    store: FileStore,
    data_file: Any,
    path: str | None = None,
    *,
    layout: Any = None,
    context: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    options: Mapping[str, Any] | None = None,
) -> StoredObject:
    """Stream ``data_file`` into ``store`` and return the verified result."""
    target = path if path is not None else destination_path(data_file, layout=layout, context=context)
    open_file = data_file.open_file
    fileobj = open_file.fileobj
    if fileobj.seekable():
        fileobj.seek(0)
    return store.put(
        fileobj,
        target,
        size=open_file.size,
        content_type=data_file.get_filestore_content_type(),
        progress=progress,
        cancel=cancel,
        extension=open_file.extension,
        **({"options": options} if options else {}),  # stores written before put took options still work
    )
