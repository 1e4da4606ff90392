"""The ``template-dir`` provider: files in a local folder through fsspec.

Everything a provider over a working fsspec filesystem needs: a ``Config``
of typed options, credentials parsed by the core, the client's error family
taught to the classifier, and ``from_config``. Uploads, hashing, atomic
publishing, verification, clean-up, listing, sweeping and the probe come from
:class:`~ocs_transfer.storage.fsspec_store.FsspecStore`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar, Self

import attrs

from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.retry import Decision, Kind, register_classifier
from ocs_transfer.settings import Settings
from ocs_transfer.storage.fsspec_store import FsspecStore
from ocs_transfer.storage.options import split_url

__all__ = ["TemplateStore"]


def _classify_not_a_directory(exc: BaseException) -> Decision | None:
    """A client error family the generic rules do not know: here, a folder
    where a file should be (retrying cannot help). Return None for no opinion."""
    return Decision(Kind.NEVER) if isinstance(exc, NotADirectoryError) else None


# Registered once, when the provider module is imported (by class, or by
# "module.QualName" so that the client library need not be imported here).
register_classifier(NotADirectoryError, _classify_not_a_directory)


class TemplateStore(FsspecStore):
    """Files under ``root`` on this machine."""

    name: ClassVar[str] = "template-dir"
    schemes: ClassVar[tuple[str, ...]] = ("template-dir",)
    credential_fields: ClassVar[tuple[str, ...]] = ()  # e.g. ("password", "token")
    endpoint_options: ClassVar[tuple[str, ...]] = ()  # e.g. ("server",): checked against the allow-list
    reread_to_verify: ClassVar[bool] = True  # the filesystem reports no checksum: read the upload back

    @attrs.frozen(kw_only=True)
    class Config:
        root: str  #: the folder that holds the store
        link_base_url: str | None = None  #: links are this + the object path
        create_root: bool = True  #: "--option create_root=false" arrives typed (config_from_options)

    @classmethod
    def from_config(
        cls, config: Any, credentials: Mapping[str, Any] | None = None, *, settings: Settings | None = None
    ) -> Self:
        if not isinstance(config, cls.Config):
            raise ConfigurationError(f"the {cls.name} provider needs a TemplateStore.Config")
        cls.parse_credentials(credentials, config=config)  # refuses unknown fields, wraps values as Secret
        from fsspec.implementations.local import LocalFileSystem

        root = posixpath.abspath(config.root)
        fs = LocalFileSystem()
        if config.create_root:
            fs.makedirs(root, exist_ok=True)
        elif not fs.isdir(root):
            raise ConfigurationError(f"{cls.name} root {root!r} does not exist (or set create_root=true)")
        chunk = (settings or Settings()).chunk_size
        return cls(fs, root, chunk_size=chunk, link_base_url=config.link_base_url)

    @classmethod
    def config_from_url(cls, url: str, **options: Any) -> Any:
        """``template-dir:///absolute/folder``."""
        return cls.config_from_options({"root": split_url(url).path, **options})

    def _sign(self, path: str, version_id: str | None, expiration: timedelta) -> str:
        raise NotImplementedError  # no links without link_base_url: get_url says so
