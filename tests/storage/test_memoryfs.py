"""The memory provider's filesystem answers from its index: the same answers
as fsspec's scanning memory filesystem, without scanning every path."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from ocs_transfer.storage import get_store
from ocs_transfer.storage.memoryfs import IndexedMemoryFileSystem


def _reference(fs: IndexedMemoryFileSystem) -> MemoryFileSystem:
    """fsspec's own memory filesystem over a plain copy of the same entries:
    the answers ours must give."""
    ref = MemoryFileSystem(global_store=False, skip_instance_cache=True)
    ref.store = dict(fs.store)
    ref.pseudo_dirs = list(fs.pseudo_dirs)
    return ref


def _answers(fs: MemoryFileSystem, path: str) -> dict[str, Any]:
    def ask(call: Any) -> Any:
        try:
            return call()
        except (FileNotFoundError, NotADirectoryError) as exc:
            return type(exc).__name__

    def entries(listing: Any) -> Any:
        return sorted(map(repr, listing)) if isinstance(listing, list) else listing

    return {
        "info": ask(lambda: fs.info(path)),
        "exists": fs.exists(path),
        "isdir": fs.isdir(path),
        "isfile": fs.isfile(path),
        "ls": ask(lambda: entries(fs.ls(path, detail=True))),
        "ls names": ask(lambda: fs.ls(path, detail=False)),
        "find": fs.find(path),
        "find detail": fs.find(path, detail=True),
    }


@pytest.mark.parametrize("seed", range(4))
def test_same_answers_as_fsspec_across_many_paths(seed: int) -> None:
    """Random files and folders made, moved and removed; then every path that
    was ever used, and their folders, asked about in both filesystems."""
    rng = random.Random(seed)
    fs = IndexedMemoryFileSystem()
    names = ["a", "b", "c", "a b", "x.fits", "d?", "é"]
    used: set[str] = {"", "/"}
    for _ in range(600):
        path = "/" + "/".join(rng.choice(names) for _ in range(rng.randint(1, 4)))
        used.add(path)
        action = rng.random()
        try:
            if action < 0.45:
                fs.pipe_file(path, b"x" * rng.randint(0, 30))
            elif action < 0.6:
                fs.makedirs(path, exist_ok=True)
            elif action < 0.75 and fs.isfile(path):
                fs.rm_file(path)
            elif action < 0.85 and fs.isfile(path):
                target = path + "-moved"
                used.add(target)
                fs.store[target] = fs.store.pop(path)  # how the memory provider publishes
            elif action < 0.95:
                fs.rmdir(path)
            else:
                fs.rm(path, recursive=True)
        except (FileNotFoundError, FileExistsError, NotADirectoryError, OSError):
            continue  # the same refusal fsspec gives; the state is what is compared
    ref = _reference(fs)
    paths = set(used)
    for path in used:
        while path.count("/") > 1:
            path = path.rsplit("/", 1)[0]
            paths.add(path)
    assert len(paths) > 100
    for path in sorted(paths):
        assert _answers(fs, path) == _answers(ref, path), path


class _CountingScans:
    """Counts how often the whole store is walked (iterated, or its keys,
    values or items taken)."""

    def __init__(self, store: dict[str, Any]) -> None:
        self.count = 0
        original = type(store)
        counter = self

        class Counting(original):  # type: ignore[valid-type,misc]
            def __iter__(self) -> Any:
                counter.count += 1
                return super().__iter__()

            def keys(self) -> Any:
                counter.count += 1
                return super().keys()

            def items(self) -> Any:
                counter.count += 1
                return super().items()

            def values(self) -> Any:
                counter.count += 1
                return super().values()

        store.__class__ = Counting


def test_storing_does_not_scan_every_path_in_the_process() -> None:
    """Thousands of objects in one store; then storing, checking and listing
    in another walks none of them."""
    big = get_store("memory://many")
    for i in range(2000):
        big.put(io.BytesIO(b"%d" % i), f"night-{i % 20}/frame-{i}.fits")
    fs = IndexedMemoryFileSystem()
    scans = _CountingScans(fs.store)
    small = get_store("memory://few")
    for i in range(20):
        stored = small.put(io.BytesIO(b"frame %d" % i), f"d/frame-{i}.fits")
        assert small.exists(stored.path)
        assert small.info(stored.path).size == len(b"frame %d" % i)
    assert [o.path for o in small.list()] == sorted(f"d/frame-{i}.fits" for i in range(20))
    assert len(list(big.list("night-3"))) == 100
    assert scans.count == 0


def test_memory_links_still_open_with_fsspec() -> None:
    """The provider's store is fsspec's process-wide one (indexed), so the
    ``memory://`` links it makes open with plain fsspec."""
    import fsspec

    store = get_store("memory://linked")
    stored = store.put(io.BytesIO(b"hello"), "a/b.txt")
    with fsspec.open(store.get_url(stored.path), "rb") as f:
        assert f.read() == b"hello"
