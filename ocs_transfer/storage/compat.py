"""ocs_archive 0.5's file-store shapes, as a thin layer over ocs_transfer's stores.

Code written for ``ocs_archive.storage`` keeps working after its imports change
to this module::

    from ocs_transfer.storage.compat import FileStoreFactory, FileStoreConnectionError, FileStoreSpecificationError

    filestore = FileStoreFactory.get_file_store_class()()    # FILESTORE_TYPE: s3, local or dummy
    version = filestore.store_file(data_file)                # {"key": ..., "md5": ..., "extension": ...}
    url = filestore.get_url(path, version["key"], 3600)      # expiration in seconds

Each class here holds one of our stores (``.store``, a
:class:`~ocs_transfer.storage.FileStore`) and only changes the call shapes and
the error classes: storing, verifying, links and paths are our stores' own.
New code uses :func:`ocs_transfer.storage.get_store` and the store API
directly (frozen results, precise errors). The differences from ocs_archive
that remain are listed in ``docs/ocs_archive.md``.

Errors: a failure that may pass on a retry is a :class:`FileStoreConnectionError`
(a ``RetryError``), one that will not is a :class:`FileStoreSpecificationError`
(a ``DoNotRetryError``), each with our precise error as ``__cause__``; a
missing object is our ``ObjectNotFoundError`` (a ``FileNotFoundError``, as
ocs_archive's ``FileSystemStore`` raised).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import IO, Any, ClassVar

from ..exceptions import (
    FileStoreConnectionError,
    FileStoreSpecificationError,
    NonFatalDoNotRetryError,
    ObjectNotFoundError,
    OcsTransferError,
)
from ..settings import Settings
from .base import DEFAULT_LINK_EXPIRATION
from .base import FileStore as Store

__all__ = [
    "FILESTORE_TYPES_TO_CLASS",
    "OCS_ARCHIVE_S3_ENDPOINT_URL",
    "FileStore",
    "FileStoreConnectionError",
    "FileStoreFactory",
    "FileStoreSpecificationError",
    "FileSystemStore",
    "ProviderFileStore",
    "S3Store",
]

log = logging.getLogger(__name__)

#: ocs_archive 0.5's default ``S3_ENDPOINT_URL``, used by :class:`S3Store` when the variable is unset.
OCS_ARCHIVE_S3_ENDPOINT_URL = "https://s3.us-west-2.amazonaws.com"


@contextlib.contextmanager
def _as_ocs_archive_errors(what: str) -> Iterator[None]:
    """Raise our errors as ocs_archive's two file-store classes (see the module docs)."""
    from ..retry import Kind, classify, translate

    try:
        yield
    except (ObjectNotFoundError, NonFatalDoNotRetryError, FileStoreConnectionError, FileStoreSpecificationError):
        raise
    except Exception as exc:
        ours = exc if isinstance(exc, OcsTransferError) else translate(exc, what)
        if isinstance(ours, ObjectNotFoundError):
            raise ours from exc
        if classify(ours).kind in (Kind.RETRY, Kind.BACKOFF):
            raise FileStoreConnectionError(f"{what}: {ours}") from ours
        raise FileStoreSpecificationError(f"{what}: {ours}") from ours


class FileStore:
    """ocs_archive's ``FileStore``: the base of the stores below and the
    ``dummy`` type, which keeps nothing: ``store_file`` only computes the
    version set (md5 streamed from the file), links are ``''``, sizes 0. It is
    used only when asked for (``FILESTORE_TYPE=dummy``), and says so in the log."""

    def __init__(self) -> None:
        if type(self) is FileStore:
            log.warning("FILESTORE_TYPE=dummy: files are not stored anywhere")

    def store_file(self, data_file: Any) -> dict[str, str]:
        md5 = data_file.open_file.get_md5()
        return {"key": md5, "md5": md5, "extension": data_file.open_file.extension}

    def delete_file(self, path: str, version_id: str | None = None) -> None:
        """Nothing is kept, so nothing is deleted."""

    def get_url(self, path: str, version_id: str | None = None, expiration: float | None = None) -> str:
        return ""

    @contextlib.contextmanager
    def get_fileobj(self, path: str) -> Iterator[IO[bytes] | None]:
        with io.BytesIO() as empty:
            yield empty

    def get_file_size(self, path: str) -> int:
        return 0


