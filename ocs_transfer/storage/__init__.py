"""Storage: the store contract, the fsspec-backed store, layouts and path safety.

:func:`get_store` builds a store from a provider name and options, or from a
quick destination URL::

    get_store("./archive")                 # local directory (ocs-transfer-local)
    get_store("memory://scratch")          # in-process memory
    get_store("s3://bucket/prefix")        # S3 (ocs-transfer[s3])
    get_store("memory", root="scratch")    # provider name plus config options
    get_store(settings=Settings.from_env())  # FILESTORE_TYPE and friends, as ocs_archive
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from ..exceptions import AlreadyStoredError, ObjectNotFoundError
from .base import ConnectionTestResult, FileStore, ObjectInfo, StoredObject
from .hashing import iter_chunks

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "FileStore",
    "StoredObject",
    "ObjectInfo",
    "ConnectionTestResult",
    "get_store",
    "identical_stored",
    "upload_file",
]

_URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")


def _provider_for_scheme(scheme: str) -> type[FileStore]:
    from .. import plugins

    cls = plugins.provider_for_scheme(scheme)
    if cls is not None:
        return cls
    # Not installed: let get_provider explain what to install.
    alias = {"file": "local", "gs": "gcs", "webdav+https": "webdav", "webdav+http": "webdav"}.get(scheme, scheme)
    return plugins.get_provider(alias)


def get_store(
    name_or_url: str | None = None,
    *,
    credentials: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    **options: Any,
) -> FileStore:
    """Build a store.

    ``name_or_url`` is a provider name (options are its config fields), a URL
    whose scheme a provider claims (``memory://x``, ``s3://bucket/prefix``,
    ``file:///data``, ``webdav+https://host/path``), or a local path
    (``./archive``, ``/data``). With no name, ``settings.filestore_type``
    (``FILESTORE_TYPE``) picks the provider and the provider reads its config
    from the settings, as ocs_archive did.
    """
    from .. import plugins

    if name_or_url is None:
        from ..settings import Settings

        settings = settings or Settings.from_env()
        cls = plugins.get_provider(settings.filestore_type)
        config = cls.config_from_settings(settings, **options)
        return cls.from_config(config, credentials, settings=settings)  # type: ignore[no-any-return]
    match = _URL.match(name_or_url)
    if match:
        cls = _provider_for_scheme(match.group("scheme").lower())
        config = cls.config_from_url(name_or_url, **options)
    elif "/" in name_or_url or name_or_url.startswith(".") or name_or_url.startswith("~"):
        cls = _provider_for_scheme("file")
        config = cls.config_from_url(name_or_url, **options)
    else:
        cls = plugins.get_provider(name_or_url)
        config = cls.config_from_options(options)
    store: FileStore = cls.from_config(config, credentials, settings=settings)
    return store


def _md5_of(stream: IO[bytes]) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in iter_chunks(stream):
        digest.update(chunk)
    return digest.hexdigest()


def upload_file(
    fileobj: IO[bytes],
    path: str | None = None,
    file_metadata: Mapping[str, Any] | None = None,
    *,
    store: FileStore | None = None,
    settings: Settings | None = None,
    layout: Any = None,
    context: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The ingester-style entry point: read ``fileobj``'s metadata, store it,
    and return the version set (``key``, ``md5``, ``extension``).

    Storing identical content again at the same path raises
    :class:`~ocs_transfer.exceptions.AlreadyStoredError` (a
    ``NonFatalDoNotRetryError``), as ingester services expect.
    """
    from ..input import FileFactory
    from ..settings import Settings
    from .store_file import destination_path

    settings = settings or Settings.from_env()
    store = store or get_store(settings=settings)
    data_file = FileFactory.get_datafile(fileobj, file_metadata=file_metadata, settings=settings)
    target = path or destination_path(data_file, layout=layout, context=context)
    existing = identical_stored(store, target, fileobj, data_file.open_file.size)
    if existing is not None:
        raise AlreadyStoredError(f"{target!r} already holds this exact content (md5 {existing[1]})")
    return store.store_file(data_file, target).version_set()


def identical_stored(store: FileStore, target: str, fileobj: IO[bytes], size: int) -> tuple[ObjectInfo, str] | None:
    """``(info, md5)`` of what ``store`` holds at ``target`` when it is byte
    for byte ``fileobj`` (same size, same md5; both are read in chunks),
    else ``None``. ``fileobj`` is left at its start."""
    try:
        existing = store.info(target)
    except ObjectNotFoundError:
        return None
    if existing.size != size:
        return None
    with store.get_fileobj(target) as stored:
        stored_md5 = _md5_of(stored)
    fileobj.seek(0)
    same = _md5_of(fileobj) == stored_md5
    fileobj.seek(0)
    return (existing, stored_md5) if same else None
