"""When the local store reports a file stored: only after its rename and an
fsync of its folder that began after the rename (RELIABILITY.md, promise 1;
``ocs_transfer_local.durable``), with concurrent uploads sharing those fsyncs,
and never with a partial file visible under a final name.

The store runs for real; what the tests watch is the folder fsync: the
store's :class:`DirectorySync` is given an fsync that calls the real
:func:`fsync_directory` and notes, in one sequence with the uploads' returns,
when it began, what the folder held then and when it ended. A file listed at
the start of a finished fsync is durable (its rename was before the fsync).
"""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest
from ocs_transfer_local.durable import DirectorySync, fsync_directory
from ocs_transfer_local.local import LocalStore

from ocs_transfer.exceptions import OcsTransferError
from ocs_transfer.storage.base import StoredObject
from ocs_transfer.testing import pattern_bytes


@attrs.define
class Sync:
    """One folder fsync as it happened."""

    directory: str
    began: int
    saw: frozenset[str]
    ended: int | None = None


@attrs.define
class Recorder:
    """Real folder fsyncs, noted in one sequence with the uploads' returns."""

    gate: Callable[[int], None] = lambda number: None  #: called before fsync number n (from 1) runs
    syncs: list[Sync] = attrs.Factory(list)
    _clock: itertools.count[int] = attrs.Factory(itertools.count)
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def tick(self) -> int:
        with self._lock:
            return next(self._clock)

    def fsync(self, directory: str) -> None:
        with self._lock:
            number = len(self.syncs) + 1
        self.gate(number)
        record = Sync(directory, self.tick(), frozenset(os.listdir(directory)))
        with self._lock:
            self.syncs.append(record)
        fsync_directory(directory)
        record.ended = self.tick()


def recording_store(root: Path, recorder: Recorder) -> LocalStore:
    store = LocalStore.from_config(LocalStore.Config(root=str(root)))
    store.directories = DirectorySync(recorder.fsync)
    return store


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds (a state to reach, not a timing)."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def content(name: str) -> bytes:
    """A different 4 KiB-ish body for every name."""
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:4], 16)
    return pattern_bytes(4096 + seed % 1000)[seed % 7 :]


def test_a_file_is_reported_stored_only_after_a_folder_fsync_that_saw_it(tmp_path: Path) -> None:
    """8 uploads at once, 120 files into one folder: each put returns only
    after an fsync of the folder that began with the file already in place
    and had ended; meanwhile a reader never finds a final name holding
    anything but the whole file."""
    root = tmp_path / "archive"
    recorder = Recorder()
    store = recording_store(root, recorder)
    names = [f"frame-{i:03d}.fits" for i in range(120)]
    returned: dict[str, int] = {}
    done = threading.Event()
    bad: list[str] = []
    checked: set[str] = set()

    def put(name: str) -> StoredObject:
        data = content(name)
        stored = store.put(io.BytesIO(data), name, size=len(data))
        returned[name] = recorder.tick()
        return stored

    def watch() -> None:
        while not done.is_set():
            for entry in os.scandir(root):
                if entry.name.startswith("."):
                    continue  # hidden temporaries: not a final name
                with open(entry.path, "rb") as f:
                    if f.read() != content(entry.name):
                        bad.append(entry.name)
                checked.add(entry.name)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            stored = list(pool.map(put, names))
    finally:
        done.set()
        watcher.join()
    assert bad == []
    assert checked  # the reader did look at published files while the uploads went on
    assert [s.sha256 for s in stored] == [hashlib.sha256(content(n)).hexdigest() for n in names]
    assert sorted(os.listdir(root)) == sorted(names)  # no temporary left
    folder = str(root)
    for name in names:
        covering = [s for s in recorder.syncs if s.directory == folder and name in s.saw]
        assert any(s.ended is not None and s.ended < returned[name] for s in covering), name
    assert len(recorder.syncs) == store.directories.fsyncs
    assert store.directories.requests == len(names)


def test_uploads_waiting_for_a_folder_fsync_share_the_next_one(tmp_path: Path) -> None:
    """While one fsync of a folder runs, five more files are renamed into it:
    one more fsync makes all five durable (not five)."""
    first_may_end = threading.Event()

    def gate(number: int) -> None:
        if number == 1:
            first_may_end.wait(30)

    recorder = Recorder(gate=gate)
    store = recording_store(tmp_path / "archive", recorder)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(store.put, io.BytesIO(b"first"), "first.fits", size=5)
        wait_for(lambda: store.directories.requests == 1, "the first upload asked for its fsync")
        rest = [pool.submit(store.put, io.BytesIO(b"later"), f"later-{i}.fits", size=5) for i in range(5)]
        wait_for(lambda: store.directories.requests == 6, "all six uploads asked for an fsync")
        assert not any(f.done() for f in [first, *rest])  # nobody reported stored yet
        first_may_end.set()
        results = [f.result() for f in [first, *rest]]
    assert [r.path for r in results] == ["first.fits"] + [f"later-{i}.fits" for i in range(5)]
    assert len(recorder.syncs) == 2
    assert recorder.syncs[1].saw >= {f"later-{i}.fits" for i in range(5)}


def test_a_failed_folder_fsync_fails_every_upload_it_was_to_cover(tmp_path: Path) -> None:
    """The second fsync (covering five uploads) fails: all five report the
    error, and nobody tries another fsync on their behalf (after a failed
    fsync, Linux may call the next one a success though nothing was
    written)."""
    first_may_end = threading.Event()

    def gate(number: int) -> None:
        if number == 1:
            first_may_end.wait(30)
        if number == 2:
            raise OSError(errno.EIO, "Input/output error")

    recorder = Recorder(gate=gate)
    store = recording_store(tmp_path / "archive", recorder)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(store.put, io.BytesIO(b"first"), "first.fits", size=5)
        wait_for(lambda: store.directories.requests == 1, "the first upload asked for its fsync")
        rest = [pool.submit(store.put, io.BytesIO(b"later"), f"later-{i}.fits", size=5) for i in range(5)]
        wait_for(lambda: store.directories.requests == 6, "all six uploads asked for an fsync")
        first_may_end.set()
        assert first.result().path == "first.fits"
        for future in rest:
            with pytest.raises(OcsTransferError, match="later-"):
                future.result()
    assert store.directories.fsyncs == 2 and len(recorder.syncs) == 1  # the failed one never ran


def test_new_folders_are_durable_before_the_file_in_them_is_reported(tmp_path: Path) -> None:
    """A layout's new folders (site/instrument/day): each one's name lives in
    its parent, which is fsynced too, before the upload reports success."""
    root = tmp_path / "archive"
    recorder = Recorder()
    store = recording_store(root, recorder)
    stored = store.put(io.BytesIO(b"frame"), "coj/kb05/20150219/raw/frame.fits", size=5)
    assert stored.size == 5
    synced = {Path(s.directory).relative_to(root).as_posix(): s.saw for s in recorder.syncs}
    assert synced == {
        ".": {"coj"},
        "coj": {"kb05"},
        "coj/kb05": {"20150219"},
        "coj/kb05/20150219": {"raw"},
        "coj/kb05/20150219/raw": {"frame.fits"},
    }
    # A second file in the same folder needs only that folder's fsync.
    store.put(io.BytesIO(b"frame"), "coj/kb05/20150219/raw/other.fits", size=5)
    assert [Path(s.directory).name for s in recorder.syncs[5:]] == ["raw"]
