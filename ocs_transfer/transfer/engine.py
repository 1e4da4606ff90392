"""The transfer engine: schedule, claim, run, retry, cancel, clean up.

It is built from:

- :mod:`.core` -- schedule, claim, execute one attempt, record the outcome
  (and the ledger's lease, which makes sure one transfer runs once at a time);
- :mod:`.attempt` -- one attempt's data-safety steps (source unchanged, adopt
  only identical bytes, discard a killed attempt's partial upload);
- :mod:`.lifecycle` -- the passes: reclaim, finish source deletions, purge,
  expire, sweep, and the periodic pass that runs them;
- executors, which only decide where and when :meth:`Engine.execute` runs:
  :mod:`.worker` (the thread-pool :class:`Worker` polling the ledger).

What keeps the only copy of a file safe is described in docs/reliability.md
and in :mod:`.core` and :mod:`.attempt`.
"""

from __future__ import annotations

from .attempt import RemotePathTakenError, SourceChangedError
from .core import Transfer, TransferNotFoundError, remote_path_for
from .lifecycle import LifecyclePasses
from .worker import Worker

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
