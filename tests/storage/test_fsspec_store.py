"""The generic fsspec store: one-pass hashing, verification, clean-up.

Faults come from filesystems that misbehave like broken servers do (a flipped
byte, a short object, a connection cut): subclasses of fsspec's real memory
filesystem, not stand-ins for our own code.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem
from fsspec.spec import AbstractBufferedFile
from hypothesis import given, settings
from hypothesis import strategies as st

from ocs_transfer.exceptions import (
    IntegrityError,
    ObjectNotFoundError,
    TransferCancelledError,
    TransientStorageError,
    UnsafePathError,
)
from ocs_transfer.retry import Kind, classify
from ocs_transfer.storage import get_store
from ocs_transfer.storage.fsspec_store import FsspecStore
from ocs_transfer.storage.hashing import BEHIND_MD5, BufferPool, BufferRing, HashingReader
from ocs_transfer.storage.memory import MemoryStore
from ocs_transfer.testing import ShortReader

CHUNK = 64 * 1024


def pattern(n: int) -> bytes:
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


class FlipByteFS(MemoryFileSystem):
    """A server that stores one byte wrong."""

    cachable = False

    def _open(self, path: str, mode: str = "rb", **kw: Any) -> Any:
        f = super()._open(path, mode, **kw)
        if "w" in mode:
            close = f.close

            def corrupt_then_close() -> None:
                buf = f.getbuffer()
                if len(buf):
                    buf[len(buf) // 2] ^= 0xFF
                del buf
                close()

            f.close = corrupt_then_close
        return f


class ShortFS(MemoryFileSystem):
    """A server that reports fewer bytes than it was sent."""

    cachable = False

    def info(self, path: str, **kw: Any) -> dict[str, Any]:
        out = dict(super().info(path, **kw))
        if out.get("type") == "file":
            out["size"] = max(0, out["size"] - 1)
        return out


class CutFS(MemoryFileSystem):
    """A server whose connection drops after some bytes."""

    cachable = False

    def _open(self, path: str, mode: str = "rb", **kw: Any) -> Any:
        f = super()._open(path, mode, **kw)
        if "w" in mode:
            write = f.write

            def cut(data: bytes) -> int:
                if f.tell() + len(data) > 100_000:
                    raise ConnectionResetError(104, "Connection reset by peer")
                return int(write(data))

            f.write = cut
        return f


def store_on(fs: MemoryFileSystem, root: str) -> FsspecStore:
    store = MemoryStore(fs, root, chunk_size=CHUNK)
    return store


@pytest.fixture
def memory_store(request: pytest.FixtureRequest) -> FsspecStore:
    return get_store(f"memory://test-{request.node.name[:40]}")  # type: ignore[return-value]


def everything_under(fs: MemoryFileSystem, root: str) -> list[str]:
    return sorted(p for p, info in fs.find(root, detail=True).items() if info["type"] == "file")


@pytest.mark.parametrize("fs_class", [FlipByteFS, ShortFS])
def test_corruption_detected_and_removed(fs_class: type[MemoryFileSystem]) -> None:
    fs = fs_class()
    store = store_on(fs, "/corrupt")
    data = pattern(300_000)
    with pytest.raises(IntegrityError) as info:
        store.put(io.BytesIO(data), "obs/x.fits", size=len(data))
    assert classify(info.value).kind is Kind.RETRY
    assert everything_under(fs, "/corrupt") == []
    assert not store.exists("obs/x.fits")


def test_connection_cut_mid_upload_leaves_nothing_and_is_transient() -> None:
    fs = CutFS()
    store = store_on(fs, "/cut")
    with pytest.raises(TransientStorageError):
        store.put(io.BytesIO(pattern(400_000)), "obs/x.fits")
    assert everything_under(fs, "/cut") == []


def test_cut_overwrite_keeps_the_old_object(memory_store: FsspecStore) -> None:
    old = pattern(1000)
    memory_store.put(io.BytesIO(old), "obs/x.fits")
    cut = store_on(CutFS(), memory_store.root)
    cut.fs.store.update(memory_store.fs.store)  # same objects, now behind a flaky connection
    with pytest.raises(TransientStorageError):
        cut.put(io.BytesIO(pattern(400_000)), "obs/x.fits")
    with cut.open("obs/x.fits") as f:
        assert f.read() == old


def test_source_shorter_than_promised_is_an_integrity_error(memory_store: FsspecStore) -> None:
    with pytest.raises(IntegrityError, match="expected 20"):
        memory_store.put(io.BytesIO(b"0123456789"), "short.bin", size=20)
    assert list(memory_store.list()) == []


def test_cancel_midway_leaves_nothing(memory_store: FsspecStore) -> None:
    cancel = threading.Event()
    seen: list[int] = []

    def progress(n: int) -> None:
        seen.append(n)
        if sum(seen) >= 3 * CHUNK:
            cancel.set()

    with pytest.raises(TransferCancelledError):
        memory_store.put(io.BytesIO(pattern(20 * CHUNK)), "c.bin", progress=progress, cancel=cancel)
    assert list(memory_store.list()) == []
    assert everything_under(memory_store.fs, memory_store.root) == []


def test_progress_adds_up_and_result_matches_hashlib(memory_store: FsspecStore) -> None:
    data = pattern(5 * CHUNK + 3)
    seen: list[int] = []
    result = memory_store.put(io.BytesIO(data), "p/q.bin", progress=seen.append, content_type="image/fits")
    assert sum(seen) == len(data) == result.size
    assert result.md5 == hashlib.md5(data).hexdigest()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.content_type == "image/fits"
    assert result.version_set() == {"key": result.md5, "md5": result.md5, "extension": ""}


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own priority can be set on Linux only")
def test_md5_helper_runs_ahead_of_the_sha256_helper() -> None:
    """MD5 is every upload's critical path: its helper keeps the caller's
    priority, and SHA-256's helper runs BEHIND_MD5 nice steps lower, so on a
    busy machine the MD5 helper gets the core first."""
    me = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    reader = HashingReader(io.BytesIO(b"x" * 100_000))
    try:
        reader.read(30_000)  # a first chunk is hashed in the caller's thread (a one-chunk file starts none)
        reader.read(30_000)  # the helpers' threads start with the second
        helpers = {
            t.name.rsplit("_", 1)[0]: os.getpriority(os.PRIO_PROCESS, t.native_id)
            for t in threading.enumerate()
            if t.name.startswith("ocs-transfer-") and t.native_id is not None
        }
        assert helpers == {"ocs-transfer-md5": me, "ocs-transfer-sha256": min(me + BEHIND_MD5, 19)}
        reader.read()
    finally:
        digests = reader.digests()
    data = b"x" * 100_000
    assert digests == {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == me  # the caller's thread is untouched


def test_a_one_chunk_file_is_hashed_without_starting_threads() -> None:
    """Small files (most of a night's calibration frames) cost no thread start each."""
    before = {t.ident for t in threading.enumerate()}
    data = b"y" * 1000
    reader = HashingReader(io.BytesIO(data))
    assert reader.read(65536) == data and reader.read(65536) == b""
    started = [t.name for t in threading.enumerate() if t.ident not in before]
    assert reader.digests() == {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}
    assert started == []


@settings(max_examples=40, deadline=None)
@given(size=st.sampled_from([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17]), parallel=st.booleans())
def test_hashing_reader_equals_hashlib(size: int, parallel: bool) -> None:
    data = pattern(size)
    reader = HashingReader(io.BytesIO(data), parallel=parallel)
    out = bytearray()
    while chunk := reader.read(CHUNK):
        out += chunk
    digests = reader.digests()
    assert bytes(out) == data
    assert digests == {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}


@settings(max_examples=40, deadline=None)
@given(
    size=st.sampled_from([0, 1, 4095, 4096, 3 * 4096 + 17]),
    most=st.sampled_from([1, 1000, 4096, 1 << 20]),
    with_readinto=st.booleans(),
    parallel=st.booleans(),
)
def test_fill_fills_whole_buffers_and_hashes_what_came(
    size: int, most: int, with_readinto: bool, parallel: bool
) -> None:
    """Every fill but the last is a whole buffer however the source
    trickles; the buffers, in turn through a ring of two, hold the data;
    the digests are those of the data."""
    data = pattern(size)
    reader = HashingReader(ShortReader(data, most, readinto=with_readinto), parallel=parallel)
    out, counts = bytearray(), []
    with BufferRing(2, BufferPool(4096)) as ring:
        while True:
            slot, view = ring.next()
            count, hashing = reader.fill(view)
            if not count:
                break
            counts.append(count)
            out += view[:count]
            ring.hold(slot, *hashing)
    assert bytes(out) == data
    assert all(c == 4096 for c in counts[:-1]) and sum(counts) == size
    assert reader.digests() == {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}


def test_buffer_ring_hands_a_buffer_out_again_only_when_its_users_finished() -> None:
    ring = BufferRing(2, BufferPool(4096))
    first, view = ring.next()
    release = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        user = pool.submit(release.wait, 10)
        ring.hold(first, user, None)
        second, _ = ring.next()  # the other buffer: no wait
        assert second != first
        again = pool.submit(ring.next)  # the first buffer again: must wait for `user`
        deadline = time.monotonic() + 10
        while not user._waiters and not again.done() and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.001)  # until next() waits on `user` (or wrongly returned)
        assert not again.done()  # `user` is still running: next() must not have handed the buffer out
        assert user._waiters  # type: ignore[attr-defined]  # it is waiting for exactly that future
        release.set()
        slot, view_again = again.result(timeout=10)
    assert slot == first and user.done()
    assert len(view_again) == 4096 and view.obj is view_again.obj


