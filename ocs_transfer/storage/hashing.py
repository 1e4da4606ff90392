"""Hashing while reading: one pass over the source computes every digest.

:class:`HashingReader` wraps a source file object. Every chunk read through it
updates md5 and sha256 (and any provider-specific hashers, such as CRC32C for
GCS). MD5 is the slowest (680-735 MiB/s on one core of this project's
machines) and the critical path of every upload, so it runs in a helper
thread while the caller's thread does the rest: hashlib releases the GIL for
large updates, so both cores work. Each helper holds at most two chunks (one
being hashed, one waiting, so it never waits for the caller's thread to be
scheduled), so ``read`` keeps at most three chunks alive.

On Linux, SHA-256 runs in a second helper whose priority is a few steps
below the caller's. On two cores the MD5 helper competed for a core with the
SHA-256 work and the upload's own threads (sockets, a local server) and lost
about a fifth of its time waiting to run; yielding the faster hash to it made
a 1 GiB S3 upload 3-4 % faster. (A second helper at the same priority measured
slower than SHA-256 in the caller's thread, so elsewhere it stays there.)

Pipelines that own their buffers (the local store's O_DIRECT writer) use
:meth:`HashingReader.fill` with a :class:`BufferRing` instead of ``read``: the
source is read straight into page-aligned buffers, and a buffer is refilled
only after its background hashing and whatever else was attached to it has
finished. No byte is copied in user space.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import IO, Any, Protocol

from ..exceptions import TransferCancelledError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BufferPool",
    "BufferRing",
    "Hasher",
    "HashingReader",
    "anonymous_map",
    "iter_chunks",
    "read_into",
]

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
#: How many nice steps below its creator's priority a helper of a faster hash runs.
BEHIND_MD5 = 5
#: Whether a thread's priority can be lowered alone (``setpriority`` on a thread id is Linux's).
_THREAD_PRIORITIES = sys.platform == "linux"


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


def _lower_priority(steps: int) -> None:
    """Run the calling thread ``steps`` nice steps below its priority now
    (Linux: a thread's id names it alone). Never raises: a refusal leaves the
    priority as it was."""
    if not steps:
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + steps)
    except OSError:
        pass


class _Background:
    """Runs one hasher's updates in order on a private thread named
    ``ocs-transfer-<name>``, ``behind`` nice steps below the caller's
    priority. One chunk may wait in line behind the one being hashed, so the
    thread starts the next chunk the moment it finishes one, without waiting
    for the reader's thread to be scheduled; at most two chunks are held."""

    def __init__(self, name: str, update: Callable[[bytes | memoryview], None], *, behind: int = 0) -> None:
        self.hash = update
        self.name, self.behind = name, behind
        self.pending: deque[Future[None]] = deque()
        #: started with the second chunk: a file of one chunk (most small
        #: files) is hashed in the caller's thread, without starting a thread
        self.executor: ThreadPoolExecutor | None = None
        self.first = True

    def update(self, data: bytes | memoryview) -> Future[None]:
        if self.first:
            self.first = False
            done: Future[None] = Future()
            self.hash(data)
            done.set_result(None)
            return done
        if self.executor is None:
            self.executor = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=f"ocs-transfer-{self.name}",
                initializer=_lower_priority,
                initargs=(self.behind,),
            )
        while len(self.pending) >= 2:
            self.pending.popleft().result()
        future = self.executor.submit(self.hash, data)
        self.pending.append(future)
        return future

    def finish(self) -> None:
        while self.pending:
            self.pending.popleft().result()
        if self.executor is not None:
            self.executor.shutdown(wait=True)


