"""What the core does for every provider: error classifiers, keeping a failed
upload's own error, credential and option parsing, literal publishing, parents
made concurrently, the probe, sweeping crashed uploads' temporaries."""

from __future__ import annotations

import ftplib
import io
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import attrs
import pytest
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

from ocs_transfer import exceptions as E
from ocs_transfer import hookimpl
from ocs_transfer.redact import Secret
from ocs_transfer.retry import Decision, Kind, classify, register_classifier, translate
from ocs_transfer.storage.fsspec_store import TEMP_MARKER, FsspecStore
from ocs_transfer.storage.memory import MemoryStore
from ocs_transfer.storage.options import coerce_option
from ocs_transfer.testing import PatternReader, SourceReadError


class PlainStore(FsspecStore):
    """The generic store as a provider gets it (no memory-store overrides)."""

    name: ClassVar[str] = "plain-test"
    credential_fields: ClassVar[tuple[str, ...]] = ("password", "token")

    @attrs.frozen(kw_only=True)
    class Config:
        root: str = "/plain"
        username: str | None = None
        tls: bool = True
        port: int = 21
        timeout: float | None = None

    @classmethod
    def from_config(cls, config: Any, credentials: Any = None, *, settings: Any = None) -> PlainStore:
        return cls(MemoryFileSystem(), config.root, chunk_size=64 * 1024)


@pytest.fixture
def fs() -> MemoryFileSystem:
    fs = MemoryFileSystem()
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]
    return fs


# -- errors -------------------------------------------------------------------------------


def test_a_registered_classifier_decides_for_its_error_family() -> None:
    wrong_password = ftplib.error_perm("530 Login incorrect.")
    assert classify(wrong_password).kind is Kind.RETRY  # unknown to the generic rules
    register_classifier("ftplib.error_perm", lambda e: Decision(Kind.NEVER) if str(e).startswith("5") else None)
    try:
        assert classify(wrong_password).kind is Kind.NEVER
        # by its cause: a StorageError raised from it is final too, and so is its translation
        try:
            raise E.StorageError("login failed") from wrong_password
        except E.StorageError as ours:
            assert classify(ours).kind is Kind.NEVER
        assert classify(translate(wrong_password, "login")).kind is Kind.NEVER
        # subclasses are covered; "no opinion" falls back to the generic rules
        assert classify(ftplib.error_perm("421 try later")).kind is Kind.RETRY
    finally:
        from ocs_transfer import retry

        retry._CLASSIFIERS.pop("ftplib.error_perm", None)


def test_a_registered_classifier_by_class_and_a_broken_one() -> None:
    class SdkError(Exception):
        pass

    class SdkAuthError(SdkError):
        pass

    register_classifier(SdkError, lambda e: Decision(Kind.BACKOFF, retry_after=3.0))
    register_classifier(SdkAuthError, lambda e: 1 / 0)  # type: ignore[arg-type,return-value]
    try:
        assert classify(SdkError()).kind is Kind.BACKOFF
        # the broken, more specific one is ignored, the generic rules decide
        assert classify(SdkAuthError()).kind is Kind.RETRY
    finally:
        from ocs_transfer import retry

        for k in list(retry._CLASSIFIERS):
            if "SdkError" in k or "SdkAuthError" in k:
                del retry._CLASSIFIERS[k]


def test_error_classes_state_their_retry_intent() -> None:
    assert E.StorageError.retry_intent == "cause"
    assert E.FinalStorageError.retry_intent == "never"
    assert E.TransientStorageError.retry_intent == "retry"
    assert E.RateLimitError.retry_intent == "backoff"
    assert E.QuotaExceededError.retry_intent == "never"  # StorageError first in its bases, still never
    assert E.IntegrityError.retry_intent == "retry"
    assert E.AlreadyStoredError.retry_intent == "done"
    assert classify(E.StorageError("no cause")).kind is Kind.NEVER
    assert classify(E.FinalStorageError("x")).kind is Kind.NEVER
    try:
        raise E.StorageError("wrapped") from ConnectionResetError(104, "reset")
    except E.StorageError as exc:
        assert classify(exc).kind is Kind.RETRY