def test_buffer_pool_reuses_what_rings_gave_back_and_keeps_a_bounded_number() -> None:
    pool = BufferPool(4096, keep=2)
    with BufferRing(2, pool) as ring:
        _, first = ring.next()
        _, second = ring.next()
        used = {id(first.obj), id(second.obj)}
    with BufferRing(2, pool) as ring:
        again = {id(ring.next()[1].obj), id(ring.next()[1].obj)}
    assert again == used  # the same memory, no new maps
    extra = [pool.take() for _ in range(3)]
    for buffer in extra:
        pool.give(buffer)
    assert len([pool.take() for _ in range(2)]) == 2 and pool.take() not in extra  # only two were kept


def test_missing_objects_are_not_found(memory_store: FsspecStore) -> None:
    for call in (
        lambda: memory_store.info("nope"),
        lambda: memory_store.open("nope"),
        lambda: memory_store.delete_file("nope"),
    ):
        with pytest.raises(ObjectNotFoundError):
            call()
    assert not memory_store.exists("nope")


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../b", "a//b", "a/./b", "a\x00b"])
def test_unsafe_paths_rejected_before_io(bad: str) -> None:
    fs = MemoryFileSystem()
    store = store_on(fs, "/safe")
    before = dict(fs.store)
    with pytest.raises(UnsafePathError):
        store.put(io.BytesIO(b"x"), bad)
    assert dict(fs.store) == before


