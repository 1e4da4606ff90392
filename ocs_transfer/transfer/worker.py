"""The thread-pool executor: polls the ledger for due transfers and runs
each claimed one in a bounded thread pool, with heartbeats and the periodic
pass. It only decides where and when :meth:`Engine.execute` runs.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from ..exceptions import ConfigurationError
from .ledger import LedgerUnavailableError

if TYPE_CHECKING:
    from .core import Transfer
    from .engine import Engine

__all__ = ["Worker"]

log = logging.getLogger("ocs_transfer.transfer.engine")  # every engine module logs under one name


def _log_crash(future: Future[Transfer]) -> None:
    """An attempt that could not even record its outcome (the ledger was
    unreachable): its heartbeat stops, and the periodic pass reclaims it."""
    exc = future.exception()
    if exc is not None:
        log.error("a transfer attempt crashed: %s: %s", type(exc).__name__, exc)


class Worker:
    """The embedded runner: a bounded thread pool running due transfers,
    with heartbeats and the periodic pass."""

    def __init__(self, engine: Engine, *, threads: int | None = None, poll_interval: float = 1.0) -> None:
        self.engine = engine
        self.threads = threads or engine.settings.worker_threads
        if self.threads < 1:
            raise ConfigurationError("a worker needs at least one thread (OCS_TRANSFER_WORKER_THREADS)")
        self.poll_interval = poll_interval
        self.stop_event = threading.Event()

    def stop(self) -> None:
        self.stop_event.set()

    def _heartbeat_loop(self, done: threading.Event) -> None:
        while not done.wait(self.engine.settings.heartbeat_interval):
            try:
                self.engine.beat()
            except Exception as exc:
                log.warning("heartbeat failed: %s", type(exc).__name__)

    def run(self, *, until_idle: bool = False) -> int:
        """Run until :meth:`stop` (or, with ``until_idle``, until nothing is
        due or running). Returns how many attempts ran."""
        engine = self.engine
        engine.check_credentials()  # a key error stops the worker before it claims anything
        engine.reclaim()  # start-up: re-queue what dead workers left in flight
        engine.finish_source_deletions()
        last_periodic = engine.clock()
        futures: set[Future[Transfer]] = set()
        ran = 0
        done = threading.Event()
        beater = threading.Thread(target=self._heartbeat_loop, args=(done,), name="ocs-transfer-heartbeat", daemon=True)
        beater.start()
        try:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="ocs-transfer") as pool:
                while not self.stop_event.is_set():
                    futures = {f for f in futures if not f.done()}
                    free = self.threads - len(futures)
                    try:
                        claimed = engine.claim(free) if free > 0 else []
                    except LedgerUnavailableError as exc:  # wait it out: the running attempts go on
                        log.warning("claiming failed: %s", exc)
                        claimed = []
                    for transfer_id, lease in claimed:
                        future = pool.submit(engine.execute, transfer_id, lease)
                        future.add_done_callback(_log_crash)
                        futures.add(future)
                    ran += len(claimed)
                    if engine.clock() - last_periodic >= engine.settings.periodic_interval:
                        engine.periodic()
                        last_periodic = engine.clock()
                    if claimed and free > len(claimed):
                        continue
                    if until_idle and not claimed and not futures:
                        break
                    if futures and not claimed:
                        # wake when a slot frees up, or after the poll interval
                        wait(futures, timeout=self.poll_interval, return_when=FIRST_COMPLETED)
                    elif not claimed:
                        self.stop_event.wait(self.poll_interval)
        finally:
            done.set()
            beater.join()
        return ran
