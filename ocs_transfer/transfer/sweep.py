"""Sweeping the temporary names crashed uploads left in destinations
(``.<name>.ocs-transfer-partial-*``, the file server's partials, connection
probes): ``ocs-transfer sweep DEST``, and the worker's periodic pass.

A live upload's temporary is young; only names older than ``older_than``
(default 24 hours) are removed, so a sweep never races an upload in progress.
"""

from __future__ import annotations

import logging
import weakref
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .destinations import Destinations

__all__ = ["DEFAULT_OLDER_THAN", "SWEEP_INTERVAL", "sweep_all", "sweep_destination", "sweep_if_due"]

log = logging.getLogger(__name__)

DEFAULT_OLDER_THAN = timedelta(hours=24)
#: How often the worker's periodic pass sweeps every destination (seconds).
SWEEP_INTERVAL = 6 * 3600.0
_last_sweep: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def sweep_destination(
    destinations: Destinations, ref: str | int, older_than: timedelta = DEFAULT_OLDER_THAN
) -> list[str]:
    """Remove the destination's leftover temporaries older than
    ``older_than``; return their paths (relative to the destination)."""
    with destinations.open_store(ref) as store:
        return store.sweep(older_than)


def sweep_all(destinations: Destinations, older_than: timedelta = DEFAULT_OLDER_THAN) -> dict[str, list[str]]:
    """Sweep every enabled destination; a destination that fails is logged
    and skipped (the next pass tries again)."""
    swept: dict[str, list[str]] = {}
    for dest in destinations.list():
        if not dest.enabled:
            continue
        try:
            removed = sweep_destination(destinations, dest.id, older_than)
        except Exception as exc:
            log.warning("sweeping destination %r failed: %s", dest.name, type(exc).__name__)
            continue
        if removed:
            log.info("swept %d leftover temporary name(s) from destination %r", len(removed), dest.name)
        swept[dest.name] = removed
    return swept


def sweep_if_due(engine: Any) -> dict[str, list[str]] | None:
    """The periodic pass's sweep: at most once per :data:`SWEEP_INTERVAL`
    per engine (the first pass of a worker sweeps)."""
    now = float(engine.clock())
    last = _last_sweep.get(engine)
    if last is not None and now - last < SWEEP_INTERVAL:
        return None
    _last_sweep[engine] = now
    return sweep_all(engine.destinations)
