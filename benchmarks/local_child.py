"""The processes ``benchmarks/local.py`` measures, with no more imports than
they need (the harness's own imports would add about 30 ms to every run).

    local_child.py _ocs DEST [--no-read-back] SRC...   # store each SRC under DEST, 4 at a time
    local_child.py _md5 SRC...                         # read each SRC and compute its MD5 only
    local_child.py _disk DEST SRC...                   # our default I/O pattern alone, no hashing

``benchmarks/s3.py`` uses :func:`md5_file` for the same limit.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import os
import sys
from pathlib import Path

CHUNK = 8 * 1024 * 1024


def md5_file(path: str | Path) -> str:
    """Read ``path`` and compute its MD5 on this core, nothing else: the
    machine's read + MD5 limit, which both benchmarks measure in their runs."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _md5_only(argv: list[str]) -> int:
    for src in argv:
        print(json.dumps({"path": Path(src).name, "md5": md5_file(src)}))
    return 0


def _disk_only(argv: list[str]) -> int:
    """The local store's default I/O pattern and nothing else, 4 files at a
    time: each SRC is read into a page-aligned 4 MiB buffer, written to a
    temporary file in DEST with O_DIRECT, read back from the disk (not
    compared), then fsync, rename, directory fsync. No hashing: the disk's
    own limit for a copy that re-reads what it wrote.

    It stands alone on purpose, with its own few lines where the library has
    ``anonymous_map``, ``_Writer`` and ``fsync_directory``: importing
    ``ocs_transfer`` would add its start-up to a row meant to show the disk
    alone."""
    import concurrent.futures

    dest, sources = argv[0], [Path(p) for p in argv[1:]]
    size = 4 * 1024 * 1024

    def one(src: Path) -> dict[str, object]:
        data = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        back = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        temp, final = os.path.join(dest, f".{src.name}.tmp"), os.path.join(dest, src.name)
        out = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o644)
        offset = 0
        with open(src, "rb", buffering=0) as f:
            while n := f.readinto(data):
                if n % 4096:  # the unaligned tail: buffered, as the store does
                    fcntl.fcntl(out, fcntl.F_SETFL, fcntl.fcntl(out, fcntl.F_GETFL) & ~os.O_DIRECT)
                os.pwrite(out, memoryview(data)[:n], offset)
                os.preadv(out, [memoryview(back)[:n]], offset)
                offset += n
        os.fsync(out)
        os.close(out)
        os.replace(temp, final)
        directory = os.open(dest, os.O_RDONLY)
        os.fsync(directory)
        os.close(directory)
        return {"path": src.name, "size": offset}

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for result in pool.map(one, sources):
            print(json.dumps(result))
    return 0


def _store(argv: list[str]) -> int:
    """Store each SRC under DEST (4 at a time) and print the results as JSON
    lines."""
    import concurrent.futures

    from ocs_transfer.storage import get_store

    dest, rest = argv[0], argv[1:]
    options = {"read_back": False} if rest[:1] == ["--no-read-back"] else {}
    sources = [Path(p) for p in rest[len(options) :]]
    store = get_store(dest, **options)

    def one(src: Path) -> dict[str, object]:
        with open(src, "rb") as f:
            obj = store.put(f, src.name, size=src.stat().st_size)
        return {"path": obj.path, "size": obj.size, "md5": obj.md5, "sha256": obj.sha256}

    with store, concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for result in pool.map(one, sources):
            print(json.dumps(result))
    return 0


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    sys.exit({"_ocs": _store, "_md5": _md5_only, "_disk": _disk_only}[command](args))