# -- a failed upload keeps its own error ---------------------------------------------------


class DiscardFails(MemoryFileSystem):
    """A server that answers the clean-up of a cancelled upload with an error
    (an FTP server's "550 No such file")."""

    cachable = False

    def _open(self, path: str, mode: str = "rb", **kw: Any) -> Any:
        f = super()._open(path, mode, **kw)
        if "w" in mode:

            def discard() -> None:
                raise ftplib.error_perm("550 No such file or directory")

            f.discard = discard
            f.close = discard
        return f


def test_failed_upload_keeps_the_source_error_when_cleanup_fails(caplog: pytest.LogCaptureFixture) -> None:
    store = PlainStore(DiscardFails(), "/abandon", chunk_size=64 * 1024)
    with caplog.at_level(logging.WARNING), pytest.raises(E.OcsTransferError) as raised:
        store.put(PatternReader(1 << 20, fail_after=100_000), "x.bin")
    assert isinstance(raised.value.__cause__, SourceReadError)  # the real error, not the clean-up's
    assert "550 No such file" in caplog.text


# -- credentials and options ------------------------------------------------------------


def test_parse_credentials() -> None:
    config = PlainStore.Config(username="ann")
    creds = PlainStore.parse_credentials({"password": "hunter22", "token": ""}, config=config)
    assert set(creds) == {"password"} and isinstance(creds["password"], Secret)
    assert "hunter22" not in repr(creds)
    with pytest.raises(E.ConfigurationError, match=r"unknown plain-test credential.*secret_key.*password, token"):
        PlainStore.parse_credentials({"secret_key": "x"})
    with pytest.raises(E.ConfigurationError, match="password needs the username"):
        PlainStore.parse_credentials({"password": "hunter22"}, config=PlainStore.Config())
    with pytest.raises(E.ConfigurationError, match="one of password or token"):
        PlainStore.parse_credentials({"password": "a", "token": "b"}, config=config, one_of=(("password", "token"),))
    with pytest.raises(E.CredentialError, match=r"needs the credential.*token"):
        PlainStore.parse_credentials({}, required=("token",))
    for exc_text in ("hunter22",):
        try:
            PlainStore.parse_credentials({"password": exc_text, "bogus": exc_text})
        except E.ConfigurationError as exc:
            assert exc_text not in str(exc)


def test_options_become_their_fields_types() -> None:
    config = PlainStore.config_from_options({"tls": "False", "port": "2121", "timeout": "2.5", "username": "none"})
    assert (config.tls, config.port, config.timeout, config.username) == (False, 2121, 2.5, "none")
    assert PlainStore.config_from_options({"timeout": ""}).timeout is None
    assert PlainStore.config_from_options({"tls": "yes"}).tls is True
    with pytest.raises(E.ConfigurationError, match="'tls' must be true or false"):
        PlainStore.config_from_options({"tls": "maybe"})
    with pytest.raises(E.ConfigurationError, match="'port' must be a whole number"):
        PlainStore.config_from_options({"port": "twenty"})
    with pytest.raises(E.ConfigurationError, match=r"unknown option.*colour.*it takes"):
        PlainStore.config_from_options({"colour": "red"})
    assert coerce_option("x", bool | None, "NULL") is None


def test_get_store_coerces_command_line_options() -> None:
    from ocs_transfer.storage import get_store

    store = get_store("memory", root="typed", link_base_url="")
    assert store.link_base_url is None  # "" for an optional field means none


# -- publishing, parents, probe, sweep ----------------------------------------------------


