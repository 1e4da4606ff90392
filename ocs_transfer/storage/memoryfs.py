"""fsspec's memory filesystem with an index of its paths.

fsspec's memory filesystem keeps every path of the process in one flat dict
and answers ``info``, ``exists``, ``ls`` and ``find`` by scanning all of it,
so a test suite that stores thousands of objects slows down with each one.
:class:`IndexedMemoryFileSystem` keeps, beside that dict, a tree of which
paths lie below each folder, updated as the dict changes, and answers those
questions from the tree. It has its own process-wide store, apart from
fsspec's ``memory://`` one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any, Self

from fsspec.implementations.memory import MemoryFileSystem

__all__ = ["IndexedMemoryFileSystem"]


def _parent(path: str) -> str:
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else ""


class _Tree:
    """For each folder, its immediate children and how many entries (objects
    and explicitly made folders) lie at or below each child."""

    def __init__(self) -> None:
        self.below: dict[str, dict[str, int]] = {}
        self.lock = threading.RLock()

    def add(self, path: str) -> None:
        child = path
        while child:
            parent = _parent(child)
            kids = self.below.setdefault(parent, {})
            kids[child] = kids.get(child, 0) + 1
            child = parent

    def remove(self, path: str) -> None:
        child = path
        while child:
            parent = _parent(child)
            kids = self.below[parent]
            if kids[child] > 1:
                kids[child] -= 1
            else:
                del kids[child]
                if not kids:
                    del self.below[parent]
            child = parent

    def children(self, folder: str) -> list[str]:
        with self.lock:
            return list(self.below.get(folder, ()))

    def descendants(self, folder: str) -> Iterator[str]:
        """Every entry below ``folder``, depth first."""
        stack = [folder]
        while stack:
            kids = self.children(stack.pop())
            yield from kids
            stack.extend(kids)


class _Store(dict[str, Any]):
    """fsspec's flat path -> file dict, keeping a :class:`_Tree` in step."""

    def __init__(self) -> None:
        super().__init__()
        self.tree = _Tree()

    def __setitem__(self, key: str, value: Any) -> None:
        with self.tree.lock:
            if key not in self:
                self.tree.add(key)
            super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        with self.tree.lock:
            super().__delitem__(key)
            self.tree.remove(key)

    def pop(self, key: str, *default: Any) -> Any:
        with self.tree.lock:
            if key in self:
                self.tree.remove(key)
            return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        with self.tree.lock:
            key = next(reversed(self))
            return key, self.pop(key)

    def setdefault(self, key: str, default: Any = None) -> Any:
        with self.tree.lock:
            if key not in self:
                self[key] = default
            return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        with self.tree.lock:
            for key, value in dict(*args, **kwargs).items():
                self[key] = value

    def __ior__(self, other: Any) -> Self:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        with self.tree.lock:
            for key in list(self):
                del self[key]


def _resyncing(name: str) -> Any:
    """The list method ``name`` for :class:`_Folders`: the change, then the
    index brought in step (for the changes fsspec itself never makes)."""
    method = getattr(list, name)

    def changed(self: _Folders, *args: Any, **kwargs: Any) -> Any:
        with self._tree.lock:
            before = list(self)
            result = method(self, *args, **kwargs)
            self._removed(before)
            self._added(self)
            return result

    changed.__name__ = name
    return changed


class _Folders(list[str]):
    """fsspec's list of explicitly made folders, with set-speed ``in`` and the
    store's tree in step whatever changes the list."""

    def __init__(self, store: _Store, folders: Iterable[str] = ("",)) -> None:
        super().__init__()
        self._tree = store.tree
        self._count: dict[str, int] = {}
        self.extend(folders)

    def __contains__(self, folder: object) -> bool:
        return folder in self._count

    def _added(self, folders: Iterable[str]) -> None:
        for folder in folders:
            self._count[folder] = self._count.get(folder, 0) + 1
            self._tree.add(folder)

    def _removed(self, folders: Iterable[str]) -> None:
        for folder in folders:
            if self._count[folder] > 1:
                self._count[folder] -= 1
            else:
                del self._count[folder]
            self._tree.remove(folder)

    def append(self, folder: str) -> None:
        with self._tree.lock:
            super().append(folder)
            self._added((folder,))

    def remove(self, folder: str) -> None:
        with self._tree.lock:
            super().remove(folder)
            self._removed((folder,))

    extend = _resyncing("extend")
    insert = _resyncing("insert")
    pop = _resyncing("pop")
    clear = _resyncing("clear")
    __setitem__ = _resyncing("__setitem__")
    __delitem__ = _resyncing("__delitem__")
    __iadd__ = _resyncing("__iadd__")
    __imul__ = _resyncing("__imul__")