class HashingReader:
    """A read-only file object over ``source`` that hashes what passes.

    ``progress`` is called with the byte count of each chunk; ``cancel``, when
    set, makes the next read raise :class:`TransferCancelledError`.
    ``extra`` adds provider hashers by name (their ``hexdigest()`` ends up in
    :meth:`digests`).
    """

    def __init__(
        self,
        source: IO[bytes],
        *,
        progress: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
        extra: Mapping[str, Hasher] | None = None,
        parallel: bool = True,
    ) -> None:
        self.source = source
        self.progress = progress
        self.cancel = cancel
        self.bytes_read = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        self._extra: dict[str, Hasher] = dict(extra or {})
        self._helpers: list[tuple[_Background | None, Hasher]] = [
            (_Background("md5", self._md5.update) if parallel else None, self._md5),
            (
                _Background("sha256", self._sha256.update, behind=BEHIND_MD5)
                if parallel and _THREAD_PRIORITIES
                else None,
                self._sha256,
            ),
        ]
        self._finished: dict[str, str] | None = None

    # -- the file-object surface clients use ----------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        if self.cancel is not None and self.cancel.is_set():
            raise TransferCancelledError("the transfer was cancelled")
        data = self.source.read(size if size is not None and size >= 0 else DEFAULT_CHUNK_SIZE)
        if data:
            self._update(bytes(data))
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def fill(self, view: memoryview) -> tuple[int, tuple[Future[None], ...]]:
        """Read from the source into ``view`` until it is full or the source
        ends, and hash what came, without copying it.

        Returns the byte count and the futures of the hashing that runs in
        the background: ``view`` must not change until they are done (a
        :class:`BufferRing` waits for them). Only the last fill before EOF is
        short, so every other one is as aligned as ``view``.
        """
        if self.cancel is not None and self.cancel.is_set():
            raise TransferCancelledError("the transfer was cancelled")
        filled = read_into(self.source, view)
        if not filled:
            return 0, ()
        return filled, self._update(view[:filled])

    def _update(self, data: bytes | memoryview) -> tuple[Future[None], ...]:
        if self._finished is not None:
            raise RuntimeError("HashingReader read after digests() was taken")
        pending = []
        for helper, hasher in self._helpers:
            if helper is not None:
                pending.append(helper.update(data))
            else:
                hasher.update(data)
        for hasher in self._extra.values():
            hasher.update(data)
        self.bytes_read += len(data)
        if self.progress is not None:
            self.progress(len(data))
        return tuple(pending)

    def close(self) -> None:
        """Stop the helper threads. The source stays open (it is the caller's)."""
        for helper, _ in self._helpers:
            if helper is not None:
                helper.finish()

    def digests(self) -> dict[str, str]:
        """``{"md5": hex, "sha256": hex, **extra}`` of everything read so far.
        After this, the reader cannot be read any more."""
        if self._finished is None:
            self.close()
            out = {"md5": self._md5.hexdigest(), "sha256": self._sha256.hexdigest()}
            out.update({name: h.hexdigest() for name, h in self._extra.items()})
            self._finished = out
        return dict(self._finished)

    def __enter__(self) -> HashingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_into(source: Any, view: memoryview) -> int:
    """Read from ``source`` into ``view`` until it is full or the source
    ends; the byte count. Uses ``readinto`` where the source has it (no
    copy), ``read`` otherwise; short reads (pipes, sockets) are retried."""
    readinto = getattr(source, "readinto", None)
    filled = 0
    while filled < len(view):
        if readinto is not None:
            try:
                got = readinto(view[filled:]) or 0
            except NotImplementedError:  # io.RawIOBase subclasses that define only read()
                readinto = None
                continue
        else:
            data = source.read(len(view) - filled)
            got = len(data)
            view[filled : filled + got] = data
        if not got:
            break
        filled += got
    return filled


def anonymous_map(size: int) -> mmap.mmap:
    """``size`` bytes of private, page-aligned memory (``mmap.mmap(-1, n)``
    alone would make it shared, i.e. backed by shmem, whose page faults cost
    more and which direct I/O pins more slowly)."""
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


class BufferPool:
    """Page-aligned buffers of one ``size``, kept for reuse between uploads.

    A fresh anonymous map costs a page fault and the clearing of a page for
    every 4 KiB on first touch (10-20 % of a local copy's CPU on this
    project's machines); a reused one costs nothing. At most ``keep`` spare
    buffers are kept; thread-safe.
    """

    def __init__(self, size: int, *, keep: int = 16) -> None:
        if size < 1:
            raise ValueError("buffers need at least one byte")
        self.size = size
        self.keep = keep
        self._spare: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._spare:
                return self._spare.pop()
        return anonymous_map(self.size)

    def give(self, buffer: mmap.mmap) -> None:
        """Return ``buffer``; nothing may use it any more."""
        with self._lock:
            if len(self._spare) < self.keep:
                self._spare.append(buffer)


class BufferRing:
    """``count`` buffers from ``pool``, handed out in turn.

    :meth:`next` gives the next buffer once the work attached to its previous
    use (with :meth:`hold`: the background hashing, a write on another thread)
    has finished, so a buffer is never refilled while something still reads
    it, and memory stays at ``count x size`` whatever the file size. Use it
    as a context manager: on exit it waits until nothing uses a buffer and
    gives them back to the pool.
    """

    def __init__(self, count: int, pool: BufferPool) -> None:
        if count < 1:
            raise ValueError("a BufferRing needs at least one buffer")
        self._pool = pool
        self._maps = [pool.take() for _ in range(count)]
        self._users: list[list[Future[Any]]] = [[] for _ in range(count)]
        self._turn = 0

    def next(self) -> tuple[int, memoryview]:
        """The next buffer's slot number and a view of all of it."""
        slot = self._turn
        self._turn = (slot + 1) % len(self._maps)
        self._settle(slot)
        return slot, memoryview(self._maps[slot])

    def hold(self, slot: int, *users: Future[Any] | None) -> None:
        """Keep ``slot`` from coming round again until ``users`` finished."""
        self._users[slot].extend(user for user in users if user is not None)

    def settle(self) -> None:
        """Wait until nothing uses any buffer (errors are the users' to report)."""
        for slot in range(len(self._maps)):
            self._settle(slot)

    def _settle(self, slot: int) -> None:
        if self._users[slot]:
            wait(self._users[slot])
            self._users[slot].clear()

    def __enter__(self) -> BufferRing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.settle()
        for buffer in self._maps:
            self._pool.give(buffer)
        self._maps = []


def iter_chunks(fileobj: Readable | IO[bytes], chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Yield successive chunks of ``fileobj`` until EOF."""
    while True:
        chunk = fileobj.read(chunk_size)
        if not chunk:
            return
        yield chunk
