"""The store contract every provider implements.

:class:`FileStore` is the abstract base that observatories subclass and plugins
register. Most providers do not subclass it directly but
:class:`ocs_transfer.storage.fsspec_store.FsspecStore`, which implements the
contract once over any fsspec filesystem.

Paths given to a store are relative to its root (its bucket and prefix, its
directory), use ``/`` as separator and are checked by
:func:`ocs_transfer.storage.paths.safe_path` before any I/O.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, ClassVar, Self

import attrs

if TYPE_CHECKING:
    from ..redact import Secret
    from ..settings import Settings

__all__ = [
    "DEFAULT_LINK_EXPIRATION",
    "ConnectionTestResult",
    "FileStore",
    "ObjectInfo",
    "Progress",
    "StoredObject",
    "share_link",
]

#: How long a download link lives unless the caller says otherwise.
DEFAULT_LINK_EXPIRATION = timedelta(days=7)

#: Called with the number of bytes just moved.
Progress = Callable[[int], None]


@attrs.frozen(kw_only=True)
class StoredObject:
    """What a store holds after a verified upload."""

    path: str  #: relative to the store root
    size: int
    md5: str  #: hex, computed while reading the source
    sha256: str  #: hex, computed while reading the source
    content_type: str
    version_id: str | None = None  #: the provider's version id, when it versions
    provider_checksum: str | None = None  #: "<algorithm>:<value>" as the provider reported it
    extension: str = ""  #: the data file's extension, e.g. ".fits.fz"

    def version_set(self) -> dict[str, str]:
        """The dict ingester code expects: ``key`` (version id, or the md5 when
        the store does not version), ``md5`` and ``extension``."""
        return {"key": self.version_id or self.md5, "md5": self.md5, "extension": self.extension}


@attrs.frozen(kw_only=True)
class ObjectInfo:
    """One object as a listing or ``info`` sees it."""

    path: str
    size: int
    modified: datetime | None = None
    version_id: str | None = None
    provider_checksum: str | None = None
    content_type: str | None = None


@attrs.frozen(kw_only=True)
class ConnectionTestResult:
    ok: bool
    message: str
    checked_at: datetime
    duration_s: float


class FileStore(abc.ABC):
    """A place that keeps files.

    Subclasses set ``name`` (the provider name users type), ``Config`` (a
    frozen attrs class of non-secret options), and implement
    :meth:`from_config` and the abstract methods. ``schemes`` lists the URL
    schemes :func:`ocs_transfer.storage.get_store` maps to this provider
    (e.g. ``("s3",)``), and :meth:`config_from_url` turns such a URL into a
    config.

    Every method that touches the provider translates its errors into the
    classes of :mod:`ocs_transfer.exceptions` (``raise ... from exc``).
    """

    name: ClassVar[str]
    Config: ClassVar[type[Any]]
    schemes: ClassVar[tuple[str, ...]] = ()
    #: Whether ``version_id`` arguments mean anything for this provider.
    supports_versioning: ClassVar[bool] = False
    #: Whether ``put`` needs the size before the first byte (its API does; without
    #: one it spools the source to a temporary file first). Streams whose size can
    #: be found by making them twice (bundles) are measured instead.
    needs_size: ClassVar[bool] = False
    #: Names of credential fields this provider accepts (for prompts and docs).
    credential_fields: ClassVar[tuple[str, ...]] = ()
    #: Whether ``get_url`` links carry credentials (an access key id, a session
    #: token, a signature made with them): such links are made when asked for,
    #: never stored in the ledger or shown in transfer records.
    links_hold_credentials: ClassVar[bool] = False
    #: Config options that name a server the store connects to: exactly these
    #: are checked (:func:`ocs_transfer.transfer.guards.check_endpoints`: well
    #: formed, and allowed by ``OCS_TRANSFER_ENDPOINT_ALLOWLIST``). The default is
    #: the usual names, for providers written before they declared theirs.
    endpoint_options: ClassVar[tuple[str, ...]] = ("endpoint_url", "url", "server", "server_url", "base_url", "host")

    @classmethod
    def ambient_identity(cls, options: Mapping[str, Any], credentials: Mapping[str, Any]) -> str | None:
        """What ambient identity of the service (environment keys, instance
        role, a key file on the server...) a store with these options and
        credentials would run as, or None when it brings its own."""
        return None

    @classmethod
    def local_paths(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        """The folders on this machine a store with these options reads and writes."""
        return ()

    # -- construction --------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def from_config(
        cls,
        config: Any,
        credentials: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
    ) -> Self:
        """Build a store from its config and credentials (values may be
        :class:`ocs_transfer.redact.Secret`)."""

    @classmethod
    def config_from_options(cls, options: Mapping[str, Any]) -> Any:
        """``cls.Config`` from user-given options (``--option KEY=VALUE`` and
        JSON values): strings become the field's type (``"False"`` → ``False``,
        ``"30"`` → ``30``, ``""`` / ``"none"`` → ``None`` for optional fields),
        and an unknown or mistyped option is a :class:`ConfigurationError`
        naming it and what it wants."""
        from .options import config_from_options

        return config_from_options(cls.Config, options, provider=cls.name)

    @classmethod
    def parse_credentials(
        cls,
        credentials: Mapping[str, Any] | None,
        *,
        config: Any = None,
        required: tuple[str, ...] = (),
        one_of: tuple[tuple[str, ...], ...] = (),
        needs: Mapping[str, str] | None = None,
    ) -> dict[str, Secret]:
        """The provider's credentials as :class:`Secret` values, checked:
        fields outside ``credential_fields`` are refused, empty ones dropped,
        ``required`` fields must be there, at most one of each ``one_of``
        group may be given, and each ``needs`` entry (default ``{"password":
        "username"}``) says a field needs another credential or config option.
        Errors are :class:`CredentialError` / :class:`ConfigurationError`
        naming fields, never values."""
        from ..exceptions import ConfigurationError, CredentialError
        from ..redact import Secret

        given: dict[str, Secret] = {}
        for key, value in (credentials or {}).items():
            if value is None:
                continue
            secret = value if isinstance(value, Secret) else Secret(str(value))
            if secret.reveal() == "":
                continue
            given[str(key)] = secret
        unknown = sorted(set(given) - set(cls.credential_fields))
        if unknown:
            known = ", ".join(cls.credential_fields) if cls.credential_fields else "none"
            raise ConfigurationError(f"unknown {cls.name} credential(s) {', '.join(unknown)}; it takes: {known}")
        absent = [f for f in required if f not in given]
        if absent:
            raise CredentialError(f"the {cls.name} destination needs the credential(s) {', '.join(absent)}")
        for group in one_of:
            present = [f for f in group if f in given]
            if len(present) > 1:
                raise ConfigurationError(f"give the {cls.name} store one of {' or '.join(group)}, not {len(present)}")
        rules = {"password": "username"} if needs is None else needs
        for field, other in rules.items():
            if field not in given or other in given:
                continue
            if config is not None and getattr(config, other, None):
                continue
            raise ConfigurationError(f"a {cls.name} {field} needs the {other} (an option or a credential)")
        return given

    @classmethod
    def config_from_url(cls, url: str, **options: Any) -> Any:
        """The config for a quick destination URL such as ``s3://bucket/prefix``."""
        raise NotImplementedError(f"provider {cls.name!r} cannot be configured from a URL")

    @classmethod
    def config_from_settings(cls, settings: Settings, **options: Any) -> Any:
        """The config implied by ocs_archive-style settings (``FILESTORE_TYPE``
        selected this provider; ``BUCKET``, ``FILESYSTEM_STORAGE_ROOT_DIR``,
        ... say where)."""
        from ..exceptions import ConfigurationError

        raise ConfigurationError(f"provider {cls.name!r} cannot be configured from FILESTORE_TYPE settings")

    # -- writing -------------------------------------------------------------------

    @abc.abstractmethod
    def put(
        self,
        source: IO[bytes],
        path: str,
        *,
        size: int | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        extension: str = "",
        options: Mapping[str, Any] | None = None,
    ) -> StoredObject:
        """Stream ``source`` (read from its current position to EOF) to ``path``.

        ``options`` are per-call provider options (e.g. S3's
        ``storage_class``); a provider ignores names it does not know.

        Reads the source once, computing md5 and sha256 on the way; publishes
        atomically (nothing is visible at ``path`` until the upload is complete);
        verifies size and checksum at the destination; cleans up on any failure
        or when ``cancel`` is set (raising ``TransferCancelledError``). Memory is
        bounded by the chunk size. Overwrites an existing object at ``path``.
        """

    def store_file(
        self,
        data_file: Any,
        path: str | None = None,
        *,
        layout: Any = None,
        context: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> StoredObject:
        """Store a :class:`~ocs_transfer.input.DataFile` at ``path``, or where
        ``layout`` (default: the data file's own file-store path) puts it.
        ``options`` go to :meth:`put`."""
        from .store_file import store_data_file

        return store_data_file(
            self, data_file, path, layout=layout, context=context, progress=progress, cancel=cancel, options=options
        )

    @abc.abstractmethod
    def delete_file(self, path: str, version_id: str | None = None) -> None:
        """Delete the object (or one version of it). Missing objects raise
        ``ObjectNotFoundError``. A store that does not version objects takes
        any ``version_id`` (ocs_archive passes the md5 there) and deletes its
        one object."""

    # -- reading -------------------------------------------------------------------

    @abc.abstractmethod
    def open(self, path: str, version_id: str | None = None) -> IO[bytes]:
        """A streaming, seekable-if-possible binary reader. Close it."""

    @contextlib.contextmanager
    def get_fileobj(self, path: str, version_id: str | None = None) -> Iterator[IO[bytes]]:
        """``open`` as a context manager (ocs_archive's name)."""
        fileobj = self.open(path, version_id)
        try:
            yield fileobj
        finally:
            fileobj.close()

    @abc.abstractmethod
    def info(self, path: str, version_id: str | None = None) -> ObjectInfo:
        """Size, version and checksum of one object; ``ObjectNotFoundError``
        when absent."""

    def get_file_size(self, path: str, version_id: str | None = None) -> int:
        return self.info(path, version_id).size

    def exists(self, path: str) -> bool:
        from ..exceptions import ObjectNotFoundError

        try:
            self.info(path)
        except ObjectNotFoundError:
            return False
        return True

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` (recursively), in no promised order."""

    @abc.abstractmethod
    def get_url(
        self,
        path: str,
        version_id: str | None = None,
        expiration: timedelta = DEFAULT_LINK_EXPIRATION,
    ) -> str:
        """A download link valid for ``expiration`` (or permanent, where the
        provider has only permanent links)."""

    def link_lifetime(self, expiration: timedelta) -> timedelta | None:
        """How long a link :meth:`get_url` makes for ``expiration`` works:
        ``expiration`` itself, shorter where the provider caps link lives, or
        None where its links do not expire (they work until the object is
        deleted)."""
        return expiration

    def delete_links(self, path: str) -> int:
        """Withdraw the share links made to ``path`` where the provider keeps
        them as objects of their own (they would outlive the file, or point
        at a later file of the same name); how many went. Signed links need
        nothing: they stop working by themselves."""
        return 0

    def sweep(self, older_than: timedelta = timedelta(hours=24), *, now: datetime | None = None) -> builtins.list[str]:
        """Remove temporary names older than ``older_than`` that crashed
        uploads left; return their paths. Stores that leave none return ``[]``."""
        return []

    # -- health ----------------------------------------------------------------------

    def test_connection(self) -> ConnectionTestResult:
        """Write a small probe object under the store root, check its size and
        hash, delete it, and say how that went. Never raises for provider
        failures: they become ``ok=False`` with a secret-free message."""
        from .probe import run_connection_test

        return run_connection_test(self)

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release clients and connections. The store is unusable after."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def share_link(
    store: FileStore, path: str, version_id: str | None, keep: timedelta | None, *, now: float | None = None
) -> tuple[str | None, datetime | None]:
    """A link to ``path`` that lives as long as the file is kept (``keep``,
    else :data:`DEFAULT_LINK_EXPIRATION`), within what the provider allows
    (:meth:`FileStore.link_lifetime`), and when it stops working (None: a
    permanent link). ``(None, None)`` when the store makes no links."""
    import time
    from datetime import UTC

    from ..exceptions import OcsTransferError

    wanted = keep or DEFAULT_LINK_EXPIRATION
    lifetime = store.link_lifetime(wanted)
    started = time.time() if now is None else now
    try:
        link = store.get_url(path, version_id, expiration=lifetime or wanted)
    except (NotImplementedError, OcsTransferError):
        return None, None
    if lifetime is None:
        return link, None
    return link, datetime.fromtimestamp(int(started + lifetime.total_seconds()), UTC)
