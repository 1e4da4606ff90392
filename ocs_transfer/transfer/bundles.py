"""Bundles as transfers: ``schedule --bundle NAME`` and ``bundle --to DEST``
for a destination of the ledger.

A bundle is one source row (kind ``bundle``) whose members are local files
(or objects of any source store); its transfers zip them when they run
(:meth:`EngineCore._copy_bundle`), with the retries, states and records of
any other transfer, and ``expire`` deletes the bundle after its
``keep_hours``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..exceptions import ConfigurationError, OcsTransferError
from ..settings import Settings

__all__ = ["BundleFailedError", "local_members", "result_of", "run_bundle_now"]


class BundleFailedError(OcsTransferError):
    """The bundle's transfer did not complete now (the message says why and
    whether the worker retries it)."""


def local_members(files: Sequence[tuple[Path, str]]) -> list[tuple[str, str, str]]:
    """``(store, path, name)`` for planned local files (:func:`~ocs_transfer.storage.bundle.plan_files`):
    each file's store is its directory, as ``schedule`` records local files."""
    return [(str(path.parent), path.name, name) for path, name in files]


def result_of(engine: Any, transfer: Any) -> dict[str, Any]:
    """A completed bundle transfer as ``bundle --json`` prints it. A link the
    ledger does not keep (one holding credentials) is made now, living until
    the bundle is expired (within the provider's limit)."""
    from ..storage.base import share_link

    link: str | None = transfer.link or None
    expires = (datetime.fromtimestamp(transfer.link_expires_at, UTC) if transfer.link_expires_at is not None
               else None)  # fmt: skip
    if link is None:
        keep = _kept_until(engine, transfer)
        with engine.destinations.open_store(transfer.destination_id) as store:
            left = timedelta(seconds=max(1.0, keep - engine.clock())) if keep is not None else None
            link, expires = share_link(store, transfer.remote_path, transfer.remote_version or None, left,
                                       now=engine.clock())  # fmt: skip
    members = [{"name": m["name"], "size": m["size"]} for m in engine.bundle_members(transfer.file_id)]
    kept_until = _kept_until(engine, transfer)
    return {
        "path": transfer.remote_path, "size": transfer.size, "md5": transfer.md5, "sha256": transfer.sha256,
        "version_id": transfer.remote_version or None, "provider_checksum": transfer.provider_checksum or None,
        "members": members, "link": link, "expires": expires.isoformat() if expires is not None else None,
        "kept_until": datetime.fromtimestamp(int(kept_until), UTC).isoformat() if kept_until is not None else None,
        "transfer_id": transfer.id, "destination": transfer.destination_name,
    }  # fmt: skip


def _kept_until(engine: Any, transfer: Any) -> float | None:
    from .core import _keep_seconds

    keep = _keep_seconds(engine.snapshot_of(transfer.id))
    return transfer.finished_at + keep if keep and transfer.finished_at is not None else None


def run_bundle_now(
    settings: Settings,
    destination: str,
    files: Sequence[tuple[Path, str]],
    name: str,
    *,
    keep_hours: int | None = None,
    refuse_options: bool = False,
) -> dict[str, Any] | None:
    """Schedule a bundle of local ``files`` for the ledger's ``destination``
    and run its transfer in this process now. Its result (:func:`result_of`),
    or None when the ledger has no such destination. A failed attempt raises
    :class:`BundleFailedError` (the worker retries it when it may be)."""
    from ..storage.cli import open_source
    from .crypto import KeyRing
    from .destinations import Destinations
    from .engine import Engine
    from .ledger import Ledger
    from .webhook import register_from_settings

    ledger = Ledger.from_settings(settings)
    try:
        keyring = KeyRing.from_settings(settings) if settings.transfer_keys else None
        dests = Destinations(ledger, keyring, settings=settings)
        if dests.find(destination) is None:
            return None
        if refuse_options:
            raise ConfigurationError(
                f"{destination!r} is a destination of the ledger; change its options or credentials with"
                f" `ocs-transfer dest edit {destination}`, not on the bundle command line"
            )
        register_from_settings(settings)  # the link reaches the user through the transfer_finished hook
        engine = Engine(ledger, dests, settings=settings, source_resolver=lambda ref: open_source(ref, settings))
        (transfer,) = engine.schedule_bundle(name, local_members(files), [destination], keep_hours=keep_hours)
        claimed = engine.claim(1, ids=[transfer.id])
        if not claimed:
            raise BundleFailedError(f"bundle transfer {transfer.id} is queued; a worker will run it")
        done = engine.execute(*claimed[0])
        if done.state != "completed":
            when = (f"; the worker tries again after {datetime.fromtimestamp(done.next_attempt_at, UTC):%H:%M:%S} UTC"
                    if done.state == "pending" else "")  # fmt: skip
            raise BundleFailedError(f"bundle transfer {done.id} is {done.state}: {done.last_error}{when}")
        return result_of(engine, done)
    finally:
        ledger.close()
