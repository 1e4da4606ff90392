"""Making renames durable, many files to one directory fsync.

A file published by renaming its fsynced temporary file over the final name
survives a power cut only once its directory has been fsynced after the
rename. One directory fsync costs ~2.5 ms on this project's machines (a
journal commit), so doing one per file caps a copy of small files near 400
files/s, whatever else it does. But one fsync covers every rename made in
that directory before it started, so concurrent uploads can share it.

:class:`DirectorySync` does that (a group commit): :meth:`DirectorySync.sync`
returns only after an fsync of the directory that *started after* the call
began has finished. A caller arriving while an fsync runs waits for it to
end, then one of the waiters runs the next fsync for all of them. Every
caller still gets its own guarantee; concurrent callers (``send
--transfers``, the worker's threads) need far fewer fsyncs. A caller alone
pays exactly one fsync, as before.

When an fsync fails, every caller it was to cover gets the error: after a
failed fsync, Linux may report a later one of the same directory as a
success although the data never reached the disk, so nobody retries it on
the others' behalf.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable

__all__ = ["DIRECTORIES", "DirectorySync", "fsync_directory"]


def fsync_directory(directory: str) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Directory:
    """The group-commit state of one directory (guarded by the sync's lock)."""

    __slots__ = ("asked", "done", "failures", "running", "users")

    def __init__(self) -> None:
        self.asked = 0  #: requests so far; request n is covered by an fsync that began after it
        self.done = 0  #: every request up to this one is durable, or in a failure's range
        #: (first, last, error): the requests a failed fsync was to cover
        self.failures: list[tuple[int, int, OSError]] = []
        self.running = False
        self.users = 0

    def failure(self, request: int) -> OSError | None:
        for first, last, error in self.failures:
            if first <= request <= last:
                return error
        return None


class DirectorySync:
    """Group-committed directory fsyncs, thread-safe; one per process
    (:data:`DIRECTORIES`) is shared by every local store.

    ``fsync`` is what syncs one directory (default :func:`fsync_directory`).
    """

    def __init__(self, fsync: Callable[[str], None] = fsync_directory) -> None:
        self._fsync = fsync
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._dirs: dict[str, _Directory] = {}
        self.fsyncs = 0  #: directory fsyncs run so far (all directories)
        self.requests = 0  #: calls of :meth:`sync` so far (all directories)

    def sync(self, directory: str) -> None:
        """Return once every rename or unlink made in ``directory`` before
        this call is durable; raise the ``OSError`` of the fsync that was to
        make it so."""
        with self._lock:
            state = self._dirs.get(directory)
            if state is None:
                state = self._dirs[directory] = _Directory()
            state.users += 1
            state.asked += 1
            self.requests += 1
            mine = state.asked
            try:
                while True:
                    failure = state.failure(mine)
                    if failure is not None:
                        raise OSError(failure.errno or errno.EIO, failure.strerror or str(failure), directory)
                    if state.done >= mine:
                        return
                    if state.running:
                        self._changed.wait()
                        continue
                    # Lead: this fsync covers every request made so far, ours included.
                    state.running = True
                    covers = state.asked
                    self._lock.release()
                    try:
                        self._fsync(directory)
                    except OSError as exc:
                        self._lock.acquire()
                        state.failures.append((state.done + 1, covers, exc))
                        state.done = covers
                        raise
                    except BaseException:
                        self._lock.acquire()
                        raise
                    else:
                        self._lock.acquire()
                        state.done = max(state.done, covers)
                    finally:
                        state.running = False
                        self.fsyncs += 1
                        self._changed.notify_all()
            finally:
                state.users -= 1
                if not state.users and not state.running:
                    del self._dirs[directory]


#: The process's directory syncs, shared by every :class:`~ocs_transfer_local.local.LocalStore`.
DIRECTORIES = DirectorySync()