@pytest.mark.parametrize("name", ["x[ab].bin", "star*.bin", "what?.bin"])
def test_publish_takes_names_literally(fs: MemoryFileSystem, name: str) -> None:
    store = PlainStore(fs, "/literal", chunk_size=64 * 1024)
    store.put(io.BytesIO(b"decoy"), "xa.bin")  # what "x[ab].bin" matches as a pattern
    store.put(io.BytesIO(b"decoy"), "star-other.bin")
    store.put(io.BytesIO(b"decoy"), "whatX.bin")
    obj = store.put(io.BytesIO(b"the real one"), name)
    assert obj.path == name
    with store.open(name) as f:
        assert f.read() == b"the real one"
    with store.open("xa.bin") as f:
        assert f.read() == b"decoy"


class RacingMkdirFS(MemoryFileSystem):
    """Another writer creates the folder between our look and our create."""

    cachable = False

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        super().makedirs(path, exist_ok=True)
        raise FileExistsError(17, "File exists", path)


def test_parent_created_by_someone_else_meanwhile_is_fine() -> None:
    store = PlainStore(RacingMkdirFS(), "/race", chunk_size=64 * 1024)
    assert store.put(io.BytesIO(b"data"), "deep/er/file.bin").size == 4


def test_parent_creation_failing_for_real_still_fails() -> None:
    class NoMkdir(MemoryFileSystem):
        cachable = False

        def makedirs(self, path: str, exist_ok: bool = False) -> None:
            raise PermissionError(13, "Permission denied", path)

    with pytest.raises(E.PermissionDeniedError):
        PlainStore(NoMkdir(), "/denied", chunk_size=64 * 1024).put(io.BytesIO(b"d"), "sub/file.bin")


def test_probe_leaves_no_folder(fs: MemoryFileSystem) -> None:
    store = PlainStore(fs, "/probe", chunk_size=64 * 1024)
    fs.mkdir("/probe")
    result = store.test_connection()
    assert result.ok, result.message
    assert fs.ls("/probe", detail=False) == []


def test_sweep_removes_old_temporaries_only(fs: MemoryFileSystem) -> None:
    store = PlainStore(fs, "/sweep", chunk_size=64 * 1024)
    store.put(io.BytesIO(b"kept"), "a/real.bin")
    now = datetime.now(UTC)
    old = now - timedelta(hours=30)
    leftovers = {
        f"/sweep/a/.real.bin.{TEMP_MARKER}-0123456789ab": old,
        "/sweep/b/.x.fits.3f2a.ocs-server-partial": old,
        "/sweep/.ocs-transfer-probe-ffff.bin": old,
        f"/sweep/a/.young.bin.{TEMP_MARKER}-abcdefabcdef": now,  # maybe still uploading
    }
    for path, when in leftovers.items():
        fs.pipe(path, b"partial")
        fs.store[path].created = when  # what the memory filesystem's info reports
    swept = store.sweep(timedelta(hours=24), now=now)
    assert sorted(swept) == sorted(
        [f"a/.real.bin.{TEMP_MARKER}-0123456789ab", "b/.x.fits.3f2a.ocs-server-partial", ".ocs-transfer-probe-ffff.bin"]
    )
    remaining = sorted(fs.find("/sweep"))
    assert remaining == ["/sweep/a/.young.bin.ocs-transfer-partial-abcdefabcdef", "/sweep/a/real.bin"]
    assert store.sweep(timedelta(0), now=now + timedelta(seconds=1)) == [
        "a/.young.bin.ocs-transfer-partial-abcdefabcdef"
    ]


def test_upload_reports_the_version_it_wrote(fs: MemoryFileSystem) -> None:
    class RevStore(PlainStore):
        def _upload(self, reader: Any, path: str, **kw: Any) -> dict[str, str]:
            super()._upload(reader, path, **kw)
            self.seen_options = kw["options"]
            return {"version_id": "rev-0042"}

    store = RevStore(fs, "/rev", chunk_size=64 * 1024)
    obj = store.put(io.BytesIO(b"x"), "f.bin", options={"storage_class": "COLD"})
    assert obj.version_id == "rev-0042"
    assert store.seen_options == {"storage_class": "COLD"}


