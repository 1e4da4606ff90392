"""The conformance suite every storage provider runs.

A provider's test module subclasses :class:`StoreTests` and supplies a
``store`` fixture; capability fixtures say what the provider can do::

    # plugins/myprovider/tests/test_conformance.py
    import pytest
    from ocs_transfer.testing import StoreTests

    class TestMyProvider(StoreTests):
        @pytest.fixture
        def store(self, tmp_path):
            with MyStore.from_config(MyStore.Config(root=str(tmp_path))) as store:
                yield store

        @pytest.fixture
        def links_fetchable(self):
            return True  # get_url gives http(s) links a test can download

The ``store`` fixture must give an *empty* store for each test (a fresh root,
prefix or bucket). The capability fixtures, and their defaults:

``supports_versioning`` (``store.supports_versioning``)
    ``put`` returns version ids and old versions can be read and deleted.
``supports_links`` (True)
    ``get_url`` returns a link; False means it raises ``NotImplementedError``
    or (links need more configuration) ``ConfigurationError``.
``links_fetchable`` (False)
    The link is an ``http(s)`` URL this machine can download without
    credentials; the suite fetches it with urllib and compares the bytes.
``open_link`` (None)
    For links that name an object by an id rather than by its path (Drive's
    ``webViewLink``) and cannot be fetched here: a callable that takes the link
    and returns the bytes of the object it names (e.g. through the provider's
    test server); the suite compares them with what it stored.
``raw_listing`` (``store.list()``)
    A callable returning every name the provider really holds under the
    store's root, including hidden temporary files (for a directory:
    ``os.walk``). Used to prove a failed upload left nothing behind.
``large_file_size`` (160 MiB) and ``large_file_memory_limit`` (6 chunks, at least 32 MiB)
    The size of the streamed large file, and the most Python memory
    (``tracemalloc`` peak) storing it may take; the chunk size is the store's
    ``chunk_size`` attribute (8 MiB when it has none). Providers that keep
    objects in memory (``memory``) raise the limit by the file size; slow test
    servers may lower the size.

``bad_credentials_store`` (None: skipped)
    A store like ``store`` but built with wrong credentials. Its connection
    test must fail with a message and its upload must raise an error that
    :func:`ocs_transfer.retry.classify` says is final (never retried).
``drop_connections`` (None: skipped)
    A callable that cuts every connection the store holds (e.g. a fault
    proxy closing its sockets, or the test server restarting). The store
    must recover: an upload after it succeeds, at most after one failure
    that ``classify`` says is retryable.
``thread_count`` (8)
    How many threads the many-thread case runs at once on one store.

The tests are grouped (:class:`WriteTests`, :class:`ReadTests`,
:class:`NameTests`, :class:`LinkTests`, :class:`RobustnessTests`,
:class:`VersioningTests`); :class:`StoreTests` is all of them.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import tracemalloc
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ..exceptions import (
    ConfigurationError,
    FinalStorageError,
    ObjectNotFoundError,
    OcsTransferError,
    TransferCancelledError,
    UnsafePathError,
)
from ..storage.base import FileStore, StoredObject
from .data import HOSTILE_NAMES, TRAVERSAL_PATHS, PatternReader, SourceReadError, pattern_bytes, pattern_digests

__all__ = [
    "ConnectionTests",
    "LinkTests",
    "NameTests",
    "ProviderFixtures",
    "ReadTests",
    "RobustnessTests",
    "StoreTests",
    "VersioningTests",
    "WriteTests",
]

MiB = 1 << 20
#: Crosses typical chunk boundaries (1, 4, 5, 8 MiB) without being a multiple.
MEDIUM = 5 * MiB + 3


def _put_bytes(store: FileStore, path: str, data: bytes, **kw: Any) -> StoredObject:
    return store.put(io.BytesIO(data), path, size=len(data), **kw)


def _read(store: FileStore, path: str, version_id: str | None = None) -> bytes:
    with store.get_fileobj(path, version_id) as f:
        chunks = []
        while chunk := f.read(MiB):
            chunks.append(chunk)
    return b"".join(chunks)


def _check_stored(obj: StoredObject, path: str, data: bytes) -> None:
    assert obj.path == path
    assert obj.size == len(data)
    assert obj.md5 == hashlib.md5(data).hexdigest()
    assert obj.sha256 == hashlib.sha256(data).hexdigest()


def _is_the_source_failure(exc: BaseException) -> None:
    """A put that failed because its source failed raises our
    FinalStorageError (a person must look at the source: never retried as a
    destination fault), with the source's own error as its cause."""
    from ..retry import Kind, classify

    assert type(exc) is FinalStorageError, f"{type(exc).__name__}: {exc}"
    assert classify(exc).kind is Kind.NEVER
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, SourceReadError):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, SourceReadError), f"the source's error is not in the chain of {exc!r}"