def _install() -> tuple[_Store, _Folders]:
    """Put the indexed containers in the place of fsspec's plain ones (same
    entries), so ``memory://`` links still open with :func:`fsspec.open`."""
    current = MemoryFileSystem.store
    if not isinstance(current, _Store) or not isinstance(MemoryFileSystem.pseudo_dirs, _Folders):
        store = _Store()
        store.update(current)
        MemoryFileSystem.store = store
        MemoryFileSystem.pseudo_dirs = _Folders(store, MemoryFileSystem.pseudo_dirs)
    return MemoryFileSystem.store, MemoryFileSystem.pseudo_dirs


class IndexedMemoryFileSystem(MemoryFileSystem):  # type: ignore[misc]
    """fsspec's memory filesystem answering ``info``, ``ls`` and ``find`` from
    the index instead of a scan of every path in the process.

    It shares fsspec's process-wide store: creating one replaces fsspec's
    plain dict and folder list with indexed ones holding the same entries.
    Should something put plain containers back (a test's monkeypatch), the
    next instance indexes those; until then the scans of fsspec's own methods
    answer.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _install()
        super().__init__(*args, **kwargs)

    @staticmethod
    def empty_state() -> tuple[_Store, _Folders]:
        """A new, empty ``(store, pseudo_dirs)`` pair: what a test sets on
        :class:`~fsspec.implementations.memory.MemoryFileSystem` to start
        from nothing."""
        store = _Store()
        return store, _Folders(store)

    def _tree(self) -> _Tree | None:
        store = self.store
        return store.tree if isinstance(store, _Store) and isinstance(self.pseudo_dirs, _Folders) else None

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        tree = self._tree()
        if tree is None:
            return super().info(path, **kwargs)  # type: ignore[no-any-return]
        path = self._strip_protocol(path)
        if path in self.pseudo_dirs or path in tree.below:
            return {"name": path, "size": 0, "type": "directory"}
        filelike = self.store.get(path)
        if filelike is None:
            raise FileNotFoundError(path)
        return {"name": path, "size": filelike.size, "type": "file", "created": getattr(filelike, "created", None)}

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        tree = self._tree()
        path = self._strip_protocol(path)
        if tree is None or path in self.store:  # one file: fsspec's answers without a scan
            return super().ls(path, detail=detail, **kwargs)  # type: ignore[no-any-return]
        out: list[dict[str, Any]] = []
        for child in sorted(tree.children(path)):
            filelike = self.store.get(child)
            if filelike is not None:
                out.append(_file_entry(child, filelike))
            if child in self.pseudo_dirs or child in tree.below:
                out.append({"name": child, "size": 0, "type": "directory"})
        if not out and path not in self.pseudo_dirs:
            raise FileNotFoundError(path)
        return out if detail else sorted(entry["name"] for entry in out)

    def find(
        self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False, **kwargs: Any
    ) -> Any:
        tree = self._tree()
        stripped = self._strip_protocol(path)
        if tree is None or maxdepth is not None or withdirs or stripped in self.store:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        prefix = stripped + "/" if stripped else "/"
        found = {}
        for name in tree.descendants(stripped):
            filelike = self.store.get(name)
            if filelike is not None and name.startswith(prefix):
                found[name] = _file_entry(name, filelike)
        names = sorted(found)
        return {name: found[name] for name in names} if detail else names


def _file_entry(name: str, filelike: Any) -> dict[str, Any]:
    return {"name": name, "size": filelike.size, "type": "file", "created": filelike.created.timestamp()}
