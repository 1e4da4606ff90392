"""Ingesting one file: read its metadata, store it, schedule it, tell plugins.

:meth:`Ingester.ingest` is what the queue consumer runs for each message, and
what a service calls directly. Every step is safe to repeat, because a queue
delivers at least once: a file whose identical bytes are already at its path
is not stored again (``already_stored``), and a destination that already has a
live transfer of the file is not scheduled again. Plugins see every successful
ingestion through the ``ocs_transfer_file_ingested`` hook, repeats included.

Errors are the library's own, classified by :func:`ocs_transfer.retry.classify`;
a missing or unreadable file is an :class:`IngestFileError` (do not retry).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..exceptions import ConfigurationError, DoNotRetryError, OcsTransferError
from ..settings import Settings
from .message import IngestMessage

if TYPE_CHECKING:
    from ..storage.base import FileStore
    from ..transfer.engine import Engine

__all__ = ["IngestFileError", "Ingested", "Ingester"]

log = logging.getLogger("ocs_transfer.ingest")


class IngestFileError(DoNotRetryError, OSError):
    """The message's file cannot be read (missing, a directory, no permission)."""


@attrs.frozen
class Ingested:
    """What one ingestion did; handed to the ``ocs_transfer_file_ingested`` hook."""

    filepath: str  #: the local file, as the message named it
    metadata: Mapping[str, Any]  #: the message's metadata (merged over the headers)
    record: Mapping[str, Any]  #: the archive record (``get_archive_frame_data()``)
    headers: Mapping[str, Any]  #: the headers the archive keeps (``get_headers()``)
    path: str | None = None  #: where the file is in the file store (None: not stored there)
    version_set: Mapping[str, str] | None = None  #: ``key``, ``md5``, ``extension``, as ocs_archive's store returns
    already_stored: bool = False  #: the identical file was already at ``path`` (a repeat)
    transfers: tuple[int, ...] = ()  #: transfer ids scheduled now
    destinations: tuple[str, ...] = ()  #: destinations that have the file scheduled (now or before)

    @property
    def repeat(self) -> bool:
        """Nothing new was done: the file was already stored (or is not stored
        here) and no transfer was scheduled now (a message delivered again)."""
        return (self.path is None or self.already_stored) and not self.transfers


class Ingester:
    """Ingests files into ``store`` and/or schedules them to destinations.

    ``store`` is a :class:`~ocs_transfer.storage.FileStore` (the configured
    file store: ``get_store(settings=...)``), or ``None`` to only schedule.
    ``engine`` is the transfer engine whose ledger receives the transfers of
    messages that name destinations, and of ``destinations`` (every file goes
    to these). ``layout`` places files in the store (default: the data file's
    own file-store path, as ocs_archive). ``roots``, when given, are the
    folders messages may name files under (symbolic links resolved); any other
    path is refused, so whoever can publish to the queue cannot have other
    files of the ingester's machine archived.
    """

    def __init__(
        self,
        store: FileStore | None,
        *,
        engine: Engine | None = None,
        destinations: Sequence[str] = (),
        settings: Settings | None = None,
        layout: Any = None,
        roots: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        if store is None and engine is None:
            raise ConfigurationError("nothing to ingest into: give a file store, a transfer engine, or both")
        if destinations and engine is None:
            raise ConfigurationError("destinations need the transfer engine (its ledger records the transfers)")
        self.store = store
        self.engine = engine
        self.destinations = tuple(destinations)
        self.settings = settings if settings is not None else (engine.settings if engine else Settings())
        self.layout = layout
        self.roots = tuple(os.path.realpath(r) for r in roots)

    def ingest(self, message: IngestMessage) -> Ingested:
        """Ingest the message's file; raise the classified error when it fails."""
        from ..input import open_datafile
        from ..storage.layouts import context_from

        wanted = tuple(dict.fromkeys(self.destinations + message.destinations))
        if wanted and self.engine is None:
            raise ConfigurationError(
                f"the message names destinations ({', '.join(wanted)}) but this ingester has no transfer ledger"
            )
        path = message.filepath
        self._check_root(path)
        try:
            with open_datafile(path, message.metadata, settings=self.settings) as data_file:
                header_data = data_file.get_header_data()
                record = dict(header_data.get_archive_frame_data())
                headers = dict(header_data.get_headers())
                stored_at, version_set, repeat = (
                    self._store(data_file) if self.store is not None else (None, None, False)
                )
                context = context_from(data_file) if wanted else {}
        except OcsTransferError:
            raise  # the store's and the data file's own errors, already classified
        except FileNotFoundError:
            raise IngestFileError(
                f"{path}: no such file (deleted, or not written yet when the message was sent)"
            ) from None
        except IsADirectoryError:
            raise IngestFileError(f"{path}: is a directory, not a file") from None
        except PermissionError:
            raise IngestFileError(f"{path}: permission denied (the consumer's user cannot read it)") from None
        created, scheduled = self._schedule(path, wanted, context)
        ingested = Ingested(
            filepath=path, metadata=dict(message.metadata), record=record, headers=headers, path=stored_at,
            version_set=version_set, already_stored=repeat, transfers=created, destinations=scheduled,
        )  # fmt: skip
        from .. import plugins

        plugins.get_plugin_manager().hook.ocs_transfer_file_ingested(ingested=ingested)
        return ingested

    def _check_root(self, path: str) -> None:
        if not self.roots:
            return
        real = os.path.realpath(path)
        if not any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots):
            raise IngestFileError(
                f"{path}: not under the folders this ingester takes files from ({', '.join(self.roots)})"
            )

    def _store(self, data_file: Any) -> tuple[str, dict[str, str], bool]:
        from ..storage import identical_stored
        from ..storage.store_file import destination_path, store_data_file

        assert self.store is not None
        target = destination_path(data_file, layout=self.layout)
        open_file = data_file.open_file
        existing = identical_stored(self.store, target, open_file.fileobj, open_file.size)
        if existing is not None:
            info, md5 = existing
            return target, {"key": info.version_id or md5, "md5": md5, "extension": open_file.extension}, True
        stored = store_data_file(self.store, data_file, target)
        return target, stored.version_set(), False

    def _schedule(
        self, path: str, wanted: tuple[str, ...], context: dict[str, str]
    ) -> tuple[tuple[int, ...], tuple[str, ...]]:
        if not wanted:
            return (), ()
        assert self.engine is not None
        directory, name = os.path.split(os.path.abspath(path))
        have = self._live_destinations(directory, name)
        missing = [d for d in wanted if d not in have]
        created = self.engine.schedule(directory, [name], missing, context=context) if missing else []
        return tuple(t.id for t in created), wanted

    def _live_destinations(self, directory: str, name: str) -> set[str]:
        """Destinations that already have a pending, running or completed
        transfer of this file (a repeated message schedules nothing twice)."""
        from sqlalchemy import select

        from ..transfer.models import COMPLETED, IN_PROGRESS, PENDING, SourceFileRow, TransferRow

        assert self.engine is not None
        query = (
            select(TransferRow.destination_name)
            .join(SourceFileRow, SourceFileRow.id == TransferRow.file_id)
            .where(SourceFileRow.store == directory, SourceFileRow.path == name,
                   TransferRow.state.in_((PENDING, IN_PROGRESS, COMPLETED)), TransferRow.expired_at.is_(None))
        )  # fmt: skip
        with self.engine.ledger.session() as session:
            return set(session.scalars(query))
