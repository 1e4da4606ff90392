"""What the ``local`` and ``webdav`` providers do beyond the conformance suite
(``test_conformance.py``): the local copy (sizes around the direct-I/O block
and chunk, sources with short reads, the read-back check), links, quick URLs,
configuration and credential errors, and a short source."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from ocs_transfer_local.local import LocalStore, _open_new, _SmallWriter, _Writer
from ocs_transfer_local.webdav import WebdavStore

from ocs_transfer import plugins
from ocs_transfer.exceptions import (
    ConfigurationError,
    CredentialError,
    IntegrityError,
    UnsafePathError,
)
from ocs_transfer.settings import Settings
from ocs_transfer.storage import get_store
from ocs_transfer.storage.base import FileStore
from ocs_transfer.storage.hashing import BufferPool, BufferRing
from ocs_transfer.testing import HOSTILE_NAMES, ShortReader, pattern_bytes

HOSTILE = HOSTILE_NAMES[0]


def visible_files(root: Path) -> list[str]:
    """Every file under ``root``, hidden temporaries included. The file
    server removes the temporary of an aborted PUT when it notices the
    abort, which can be a moment after the client gave up: wait for that."""
    deadline = time.monotonic() + 10
    while True:
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        if not any(f.endswith(".ocs-server-partial") for f in files) or time.monotonic() > deadline:
            return files
        time.sleep(0.05)


@pytest.fixture(params=["local", "webdav-ours", "webdav-plain"])
def store_and_root(request, tmp_path: Path) -> Iterator[tuple[FileStore, Path]]:
    """A store and the directory where its objects land on disk."""
    if request.param == "local":
        root = tmp_path / "archive"
        with LocalStore.from_config(LocalStore.Config(root=str(root))) as store:
            yield store, root
    elif request.param == "webdav-ours":
        srv = request.getfixturevalue("file_server")
        config = WebdavStore.Config(url=srv.url, root="dest")
        with WebdavStore.from_config(config, {"token": srv.token, "signing_key": srv.signing_key}) as store:
            yield store, srv.root / "dest"
    else:
        dav = request.getfixturevalue("plain_dav")
        config = WebdavStore.Config(url=dav.url, root="dest", username=dav.username)
        with WebdavStore.from_config(config, {"password": dav.password}) as store:
            yield store, dav.root / "dest"


def test_registered_and_listed(local_plugins) -> None:
    providers = plugins.providers()
    assert providers["local"] is LocalStore and providers["webdav"] is WebdavStore
    assert any("local-cloud" in c.name for c in plugins.commands())


def test_storing_locally_imports_only_what_it_needs(tmp_path: Path) -> None:
    """A process that stores one file starts fast: no fsspec, command line,
    file-type, cloud or retry-policy code is imported (each costs tens of ms
    per process on a small machine, which a one-file ``send`` would pay)."""
    (tmp_path / "src.bin").write_bytes(b"x" * 5000)
    code = (
        "import sys; from ocs_transfer.storage import get_store; s = get_store(sys.argv[1]);"
        " f = open(sys.argv[2], 'rb'); print(s.put(f, 'a/src.bin').size);"
        " print(' '.join(sorted(m.split('.')[0] if not m.startswith('ocs_transfer.') else m for m in sys.modules)))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OCS_TRANSFER_DISABLE_ENTRYPOINTS"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dest"), str(tmp_path / "src.bin")],
                         capture_output=True, text=True, env=env, check=True).stdout.split("\n")  # fmt: skip
    assert out[0] == "5000" and (tmp_path / "dest" / "a" / "src.bin").stat().st_size == 5000
    loaded = set(out[1].split())
    assert "ocs_transfer_local" in loaded
    assert not loaded & {"fsspec", "click", "tenacity", "asyncio", "ocs_transfer.input.datafile",
                         "ocs_transfer.storage.s3", "ocs_transfer.storage.gcs", "ocs_transfer.settings"}  # fmt: skip


def test_short_source_is_an_integrity_error(store_and_root) -> None:
    store, root = store_and_root
    with pytest.raises(IntegrityError):
        store.put(io.BytesIO(b"12345"), "short.bin", size=10)
    assert visible_files(root) == []


# -- local only ------------------------------------------------------------------------------


# Around the 4 KiB direct-I/O block and the chunk size (4 MiB here): aligned, unaligned tails, empty.
SIZES = (0, 1, 4095, 4096, 4097, 4 * 1024 * 1024 - 1, 4 * 1024 * 1024, 9 * 1024 * 1024 + 4097)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("source", ["file", "short-reads"])
@pytest.mark.parametrize("read_back", [True, False])
def test_local_copies_every_size_exactly(tmp_path: Path, size: int, source: str, read_back: bool) -> None:
    data = pattern_bytes(size)
    src = tmp_path / "src.fits"
    src.write_bytes(data)
    config = LocalStore.Config(root=str(tmp_path / "dst"), read_back=read_back)
    store = LocalStore.from_config(config, settings=Settings(chunk_size=4 * 1024 * 1024))
    # A source with only read() and at most 1000 bytes per call: every later chunk would start
    # unaligned unless the store fills its buffers completely.
    with open(src, "rb") if source == "file" else ShortReader(data, 1000, readinto=False) as f:
        stored = store.put(f, "copy.fits", size=size)
    assert stored.md5 == hashlib.md5(data).hexdigest() and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == size
    assert (tmp_path / "dst" / "copy.fits").read_bytes() == data
    assert visible_files(tmp_path / "dst") == ["copy.fits"]


def test_local_uses_direct_io_where_the_file_system_allows(tmp_path: Path) -> None:
    fd = _open_new(str(tmp_path / "probe"))
    try:
        direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
    finally:
        os.close(fd)
    if not direct:
        pytest.skip(f"the file system of {tmp_path} has no direct I/O; the buffered path is tested everywhere")
    # A direct write of an unaligned tail switches the descriptor to buffered I/O on its own.
    data = pattern_bytes(3 * 4096 + 5)
    store = LocalStore.from_config(LocalStore.Config(root=str(tmp_path / "dst")))
    assert store.put(io.BytesIO(data), "a.bin").sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "dst" / "a.bin").read_bytes() == data


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm (tmpfs) on this machine")
def test_local_on_tmpfs(tmp_path: Path) -> None:
    """tmpfs has no direct I/O on older kernels: the store falls back to buffered writes."""
    root = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="ocs-transfer-test-"))
    try:
        data = pattern_bytes(5 * 1024 * 1024 + 3)
        stored = LocalStore.from_config(LocalStore.Config(root=str(root))).put(io.BytesIO(data), "x/y.bin")
        assert stored.md5 == hashlib.md5(data).hexdigest()
        assert (root / "x" / "y.bin").read_bytes() == data
    finally:
        shutil.rmtree(root)


def test_writer_without_direct_io(tmp_path: Path) -> None:
    """The buffered path (file systems without O_DIRECT): written back as it
    goes, read back from what the kernel holds, the same bytes in the end."""
    chunk = 64 * 1024
    data = pattern_bytes(5 * chunk + 123)
    path = tmp_path / "buffered.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        pool = BufferPool(chunk)
        with BufferRing(2, pool) as ring, _Writer(fd, pool, read_back=True, writeback_every=2 * chunk) as writer:
            assert not writer.direct
            for offset in range(0, len(data), chunk):
                slot, view = ring.next()
                piece = data[offset : offset + chunk]
                view[: len(piece)] = piece
                ring.hold(slot, writer.submit(view[: len(piece)], offset))
            writer.finish()
            assert writer.unsynced < 2 * chunk  # written back along the way, not only at the end
    finally:
        os.close(fd)
    assert path.read_bytes() == data


def test_read_back_catches_a_disk_that_returns_other_bytes() -> None:
    """/dev/zero takes every write and reads back zeros: a disk that lies.
    The writer must notice, not report success."""
    fd = os.open("/dev/zero", os.O_RDWR)
    try:
        pool = BufferPool(8192)
        view = memoryview(pool.take())
        view[:] = pattern_bytes(8192)
        with _Writer(fd, pool, read_back=True) as writer:
            writer.submit(view, 0)
            with pytest.raises(IntegrityError, match="read back differently"):
                writer.finish()
        # Without the read-back, the same lie goes unnoticed: the check is what catches it.
        with _Writer(fd, pool, read_back=False) as writer:
            assert writer.submit(view, 0).result() is None  # (no finish(): /dev/zero cannot fsync)
    finally:
        os.close(fd)


def test_small_file_read_back_after_the_fsync_catches_other_bytes_on_disk(tmp_path: Path) -> None:
    """A small file is written through the page cache and read back after
    its fsync (from the disk, where direct I/O works), against a copy of
    what was hashed: bytes that changed on disk in between are caught."""
    pool = BufferPool(8192)
    view = memoryview(pool.take())
    view[:] = pattern_bytes(8192)
    for read_back in (True, False):
        path = tmp_path / f"small-{read_back}.bin"
        fd = _open_new(str(path), direct=False)
        try:
            with _SmallWriter(fd, pool, read_back=read_back) as writer:
                writer.submit(view[:5000], 0)
                with open(path, "r+b") as other:  # the disk now holds something else
                    other.seek(4999)
                    other.write(b"X")
                if read_back:
                    with pytest.raises(IntegrityError, match="read back differently"):
                        writer.finish()
                else:
                    writer.finish()  # without the read-back, the change goes unnoticed
        finally:
            os.close(fd)
        assert path.read_bytes()[4999:5000] == b"X"


def test_a_small_file_bigger_than_declared_is_still_checked_and_refused(tmp_path: Path) -> None:
    """put(size=...) says small, the source gives more: every chunk is still
    read back, and the size mismatch fails the upload with nothing left."""
    data = pattern_bytes(3 * 4096 + 7)
    store = LocalStore.from_config(LocalStore.Config(root=str(tmp_path / "dst")), settings=Settings(chunk_size=4096))
    with pytest.raises(IntegrityError, match="expected 10"):
        store.put(io.BytesIO(data), "grew.bin", size=10)
    assert visible_files(tmp_path / "dst") == []


def test_local_symlink_leaving_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape").symlink_to(outside)
    store = LocalStore.from_config(LocalStore.Config(root=str(root)))
    for call in (lambda: store.put(io.BytesIO(b"x"), "escape/x.txt"), lambda: store.open("escape/x.txt")):
        with pytest.raises(UnsafePathError):
            call()
    assert list(outside.iterdir()) == []
    (outside / "secret").write_text("s")
    assert list(store.list()) == []


def test_local_links(tmp_path: Path, file_server) -> None:
    base = get_store(str(tmp_path / "a"), link_base_url="https://archive.example.org/data/")
    base.put(io.BytesIO(b"x"), "2026/ü b.fits")
    assert base.get_url("2026/ü b.fits") == "https://archive.example.org/data/2026/%C3%BC%20b.fits"
    with pytest.raises(ConfigurationError, match="link"):
        get_store(str(tmp_path / "b")).get_url("x")
    with pytest.raises(ConfigurationError, match="signing_key"):
        get_store(str(tmp_path / "c"), server_url=file_server.url)
    # a directory served by the file server: signed links that work without a token
    served = LocalStore.from_config(
        LocalStore.Config(root=str(file_server.root / "night"), server_url=file_server.url, server_path="night"),
        {"signing_key": file_server.signing_key},
    )
    served.put(io.BytesIO(b"signed content"), HOSTILE)
    link = served.get_url(HOSTILE, expiration=timedelta(minutes=1))
    assert httpx.get(link, timeout=5).content == b"signed content"


def test_local_quick_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_plugins) -> None:
    monkeypatch.chdir(tmp_path)
    for url, expected in [
        ("./archive", tmp_path / "archive"),
        (str(tmp_path / "abs"), tmp_path / "abs"),
        (f"file://{tmp_path}/viafile", tmp_path / "viafile"),
        (f"file://localhost{tmp_path}/viahost", tmp_path / "viahost"),
    ]:
        store = get_store(url)
        assert isinstance(store, LocalStore) and store.root == str(expected) and expected.is_dir()
    store = get_store("local", root=str(tmp_path / "named"))
    assert isinstance(store, LocalStore)
    with pytest.raises(ConfigurationError, match="not a host"):
        get_store("file://otherhost/data")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigurationError, match="not a directory"):
        get_store(str(tmp_path / "afile"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        get_store("local", root=str(tmp_path / "missing"), create_root=False)


# -- webdav only -----------------------------------------------------------------------------


def test_webdav_quick_url_signed_links_and_checksum(file_server, local_plugins) -> None:
    url = file_server.url.replace("http://", "webdav+http://") + "/sub"
    store = get_store(url, credentials={"token": file_server.token, "signing_key": file_server.signing_key})
    assert isinstance(store, WebdavStore)
    data = pattern_bytes(200_000)
    stored = store.put(io.BytesIO(data), HOSTILE, size=len(data))
    assert stored.provider_checksum == "sha256:" + hashlib.sha256(data).hexdigest()
    link = store.get_url(HOSTILE)
    assert "/_signed/sub/" in link
    assert httpx.get(link, timeout=5).content == data
    assert (file_server.root / "sub" / HOSTILE).read_bytes() == data


def test_webdav_plain_server_verifies_by_reread(plain_dav) -> None:
    store = WebdavStore.from_config(
        WebdavStore.Config(url=plain_dav.url, username=plain_dav.username, link_base_url="https://pub.example/x"),
        {"password": plain_dav.password},
    )
    stored = store.put(io.BytesIO(b"plain"), "deep/er/file.txt")
    assert stored.provider_checksum is None
    assert store.get_url("deep/er/file.txt") == "https://pub.example/x/deep/er/file.txt"
    assert (plain_dav.root / "deep" / "er" / "file.txt").read_bytes() == b"plain"


def test_webdav_bad_credentials(file_server, plain_dav) -> None:
    wrong = WebdavStore.from_config(WebdavStore.Config(url=file_server.url), {"token": "x" * 32})
    with pytest.raises(CredentialError):
        wrong.put(io.BytesIO(b"x"), "a.txt")
    result = wrong.test_connection()
    assert not result.ok and "credentials" in result.message and "x" * 32 not in result.message
    wrong_pw = WebdavStore.from_config(
        WebdavStore.Config(url=plain_dav.url, username=plain_dav.username), {"password": "nope-nope"})
    with pytest.raises(CredentialError):
        wrong_pw.info("a.txt")


def test_webdav_config_errors(file_server) -> None:
    with pytest.raises(ConfigurationError, match="http"):
        WebdavStore.from_config(WebdavStore.Config(url="ftp://x"))
    with pytest.raises(ConfigurationError, match="username"):
        WebdavStore.from_config(WebdavStore.Config(url=file_server.url), {"password": "p"})
    with pytest.raises(ConfigurationError, match="not both"):
        WebdavStore.from_config(WebdavStore.Config(url=file_server.url, username="u"), {"password": "p", "token": "t"})
    with pytest.raises(ConfigurationError, match="unknown"):
        WebdavStore.from_config(WebdavStore.Config(url=file_server.url), {"api_key": "k"})
    store = WebdavStore.from_config(WebdavStore.Config(url=file_server.url), {"token": file_server.token})
    with pytest.raises(ConfigurationError, match="link"):
        store.get_url("x")
    assert file_server.token not in repr(store) and file_server.token not in repr(store.fs.client.http.auth)


def test_webdav_unreachable_server_is_transient() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = WebdavStore.from_config(WebdavStore.Config(url=f"http://127.0.0.1:{port}", connect_timeout=2))
    from ocs_transfer.exceptions import RetryError

    with pytest.raises(RetryError):
        store.put(io.BytesIO(b"x"), "a.txt")


def test_webdav_secrets_never_logged(file_server, plain_dav, caplog: pytest.LogCaptureFixture) -> None:
    import base64
    import logging

    caplog.set_level(logging.DEBUG)
    wrong_password = "wrong-password-" + "q" * 10
    store = WebdavStore.from_config(
        WebdavStore.Config(url=file_server.url), {"token": file_server.token, "signing_key": file_server.signing_key}
    )
    store.put(io.BytesIO(b"data"), "a/b.txt")
    list(store.list())
    link = store.get_url("a/b.txt")
    wrong = WebdavStore.from_config(
        WebdavStore.Config(url=plain_dav.url, username=plain_dav.username), {"password": wrong_password}
    )
    with pytest.raises(CredentialError) as caught:
        wrong.put(io.BytesIO(b"x"), "x.txt")
    shown = "\n".join([caplog.text, str(caught.value), repr(caught.value), repr(store), repr(wrong)])
    basic = base64.b64encode(f"{plain_dav.username}:{wrong_password}".encode()).decode()
    for secret in (file_server.token, file_server.signing_key, wrong_password, basic):
        assert secret not in shown
    assert file_server.signing_key not in link


def test_webdav_against_rclone_serve(tmp_path: Path, rclone: str, rclone_env: dict[str, str]) -> None:
    """Another real WebDAV server: ``rclone serve webdav`` with Basic auth."""
    import secrets

    from ocs_transfer.testing import HOSTILE_NAMES
    from ocs_transfer.testing.servers import free_port, wait_for_port

    root = tmp_path / "rclone-root"
    root.mkdir()
    (tmp_path / "rclone.conf").write_text("")
    port, password = free_port(), secrets.token_urlsafe(16)
    proc = subprocess.Popen(
        [rclone, "--config", str(tmp_path / "rclone.conf"), "serve", "webdav", str(root),
         "--addr", f"127.0.0.1:{port}", "--user", "observer", "--pass", password],
        env=rclone_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port)
        store = WebdavStore.from_config(
            WebdavStore.Config(url=f"http://127.0.0.1:{port}", root="dest", username="observer"),
            {"password": password},
        )
        data = pattern_bytes(3 * 1024 * 1024 + 1)
        for name in HOSTILE_NAMES:
            stored = store.put(io.BytesIO(data), name, size=len(data))
            assert stored.sha256 == hashlib.sha256(data).hexdigest()
            assert (root / "dest" / name).read_bytes() == data
        assert {o.path for o in store.list()} == set(HOSTILE_NAMES)
        with store.get_fileobj(HOSTILE_NAMES[0]) as f:
            assert f.read() == data
        assert store.test_connection().ok
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_local_from_ocs_archive_settings(tmp_path: Path, local_plugins) -> None:
    from ocs_transfer.settings import Settings

    settings = Settings.from_env(
        {"FILESTORE_TYPE": "local", "FILESYSTEM_STORAGE_ROOT_DIR": str(tmp_path / "fs"),
         "FILESYSTEM_STORAGE_BASE_URL": "https://data.example.org/files/"}
    )
    store = get_store(settings=settings)
    assert isinstance(store, LocalStore)
    store.put(io.BytesIO(b"x"), "a b/c.fits")
    assert store.get_url("a b/c.fits") == "https://data.example.org/files/a%20b/c.fits"
    assert (tmp_path / "fs" / "a b" / "c.fits").read_bytes() == b"x"
    with pytest.raises(ConfigurationError, match="FILESYSTEM_STORAGE_ROOT_DIR"):
        get_store(settings=Settings.from_env({"FILESTORE_TYPE": "local"}))


def test_workers_creating_the_same_new_root_at_once_all_succeed(tmp_path: Path) -> None:
    """Several engine threads open a destination whose root does not exist yet."""
    import threading

    from ocs_transfer.storage import get_store

    failures: list[BaseException] = []
    for attempt in range(40):
        root = tmp_path / f"r{attempt}" / "nested"

        def open_store(root: Path = root) -> None:
            try:
                get_store(str(root))
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert root.is_dir()
    assert failures == []