def _paths(store: FileStore, prefix: str = "") -> set[str]:
    return {o.path for o in store.list(prefix)}


def _settles_to(raw_listing: Callable[[], list[str]], expected: list[str], timeout: float = 5.0) -> list[str]:
    """``raw_listing()`` once it equals ``expected``, or at ``timeout``: a
    server may remove its hidden partial file a moment after the client gave
    up the upload (the client's own leftovers are gone at once; see the
    ``exists``/``list`` checks)."""
    deadline = time.monotonic() + timeout
    while (found := raw_listing()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


class ProviderFixtures:
    """The fixture contract. Override ``store``; override capabilities as
    needed."""

    @pytest.fixture
    def store(self) -> Iterator[FileStore]:
        raise NotImplementedError("a conformance test class must define a 'store' fixture giving an empty store")

    @pytest.fixture
    def supports_versioning(self, store: FileStore) -> bool:
        return bool(store.supports_versioning)

    @pytest.fixture
    def supports_links(self) -> bool:
        return True

    @pytest.fixture
    def links_fetchable(self) -> bool:
        return False

    @pytest.fixture
    def open_link(self) -> Callable[[str], bytes] | None:
        return None

    @pytest.fixture
    def raw_listing(self, store: FileStore) -> Callable[[], list[str]]:
        return lambda: sorted(_paths(store))

    @pytest.fixture
    def local_root(self) -> Path | None:
        return None

    @pytest.fixture
    def bad_credentials_store(self) -> FileStore | None:
        return None

    @pytest.fixture
    def drop_connections(self) -> Callable[[], None] | None:
        return None

    @pytest.fixture
    def thread_count(self) -> int:
        return 8

    @pytest.fixture
    def large_file_size(self) -> int:
        return 160 * MiB

    @pytest.fixture
    def large_file_memory_limit(self, store: FileStore) -> int:
        chunk = int(getattr(store, "chunk_size", 8 * MiB))
        return max(32 * MiB, 6 * chunk)


class WriteTests(ProviderFixtures):
    def test_put_returns_verified_hashes(self, store: FileStore) -> None:
        data = pattern_bytes(MEDIUM)
        obj = _put_bytes(store, "dir/sub/file.fits", data, content_type="image/fits", extension=".fits")
        _check_stored(obj, "dir/sub/file.fits", data)
        assert obj.extension == ".fits"
        assert obj.version_set() == {"key": obj.version_id or obj.md5, "md5": obj.md5, "extension": ".fits"}

    def test_put_reads_from_current_position(self, store: FileStore) -> None:
        data = pattern_bytes(4096)
        source = io.BytesIO(data)
        source.seek(1000)
        obj = store.put(source, "tail.bin")
        _check_stored(obj, "tail.bin", data[1000:])
        assert _read(store, "tail.bin") == data[1000:]

    def test_put_without_size(self, store: FileStore) -> None:
        obj = store.put(PatternReader(MEDIUM), "unsized.bin")
        md5, sha256 = pattern_digests(MEDIUM)
        assert (obj.size, obj.md5, obj.sha256) == (MEDIUM, md5, sha256)

    def test_zero_byte_file(self, store: FileStore) -> None:
        obj = _put_bytes(store, "empty.txt", b"")
        _check_stored(obj, "empty.txt", b"")
        assert store.exists("empty.txt")
        assert store.get_file_size("empty.txt") == 0
        assert _read(store, "empty.txt") == b""
        assert _paths(store) == {"empty.txt"}

    def test_overwrite_replaces_content(self, store: FileStore) -> None:
        _put_bytes(store, "same.bin", b"first version")
        second = pattern_bytes(MiB + 1)
        obj = _put_bytes(store, "same.bin", second)
        _check_stored(obj, "same.bin", second)
        assert _read(store, "same.bin") == second
        assert _paths(store) == {"same.bin"}

    def test_progress_reports_every_byte(self, store: FileStore) -> None:
        seen: list[int] = []
        store.put(PatternReader(MEDIUM), "progress.bin", size=MEDIUM, progress=seen.append)
        assert sum(seen) == MEDIUM
        assert all(n >= 0 for n in seen)

    def test_delete(self, store: FileStore) -> None:
        _put_bytes(store, "a/gone.bin", b"x" * 10)
        _put_bytes(store, "a/kept.bin", b"y" * 10)
        store.delete_file("a/gone.bin")
        assert not store.exists("a/gone.bin")
        assert _paths(store) == {"a/kept.bin"}
        with pytest.raises(ObjectNotFoundError):
            store.info("a/gone.bin")

    def test_delete_missing_raises_not_found(self, store: FileStore) -> None:
        with pytest.raises(ObjectNotFoundError):
            store.delete_file("never/was.bin")


class ReadTests(ProviderFixtures):
    def test_open_reads_back(self, store: FileStore) -> None:
        data = pattern_bytes(MEDIUM)
        _put_bytes(store, "read/me.bin", data)
        assert _read(store, "read/me.bin") == data

    def test_info_exists_size(self, store: FileStore) -> None:
        data = pattern_bytes(12345)
        obj = _put_bytes(store, "info/x.bin", data)
        info = store.info("info/x.bin")
        assert info.path == "info/x.bin"
        assert info.size == len(data)
        if store.supports_versioning:
            assert info.version_id == obj.version_id
        assert store.exists("info/x.bin")
        assert store.get_file_size("info/x.bin") == len(data)
        assert not store.exists("info/y.bin")
        assert not store.exists("info")  # a directory is not an object

    def test_missing_objects_raise_not_found(self, store: FileStore) -> None:
        with pytest.raises(ObjectNotFoundError):
            store.info("missing.bin")
        with pytest.raises(ObjectNotFoundError):
            store.open("missing.bin").close()

    def test_list(self, store: FileStore) -> None:
        for path in ["a/x.bin", "a/b/y.bin", "c/z.bin", "top.bin", "ab/not-under-a.bin"]:
            _put_bytes(store, path, path.encode())
        assert _paths(store) == {"a/x.bin", "a/b/y.bin", "c/z.bin", "top.bin", "ab/not-under-a.bin"}
        assert _paths(store, "a") == {"a/x.bin", "a/b/y.bin"}
        assert _paths(store, "a/") == {"a/x.bin", "a/b/y.bin"}
        assert _paths(store, "a/b") == {"a/b/y.bin"}
        assert _paths(store, "nothing-here") == set()
        sizes = {o.path: o.size for o in store.list()}
        assert sizes["top.bin"] == len(b"top.bin")

    def test_list_empty_store(self, store: FileStore) -> None:
        assert _paths(store) == set()


class NameTests(ProviderFixtures):
    @pytest.mark.parametrize("name", HOSTILE_NAMES)
    def test_hostile_names_round_trip(self, store: FileStore, name: str) -> None:
        data = name.encode() * 3
        obj = _put_bytes(store, name, data)
        _check_stored(obj, name, data)
        assert _paths(store) == {name}
        assert store.info(name).size == len(data)
        assert _read(store, name) == data
        store.delete_file(name)
        assert _paths(store) == set()

    def test_names_are_nfc_normalised(self, store: FileStore) -> None:
        import unicodedata

        nfc = "café/résumé.txt"
        obj = _put_bytes(store, unicodedata.normalize("NFD", nfc), b"data")
        assert obj.path == nfc
        assert _paths(store) == {nfc}
        assert _read(store, unicodedata.normalize("NFD", nfc)) == b"data"

    @pytest.mark.parametrize("bad", TRAVERSAL_PATHS, ids=repr)
    def test_key_traversal_rejected(
        self, store: FileStore, raw_listing: Callable[[], list[str]], bad: str
    ) -> None:
        before = raw_listing()
        with pytest.raises(UnsafePathError):
            _put_bytes(store, bad, b"escape")
        with pytest.raises(UnsafePathError):
            store.open(bad).close()
        with pytest.raises(UnsafePathError):
            store.info(bad)
        with pytest.raises(UnsafePathError):
            store.delete_file(bad)
        with pytest.raises(UnsafePathError):
            store.get_url(bad)
        assert raw_listing() == before

    def test_symlink_leaving_root_rejected(self, store: FileStore, local_root: Path | None, tmp_path: Path) -> None:
        if local_root is None:
            pytest.skip("the store has no local root directory")
        outside = tmp_path / "outside-the-root"
        outside.mkdir()
        (outside / "secret.txt").write_bytes(b"secret")
        (local_root / "escape").symlink_to(outside, target_is_directory=True)
        with pytest.raises(UnsafePathError):
            _put_bytes(store, "escape/planted.txt", b"planted")
        with pytest.raises(UnsafePathError):
            _read(store, "escape/secret.txt")
        with pytest.raises(UnsafePathError):
            store.info("escape/secret.txt")
        with pytest.raises(UnsafePathError):
            store.delete_file("escape/secret.txt")
        assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


class LinkTests(ProviderFixtures):
    def test_get_url(
        self, store: FileStore, supports_links: bool, links_fetchable: bool, open_link: Callable[[str], bytes] | None
    ) -> None:
        name = 'link me/Hello, 世界 " & ? + #.bin'
        data = pattern_bytes(MiB + 17)
        _put_bytes(store, name, data)
        if not supports_links:
            with pytest.raises((NotImplementedError, ConfigurationError)):
                store.get_url(name)
            return
        url = store.get_url(name, expiration=timedelta(minutes=5))
        assert isinstance(url, str) and url
        parts = urllib.parse.urlsplit(url)
        if links_fetchable:
            assert parts.scheme in ("http", "https")
            with urllib.request.urlopen(url, timeout=30) as response:
                assert response.read() == data
        elif open_link is not None:  # a link by id: it must name exactly this object
            assert open_link(url) == data
        elif parts.scheme in ("http", "https"):
            # a link under a configured base URL that this test cannot reach: it must name this object there
            assert parts.netloc and urllib.parse.unquote(parts.path).endswith("/" + name), url
        else:
            import fsspec  # a link in a file system's own scheme (memory://): it opens the object itself

            with fsspec.open(url, "rb") as f:
                assert f.read() == data

    def test_connection_ok_and_leaves_nothing(
        self, store: FileStore, raw_listing: Callable[[], list[str]]
    ) -> None:
        result = store.test_connection()
        assert result.ok, result.message
        assert result.duration_s >= 0
        assert raw_listing() == []


class RobustnessTests(ProviderFixtures):
    def test_large_file_bounded_memory(
        self, store: FileStore, large_file_size: int, large_file_memory_limit: int
    ) -> None:
        md5, sha256 = pattern_digests(large_file_size)
        source = PatternReader(large_file_size)
        tracemalloc.start()
        try:
            obj = store.put(source, "large/pattern.bin", size=large_file_size)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (obj.size, obj.md5, obj.sha256) == (large_file_size, md5, sha256)
        assert peak <= large_file_memory_limit, f"peak Python memory {peak / MiB:.1f} MiB"
        assert store.info("large/pattern.bin").size == large_file_size

    @pytest.mark.parametrize("fail_after", [0, 1, MiB - 1, 3 * MiB + 5])
    def test_failure_mid_upload_leaves_nothing(
        self, store: FileStore, raw_listing: Callable[[], list[str]], fail_after: int
    ) -> None:
        source = PatternReader(MEDIUM, fail_after=fail_after)
        with pytest.raises(OcsTransferError) as info:
            store.put(source, "broken/upload.bin", size=MEDIUM)
        _is_the_source_failure(info.value)
        assert not store.exists("broken/upload.bin")
        assert _paths(store) == set()
        assert _settles_to(raw_listing, []) == []

    def test_failed_overwrite_keeps_the_old_object(
        self, store: FileStore, raw_listing: Callable[[], list[str]]
    ) -> None:
        old = pattern_bytes(1000)
        _put_bytes(store, "keep.bin", old)
        with pytest.raises(OcsTransferError) as info:
            store.put(PatternReader(MEDIUM, fail_after=2 * MiB), "keep.bin", size=MEDIUM)
        _is_the_source_failure(info.value)
        assert _read(store, "keep.bin") == old
        assert _settles_to(raw_listing, ["keep.bin"]) == ["keep.bin"]

    def test_cancel_mid_upload_leaves_nothing(
        self, store: FileStore, raw_listing: Callable[[], list[str]]
    ) -> None:
        cancel = threading.Event()

        def progress(n: int) -> None:
            if n:
                cancel.set()

        with pytest.raises(TransferCancelledError):
            store.put(PatternReader(MEDIUM), "cancelled.bin", size=MEDIUM, progress=progress, cancel=cancel)
        assert not store.exists("cancelled.bin")
        assert _paths(store) == set()
        assert _settles_to(raw_listing, []) == []


class ConnectionTests(ProviderFixtures):
    """Bad credentials, dropped connections, many threads on one store."""

    def test_bad_credentials_fail_for_good(self, bad_credentials_store: FileStore | None) -> None:
        if bad_credentials_store is None:
            pytest.skip("no bad_credentials_store fixture")
        from ..retry import classify

        result = bad_credentials_store.test_connection()
        assert not result.ok and result.message
        with pytest.raises(OcsTransferError) as raised:
            _put_bytes(bad_credentials_store, "refused.bin", b"never stored")
        assert not classify(raised.value).retryable, f"{raised.value!r} would be retried"

    def test_recovers_after_dropped_connections(
        self, store: FileStore, drop_connections: Callable[[], None] | None
    ) -> None:
        if drop_connections is None:
            pytest.skip("no drop_connections fixture")
        from ..retry import classify

        _put_bytes(store, "before.bin", b"before the drop")
        drop_connections()
        data = pattern_bytes(MiB + 5)
        try:
            obj = _put_bytes(store, "after.bin", data)
        except OcsTransferError as exc:
            assert classify(exc).retryable, f"a dropped connection gave a final error: {exc!r}"
            obj = _put_bytes(store, "after.bin", data)
        _check_stored(obj, "after.bin", data)
        assert _read(store, "after.bin") == data
        assert _read(store, "before.bin") == b"before the drop"

    def test_many_threads_on_one_store(self, store: FileStore, thread_count: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        def work(i: int) -> str:
            data = pattern_bytes(64 * 1024 + i)
            path = f"threads/{i % 3}/file-{i}.bin"
            _check_stored(_put_bytes(store, path, data), path, data)
            assert _read(store, path) == data
            return path

        with ThreadPoolExecutor(thread_count) as pool:
            written = set(pool.map(work, range(thread_count * 3)))
        assert _paths(store, "threads") == written


class VersioningTests(ProviderFixtures):
    def test_versions(self, store: FileStore, supports_versioning: bool) -> None:
        if not supports_versioning:
            pytest.skip("the provider does not version objects")
        one = _put_bytes(store, "v.bin", b"one")
        two = _put_bytes(store, "v.bin", b"two")
        assert one.version_id and two.version_id and one.version_id != two.version_id
        assert _read(store, "v.bin") == b"two"
        assert _read(store, "v.bin", one.version_id) == b"one"
        assert store.info("v.bin", one.version_id).size == 3
        store.delete_file("v.bin", version_id=one.version_id)
        with pytest.raises(ObjectNotFoundError):
            store.info("v.bin", one.version_id)
        assert _read(store, "v.bin") == b"two"  # deleting an old version leaves the current one

    def test_delete_with_a_version_id_where_the_store_does_not_version(self, store: FileStore) -> None:
        """ocs_archive deletes with its version set's key, which is the md5
        where the store does not version: the one object goes."""
        if store.supports_versioning:
            pytest.skip("the provider versions objects (test_versions)")
        obj = _put_bytes(store, "nv.bin", b"the only version")
        store.delete_file("nv.bin", version_id=obj.md5 or "0" * 32)
        assert not store.exists("nv.bin")


class StoreTests(WriteTests, ReadTests, NameTests, LinkTests, RobustnessTests, ConnectionTests, VersioningTests):
    """Every conformance test."""
