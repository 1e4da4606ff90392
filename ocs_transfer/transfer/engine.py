"""The transfer engine: schedule, claim, run, retry, cancel, clean up.

It is built from:

- :mod:`.core` -- schedule, claim, execute one attempt, record the outcome
  (and the ledger's lease, which makes sure one transfer runs once at a time);
- :mod:`.attempt` -- one attempt's data-safety steps (source unchanged, adopt
  only identical bytes, discard a killed attempt's partial upload);
- :mod:`.lifecycle` -- the passes: reclaim, finish source deletions, purge,
  expire, sweep, and the periodic pass that runs them;
- executors, which only decide where and when :meth:`Engine.execute` runs:
  :mod:`.worker` (the thread-pool :class:`Worker` polling the ledger) and
  :mod:`.celery` (Celery worker processes fed by a broker).

What keeps the only copy of a file safe is described in docs/reliability.md
and in :mod:`.core` and :mod:`.attempt`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .attempt import RemotePathTakenError, SourceChangedError
from .core import Transfer, TransferNotFoundError, remote_path_for
from .lifecycle import LifecyclePasses
from .worker import Worker

if TYPE_CHECKING:
    from ..settings import Settings
    from .ledger import Ledger

__all__ = [
    "Engine",
    "RemotePathTakenError",
    "SourceChangedError",
    "Transfer",
    "TransferNotFoundError",
    "Worker",
    "remote_path_for",
]


class Engine(LifecyclePasses):
    """Schedules and runs transfers recorded in a :class:`Ledger`.

    ``source_resolver`` turns a source file's store reference into a store
    (default: :func:`ocs_transfer.storage.get_store`). ``on_finished`` is called
    with the :class:`Transfer` whenever one reaches a final state, as is the
    ``ocs_transfer_transfer_finished`` plugin hook.
    """

    @classmethod
    def from_settings(cls, settings: Settings, ledger: Ledger | None = None, **kwargs: Any) -> Engine:
        """The engine a command line or a Celery worker process runs: the ledger
        (``ledger``, or the one ``settings`` name), its destinations, and
        sources resolved as the CLI resolves them. The key ring is required
        (and checked now, at start-up) when keys are configured or any
        destination stores credentials; a ledger whose destinations need none
        (the embedded default: local disk) runs without keys. The webhook
        notifier the settings configure is registered (once per process)."""
        from ..storage.cli import open_source
        from .crypto import KeyRing
        from .destinations import Destinations
        from .ledger import Ledger
        from .webhook import register_from_settings

        ledger = ledger if ledger is not None else Ledger.from_settings(settings)
        keyring = KeyRing.from_settings(settings) if settings.transfer_keys else None
        destinations = Destinations(ledger, keyring, settings=settings)
        if keyring is None and destinations.kids_in_use():
            KeyRing.from_settings(settings)  # raises: credentials are stored but no keys are configured
        kwargs.setdefault("source_resolver", lambda ref: open_source(ref, settings))
        register_from_settings(settings)  # the webhook notifier, when OCS_TRANSFER_WEBHOOK_* configure one
        return cls(ledger, destinations, settings=settings, **kwargs)
