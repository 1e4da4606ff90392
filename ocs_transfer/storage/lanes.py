"""Helper threads kept alive from one upload to the next.

An upload's helpers (the MD5 and SHA-256 hashers, the local store's writer
and its read-back) each run their work in order on a thread of their own.
Starting and joining those threads for every file cost ~470 µs per file on
this project's machines, more than copying and hashing a 4 KiB file; a
:class:`Lane` is such a thread, taken from a process-wide pool with
:func:`take_lane` and given back with :meth:`Lane.release` when its user is
done, so a second file finds it waiting.

A lane runs what is submitted to it one call after another, in order (like
a one-thread executor). Its user gives it back with :meth:`Lane.release`
once every call it submitted has finished. Lanes that run a few
nice steps below their creator's priority (``behind``, see
:mod:`ocs_transfer.storage.hashing`) are kept apart from the others. At most
:data:`IDLE_LANES` idle lanes per priority are kept; a lane given back
beyond that ends its thread. After ``fork`` (Celery's prefork workers) the
child starts with an empty pool: the parent's threads do not exist there.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from queue import SimpleQueue
from typing import Any

__all__ = ["IDLE_LANES", "Lane", "idle_lanes", "take_lane"]

#: Idle lanes kept per priority: enough for every helper of ~8 concurrent uploads.
IDLE_LANES = 32

_lock = threading.Lock()
_idle: dict[int, list[Lane]] = {}
_numbers = itertools.count()


def _lower_priority(steps: int) -> None:
    """Run the calling thread ``steps`` nice steps below its priority now
    (Linux: a thread's id names it alone). Never raises: a refusal leaves the
    priority as it was."""
    if not steps or sys.platform != "linux":
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + steps)
    except OSError:
        pass


class _Stop:
    """The marker that ends a lane's thread."""


_STOP = _Stop()


class Lane:
    """One helper thread that runs submitted calls in order. Get one with
    :func:`take_lane`; never make one directly."""

    def __init__(self, behind: int) -> None:
        self.behind = behind
        self._queue: SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | _Stop] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"ocs-transfer-idle_{next(_numbers)}", daemon=True)
        self._thread.start()

    def _rename(self, name: str) -> None:
        self._thread.name = f"ocs-transfer-{name}_{self._thread.name.rsplit('_', 1)[-1]}"

    @property
    def native_id(self) -> int | None:
        return self._thread.native_id

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` after everything submitted before; its future."""
        future: Future[Any] = Future()
        self._queue.put((future, fn, args))
        return future

    def release(self) -> None:
        """Give the lane back to the pool, for its next user, once every call
        submitted to it has finished (wait for their futures first). Do not
        use it after this."""
        self._rename("idle")
        with _lock:
            spare = _idle.setdefault(self.behind, [])
            if len(spare) < IDLE_LANES:
                spare.append(self)
                return
        self._queue.put(_STOP)  # enough are waiting: this thread ends

    def _run(self) -> None:
        _lower_priority(self.behind)
        while True:
            item = self._queue.get()
            if isinstance(item, _Stop):
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
            else:
                future.set_result(result)
            del future, fn, args, item  # hold no buffer of the last call while idle


def take_lane(name: str, *, behind: int = 0) -> Lane:
    """An idle lane ``behind`` nice steps below the caller's priority (a new
    one when none waits), its thread named ``ocs-transfer-<name>_<n>``."""
    with _lock:
        spare = _idle.get(behind)
        lane = spare.pop() if spare else None
    if lane is None:
        lane = Lane(behind)
    lane._rename(name)
    return lane


def idle_lanes() -> int:
    """How many lanes wait in the pool now (for tests and benchmarks)."""
    with _lock:
        return sum(len(spare) for spare in _idle.values())


def _forget_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    _idle.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
