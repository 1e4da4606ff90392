"""``FileFactory``: which DataFile class reads a file, by the longest matching
extension.

The table is, later entries winning: the built-in types (:data:`BUILTIN_TYPES`,
registered through the plugin hook like any plugin's), the types plugins
register (``ocs_transfer_register_datafile_types``), then
``settings.filetype_mapping_overrides`` (``FILETYPE_MAPPING_OVERRIDES``).
Classes may be given as dotted paths; they are imported when first needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

from ..exceptions import ConfigurationError, FileSpecificationError
from ..plugins import import_object
from ..settings import Settings
from .datafile import DataFile, ProposalTagLookup
from .file import File

__all__ = ["BUILTIN_TYPES", "EXTENSION_TO_FILE_CLASS", "FileFactory", "FileTypeConfigurationError", "open_datafile"]

#: Extension -> DataFile class path, as the core ships them.
BUILTIN_TYPES: dict[str, str] = {
    ".fits": "ocs_transfer.input.fitsfile.FitsFile",
    ".fits.fz": "ocs_transfer.input.lcofitsfile.LcoFitsFile",
    ".fits.gz": "ocs_transfer.input.fitsfile.FitsFile",
    ".fits.bz2": "ocs_transfer.input.fitsfile.FitsFile",
    ".tar": "ocs_transfer.input.tarwithfitsfile.TarWithFitsFile",
    ".tar.gz": "ocs_transfer.input.tarwithfitsfile.TarWithFitsFile",
    ".pdf": "ocs_transfer.input.datafile.DataFile",
    ".jpg": "ocs_transfer.input.thumbnailfile.ThumbnailFile",
    ".jpeg": "ocs_transfer.input.thumbnailfile.ThumbnailFile",
}
#: ocs_archive's name for the built-in table.
EXTENSION_TO_FILE_CLASS = BUILTIN_TYPES


class FileTypeConfigurationError(ConfigurationError, FileSpecificationError):
    """A file type maps to a class that cannot be used (missing module or
    class, or not a DataFile). Both a configuration and a file-specification
    error, so code written for either catches it."""


def _load(ext: str, target: Any) -> type[DataFile]:
    if isinstance(target, str):
        try:
            target = import_object(target)
        except ImportError as exc:
            raise FileTypeConfigurationError(f"file type {ext!r}: {exc}; check the class path") from None
    if not (isinstance(target, type) and issubclass(target, DataFile)):
        raise FileTypeConfigurationError(
            f"file type {ext!r}: {getattr(target, '__qualname__', target)!s} is not a subclass of"
            " ocs_transfer.input.DataFile"
        )
    return target


class FileFactory:
    """Finds the DataFile class for a file extension."""

    @staticmethod
    def table(settings: Settings | None = None) -> dict[str, Any]:
        """Extension (lower case) -> class or dotted path: plugins (built-ins
        included), then overrides."""
        from .. import plugins

        out: dict[str, Any] = dict(BUILTIN_TYPES)
        out.update({k.lower(): v for k, v in plugins.datafile_types().items()})
        settings = settings if settings is not None else Settings.from_env()
        overrides: Mapping[str, str] = settings.filetype_mapping_overrides
        out.update({k.lower(): v for k, v in overrides.items()})
        return out

    @staticmethod
    def known_extensions(settings: Settings | None = None) -> tuple[str, ...]:
        """Every extension in :meth:`table`, longest first."""
        return tuple(sorted(FileFactory.table(settings), key=lambda e: (-len(e), e)))

    @staticmethod
    def get_datafile_class_for_extension(extension: str, settings: Settings | None = None) -> type[DataFile]:
        """The class for ``extension`` (e.g. ``".fits.fz"``; case does not matter).

        Raises :class:`FileSpecificationError` for an unknown extension and
        :class:`FileTypeConfigurationError` when the configured class cannot be used.
        """
        table = FileFactory.table(settings)
        key = extension.lower()
        if key not in table:
            raise FileSpecificationError(
                f"file extension {extension or '(none)'} is not a supported file type (supported: "
                f"{', '.join(sorted(table))}); add it with FILETYPE_MAPPING_OVERRIDES or a plugin"
            )
        return _load(key, table[key])

    @staticmethod
    def get_datafile(
        open_file: File | IO[bytes],
        file_metadata: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
        proposal_tag_lookup: ProposalTagLookup | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> DataFile:
        """The DataFile for ``open_file``, of the class its extension selects.

        ``open_file`` is a :class:`File`, or a binary file object that is wrapped
        in one (named ``path``, else by its ``name``).
        """
        settings = settings if settings is not None else Settings.from_env()
        if not isinstance(open_file, File):
            open_file = File(open_file, path, known_extensions=FileFactory.known_extensions(settings))
        cls = FileFactory.get_datafile_class_for_extension(open_file.extension, settings)
        return cls(open_file, file_metadata, settings=settings, proposal_tag_lookup=proposal_tag_lookup)


@contextmanager
def open_datafile(
    path: str | os.PathLike[str],
    file_metadata: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    proposal_tag_lookup: ProposalTagLookup | None = None,
) -> Iterator[DataFile]:
    """Open ``path`` and yield its DataFile; the file is closed afterwards."""
    settings = settings if settings is not None else Settings.from_env()
    with open(path, "rb") as fileobj:
        open_file = File(fileobj, path, known_extensions=FileFactory.known_extensions(settings))
        yield FileFactory.get_datafile(open_file, file_metadata, settings=settings,
                                       proposal_tag_lookup=proposal_tag_lookup)