class ProviderFileStore(FileStore):
    """ocs_archive's method shapes over one of our stores (``self.store``),
    built from the environment as ocs_archive did (``FILESTORE_TYPE`` and the
    provider's variables; ``options`` override them)."""

    #: The provider name (``s3``, ``local``, ``gcs``, ...).
    provider: ClassVar[str]

    def __init__(self, *, settings: Settings | None = None, **options: Any) -> None:
        super().__init__()
        self.settings = settings if settings is not None else Settings.from_env()
        with _as_ocs_archive_errors(f"setting up the {self.provider} file store"):
            from .. import plugins

            cls = plugins.get_provider(self.provider)
            config = cls.config_from_settings(self.settings, **options)
            self.store: Store = cls.from_config(config, None, settings=self.settings)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r})"

    def store_file(self, data_file: Any) -> dict[str, str]:
        """Store ``data_file`` at its file-store path; the version set
        (``key``: version id, or the md5 where the store does not version)."""
        with _as_ocs_archive_errors(f"storing {data_file.open_file.name}"):
            return self.store.store_file(data_file).version_set()

    def delete_file(self, path: str, version_id: str | None = None) -> None:
        """Delete the object (that version, when given); a missing one is no error, as in ocs_archive."""
        with contextlib.suppress(ObjectNotFoundError), _as_ocs_archive_errors(f"deleting {path}"):
            # ocs_archive passes its version set's key (the md5 where the store does not version): stores take it
            self.store.delete_file(path, version_id or None)

    def get_url(self, path: str, version_id: str | None = None, expiration: float | None = None) -> str:
        """A download link living ``expiration`` seconds (the store's default when ``None``)."""
        life = DEFAULT_LINK_EXPIRATION if expiration is None else timedelta(seconds=float(expiration))
        with _as_ocs_archive_errors(f"making a link to {path}"):
            return self.store.get_url(path, (version_id or None) if self.store.supports_versioning else None, life)

    def _open(self, path: str) -> IO[bytes]:
        with _as_ocs_archive_errors(f"reading {path}"):
            return self.store.open(path)

    @contextlib.contextmanager
    def get_fileobj(self, path: str) -> Iterator[IO[bytes] | None]:
        """The object as a streaming binary file, closed afterwards."""
        fileobj = self._open(path)
        try:
            yield fileobj
        finally:
            fileobj.close()

    def get_file_size(self, path: str) -> int:
        with _as_ocs_archive_errors(f"reading the size of {path}"):
            return self.store.get_file_size(path)


class S3Store(ProviderFileStore):
    """ocs_archive's ``S3Store(bucket=BUCKET)``: our ``s3`` provider configured
    from ``BUCKET``, ``S3_ENDPOINT_URL`` (ocs_archive's default,
    :data:`OCS_ARCHIVE_S3_ENDPOINT_URL`, when unset), ``S3_ADDRESSING_STYLE``,
    ``S3_SIGNATURE_VERSION``, ``AWS_DEFAULT_REGION``, ``S3_DAYS_TO_IA_STORAGE``
    and the AWS credential chain."""

    provider = "s3"

    def __init__(self, bucket: str | None = None, *, settings: Settings | None = None, **options: Any) -> None:
        settings = settings if settings is not None else Settings.from_env()
        options.setdefault("bucket", bucket or settings.bucket)
        options.setdefault("endpoint_url", settings.s3_endpoint_url or OCS_ARCHIVE_S3_ENDPOINT_URL)
        super().__init__(settings=settings, **options)


class FileSystemStore(ProviderFileStore):
    """ocs_archive's ``FileSystemStore(root_dir=FILESYSTEM_STORAGE_ROOT_DIR)``:
    our ``local`` provider (package ``ocs-transfer-local``), with links under
    ``FILESYSTEM_STORAGE_BASE_URL``. Like ocs_archive's it does not version:
    storing again overwrites (atomically)."""

    provider = "local"

    def __init__(self, root_dir: str | None = None, *, settings: Settings | None = None, **options: Any) -> None:
        settings = settings if settings is not None else Settings.from_env()
        root = root_dir if root_dir is not None else settings.filesystem_storage_root_dir
        if not root:
            raise FileStoreSpecificationError(
                "the local file store needs a root directory: set FILESYSTEM_STORAGE_ROOT_DIR (or pass root_dir)"
            )
        settings = settings.evolve(filesystem_storage_root_dir=os.fspath(root))
        super().__init__(settings=settings, **options)

    @contextlib.contextmanager
    def get_fileobj(self, path: str) -> Iterator[IO[bytes] | None]:
        """The file, or ``None`` when there is none (as ocs_archive's ``FileSystemStore``)."""
        try:
            fileobj = self._open(path)
        except ObjectNotFoundError:
            yield None
            return
        try:
            yield fileobj
        finally:
            fileobj.close()


#: ocs_archive's three types; any other installed provider name works too.
FILESTORE_TYPES_TO_CLASS: dict[str, type[FileStore]] = {"dummy": FileStore, "local": FileSystemStore, "s3": S3Store}


class FileStoreFactory:
    """ocs_archive's ``FileStoreFactory``: the store class for ``FILESTORE_TYPE``."""

    @staticmethod
    def get_file_store_class(filestore_type: str | None = None) -> type[FileStore]:
        """The class for ``filestore_type`` (default: ``FILESTORE_TYPE``):
        ``dummy``, ``local``, ``s3``, or any installed provider's name.

        Unlike ocs_archive, an unset ``FILESTORE_TYPE`` is an error, not the
        dummy store: a misconfigured ingester must not report files as stored
        while keeping nothing."""
        if filestore_type is None:
            filestore_type = os.environ.get("FILESTORE_TYPE", "").strip()
            if not filestore_type:
                raise FileStoreSpecificationError(
                    "FILESTORE_TYPE is not set: set it to s3, local or dummy (ocs_archive 0.5 fell back to the"
                    " dummy store, which keeps nothing; ocs_transfer does not guess)"
                )
        known = FILESTORE_TYPES_TO_CLASS.get(filestore_type)
        if known is not None:
            return known
        from .. import plugins

        try:
            plugins.get_provider(filestore_type)
        except OcsTransferError as exc:
            raise FileStoreSpecificationError(f"Invalid FileStore type {filestore_type!r}: {exc}") from exc
        name = filestore_type.lower()
        return type(f"{name.title()}FileStore", (ProviderFileStore,), {"provider": name, "__module__": __name__})

    @staticmethod
    def get_file_store(filestore_type: str | None = None, **kwargs: Any) -> FileStore:
        """An instance of :meth:`get_file_store_class` (``kwargs`` go to its constructor)."""
        return FileStoreFactory.get_file_store_class(filestore_type)(**kwargs)
