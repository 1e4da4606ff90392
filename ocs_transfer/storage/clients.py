"""One client per thread, for client libraries that are not thread-safe
(ftplib, paramiko, many SDKs): :class:`PerThreadClient`.

Each thread gets its own client from ``factory``. A client that sat idle
longer than ``idle_check`` seconds is checked (``check(client)``; a server
may have dropped the session meanwhile) before it is handed out again, and
replaced when the check fails. A caller that saw a connection error calls
:meth:`PerThreadClient.discard` so the next :meth:`get` makes a fresh one.
:meth:`close` closes every thread's client (the store's ``close``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

__all__ = ["PerThreadClient"]

log = logging.getLogger(__name__)

C = TypeVar("C")


class PerThreadClient(Generic[C]):
    """This thread's client, made on first use, checked after idling,
    replaced when broken."""

    def __init__(
        self,
        factory: Callable[[], C],
        *,
        check: Callable[[C], object] | None = None,
        close: Callable[[C], object] | None = None,
        idle_check: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self._check = check
        self._close = close
        self.idle_check = idle_check
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: dict[int, C] = {}  # id(client) -> client, to close them all
        self._closed = False

    def __repr__(self) -> str:
        return f"PerThreadClient({len(self._all)} open)"

    def get(self) -> C:
        """This thread's client (made, checked or replaced as needed)."""
        if self._closed:
            raise RuntimeError("the store was closed")
        client: C | None = getattr(self._local, "client", None)
        now = self._clock()
        if client is not None and self._check is not None and now - self._local.used >= self.idle_check:
            try:
                self._check(client)
            except Exception as exc:
                log.info("replacing a client that failed its check after idling: %s", type(exc).__name__)
                self.discard()
                client = None
        if client is None:
            client = self._factory()
            self._local.client = client
            with self._lock:
                self._all[id(client)] = client
        self._local.used = now
        return client

    @contextmanager
    def using(self) -> Iterator[C]:
        """This thread's client for a block; a connection error (or any
        error the client may not survive: ``OSError``, ``EOFError``) in the
        block discards it before the error propagates."""
        client = self.get()
        try:
            yield client
        except (OSError, EOFError):
            self.discard()
            raise
        finally:
            self._local.used = self._clock()

    def discard(self) -> None:
        """Drop this thread's client (closing it); the next ``get`` makes a new one."""
        client: C | None = getattr(self._local, "client", None)
        self._local.client = None
        if client is None:
            return
        with self._lock:
            self._all.pop(id(client), None)
        self._close_quietly(client)

    def close(self) -> None:
        """Close every thread's client."""
        with self._lock:
            self._closed = True
            clients, self._all = list(self._all.values()), {}
        for client in clients:
            self._close_quietly(client)

    def _close_quietly(self, client: C) -> None:
        if self._close is None:
            return
        try:
            self._close(client)
        except Exception as exc:  # a broken client often fails to close too
            log.debug("closing a client failed: %s", type(exc).__name__)