def test_memory_store_is_unchanged_by_the_core(fs: MemoryFileSystem) -> None:
    # MemoryStore keeps its own publish (dict rename); listing hides temporaries.
    store = MemoryStore(fs, "/mem", chunk_size=64 * 1024)
    MemoryFile(fs, f"/mem/.a.{TEMP_MARKER}-000000000000", b"x").commit()
    assert list(store.list()) == []
    assert threading.active_count() >= 1


# -- per-thread clients ---------------------------------------------------------------------


class Session:
    """A client that is not thread-safe and whose server may drop it."""

    made = 0

    def __init__(self) -> None:
        Session.made += 1
        self.number = Session.made
        self.dropped = False
        self.closed = False
        self.owner = threading.get_ident()

    def noop(self) -> None:
        if self.dropped:
            raise EOFError("the server closed the session")


def test_per_thread_client_one_per_thread_checked_after_idling_and_replaced() -> None:
    from ocs_transfer.storage.clients import PerThreadClient

    now = [0.0]
    clients: PerThreadClient[Session] = PerThreadClient(
        Session, check=Session.noop, close=lambda s: setattr(s, "closed", True), idle_check=30, clock=lambda: now[0]
    )
    first = clients.get()
    assert clients.get() is first
    others: list[Session] = []
    workers = [threading.Thread(target=lambda: others.append(clients.get())) for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert len({id(s) for s in [first, *others]}) == 5 and all(s.owner != first.owner for s in others)
    first.dropped = True
    now[0] = 10.0
    assert clients.get() is first  # not idle long enough to be checked
    now[0] = 45.0
    second = clients.get()
    assert second is not first and first.closed
    with pytest.raises(ConnectionResetError), clients.using():
        raise ConnectionResetError(104, "reset")
    assert second.closed and clients.get() is not second
    clients.close()
    assert all(s.closed for s in others)


# -- endpoint options ----------------------------------------------------------------------


def test_allow_list_checks_the_options_a_provider_declares() -> None:
    from ocs_transfer import plugins
    from ocs_transfer.settings import Settings
    from ocs_transfer.transfer.destinations import check_endpoints

    allow = Settings(endpoint_allowlist=("files.example.org",))

    class FtpLike(PlainStore):
        name: ClassVar[str] = "ftp-like-test"
        endpoint_options: ClassVar[tuple[str, ...]] = ("server",)

    class Plugin:
        @hookimpl
        def ocs_transfer_register_providers(self, register: Any) -> None:
            register(FtpLike)

    with plugins.temporary_plugin(Plugin(), "ftp-like-test"):
        with pytest.raises(E.ConfigurationError, match="ENDPOINT_ALLOWLIST"):
            check_endpoints({"server": "ftp://169.254.169.254"}, allow, "ftp-like-test")
        check_endpoints({"server": "ftp://files.example.org:21"}, allow, "ftp-like-test")
    # S3 declares endpoint_url only; a provider that declares nothing gets the usual names, "host" among them
    with pytest.raises(E.ConfigurationError, match="ENDPOINT_ALLOWLIST"):
        check_endpoints({"endpoint_url": "http://127.0.0.1:9000"}, allow, "s3")
    with pytest.raises(E.ConfigurationError, match="ENDPOINT_ALLOWLIST"):
        check_endpoints({"host": "10.0.0.1"}, allow)


def test_options_entered_at_dest_add_are_typed() -> None:
    from ocs_transfer.transfer.destinations import check_options

    assert check_options(PlainStore, {"tls": "False", "port": "2121", "root": "/x"}) == {
        "tls": False,
        "port": 2121,
        "root": "/x",
    }
    with pytest.raises(E.ConfigurationError, match="'tls' must be true or false"):
        check_options(PlainStore, {"tls": "maybe"})