def test_hidden_temporaries_never_listed(memory_store: FsspecStore) -> None:
    memory_store.put(io.BytesIO(b"abc"), "d/ok.txt")
    # A temporary left behind by a process killed mid-upload:
    leftover = MemoryFile(memory_store.fs, f"{memory_store.root}/d/.x.txt.ocs-transfer-partial-abc", b"partial")
    leftover.commit()
    assert [o.path for o in memory_store.list()] == ["d/ok.txt"]


class PartUpload(AbstractBufferedFile):
    """A multipart-style upload: parts are kept aside and the object appears
    only when the final part is sent (like S3 or GCS)."""

    def _initiate_upload(self) -> None:
        self.parts: list[bytes] = []

    def _upload_chunk(self, final: bool = False) -> bool:
        self.parts.append(self.buffer.getvalue())
        if final:
            MemoryFile(self.fs, self.path, b"".join(self.parts)).commit()
        return True

    def discard(self) -> None:
        self.parts = []
        self.fs.aborted.append(self.path)


class AtomicPartFS(MemoryFileSystem):
    """An object store whose writes publish atomically, with a source that
    can fail mid-way."""

    cachable = False

    def __init__(self) -> None:
        super().__init__()
        self.aborted: list[str] = []

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, **kw: Any) -> Any:
        if "w" in mode:
            return PartUpload(self, path, mode, block_size=5 * 2**20)
        return super()._open(path, mode, **kw)


class AtomicStore(MemoryStore):
    atomic_writes = True


class FailingSource(io.RawIOBase):
    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            raise ConnectionResetError(104, "source connection reset")
        n = min(len(buffer), self.left)
        buffer[:n] = b"s" * n
        self.left -= n
        return n


def test_atomic_store_failed_source_never_commits_and_keeps_old_object() -> None:
    fs = AtomicPartFS()
    store = AtomicStore(fs, "/atomic", chunk_size=CHUNK)
    old = pattern(1234)
    store.put(io.BytesIO(old), "obs/x.fits")
    with pytest.raises(TransientStorageError):
        store.put(io.BufferedReader(FailingSource(12 * 2**20)), "obs/x.fits")
    assert fs.aborted == ["/atomic/obs/x.fits"]
    with store.open("obs/x.fits") as f:
        assert f.read() == old
    import gc

    gc.collect()  # a half-written handle must not commit when collected
    with store.open("obs/x.fits") as f:
        assert f.read() == old


@pytest.mark.parametrize("run", [1, 2])
def test_every_test_has_its_own_memory_file_system(run: int) -> None:
    """The same root in two tests: the second must not see the first one's
    object (tests/conftest.py gives every test its own memory store)."""
    store = get_store("memory://the-same-root-in-every-run")
    assert list(store.list()) == []
    store.put(io.BytesIO(b"run %d" % run), "left-behind.bin")
    assert [o.path for o in store.list()] == ["left-behind.bin"]
