"""The ingest queue against the machine's real RabbitMQ and real stores
(moto's S3 server, through a fault proxy for the outage): what becomes of each
message (acknowledged, retried later, dead-lettered with its reason) and that
nothing is acknowledged that the store does not hold."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocs_transfer import plugins
from ocs_transfer.exceptions import DoNotRetryError, NonFatalDoNotRetryError, RetryError
from ocs_transfer.hookspecs import hookimpl
from ocs_transfer.ingest import Ingested, Ingester, consume, enqueue
from ocs_transfer.storage import get_store
from ocs_transfer.storage.s3 import S3Store
from ocs_transfer.testing.servers import FaultProxy, S3Endpoint, moto_s3

from .conftest import Rabbit, md5_of

pytestmark = pytest.mark.services
HERE = Path(__file__).resolve().parent
CLI = Path(sys.executable).parent / "ocs-transfer"


@pytest.fixture(scope="module")
def moto() -> Iterator[S3Endpoint]:
    with moto_s3() as ep:
        yield ep


@pytest.fixture
def bucket(moto: S3Endpoint) -> str:
    name = f"t-{uuid.uuid4().hex[:16]}"
    moto.boto3_client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


def held(ep: S3Endpoint, bucket: str) -> dict[str, str]:
    """What the bucket holds: key -> md5 of the bytes, read back from the server."""
    import hashlib

    client: Any = ep.boto3_client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {
        k: hashlib.md5(client.get_object(Bucket=bucket, Key=k)["Body"].read(), usedforsecurity=False).hexdigest()
        for k in keys
    }


def archive_path(path: Path) -> str:
    """Where the ocs_archive layout puts a file (read by the library, not by the test)."""
    from ocs_transfer.input import open_datafile

    with open_datafile(path) as data_file:
        return str(data_file.get_filestore_path())


# -- end to end, through the commands ---------------------------------------------------------


def test_cli_good_missing_bad_repeated_and_invalid_messages(
    rabbit: Rabbit, files: dict[str, Path], moto: S3Endpoint, bucket: str, tmp_path: Path
) -> None:
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OCS_TRANSFER_QUEUE_URL": rabbit.url,
        "FILESTORE_TYPE": "s3", "BUCKET": bucket, "S3_ENDPOINT_URL": moto.url, "S3_ADDRESSING_STYLE": "path",
        "AWS_ACCESS_KEY_ID": moto.key, "AWS_SECRET_ACCESS_KEY": moto.secret, "AWS_DEFAULT_REGION": moto.region,
        "OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
    }  # fmt: skip
    missing = files["good0"].parent / "coj1m011-kb05-20150219-0127-e91.fits.fz"
    missing.write_bytes(files["good0"].read_bytes())
    queued = [files["good0"], files["good1"], files["bad"], missing, files["good0"]]  # good0 twice: a repeat
    run = subprocess.run(
        [CLI, "enqueue", *map(str, queued), "--queue-name", rabbit.name], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"queued\t{p}" for p in queued]
    missing.unlink()  # gone before the ingester reads it
    rabbit.publish_raw(json.dumps({"file": str(files["good1"])}).encode())  # a publisher's typo

    ingest = subprocess.run(
        [CLI, "-v", "ingest", "--queue-name", rabbit.name, "--until-idle"], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert ingest.returncode == 1, ingest.stderr  # some messages could not be ingested
    assert "2 ingested, 1 already stored, 0 to retry, 3 to" in ingest.stderr
    assert "already stored; acknowledged" in ingest.stderr

    # The store holds exactly the good files, byte for byte, at their archive paths.
    expected = {archive_path(files[k]): md5_of(files[k]) for k in ("good0", "good1")}
    assert held(moto, bucket) == expected
    # Nothing is waiting; the three that cannot be ingested are in NAME.dead, each with its reason.
    assert rabbit.counts() == {"main": 0, "retry": 0, "dead": 3}
    dead = {json.loads(body).get("filepath", "typo"): headers for body, headers in rabbit.take_dead()}
    assert set(dead) == {str(files["bad"]), str(missing), "typo"}
    assert "truncated" in dead[str(files["bad"])]["x-ocs-reason"]
    assert dead[str(files["bad"])]["x-ocs-error"] == "FileSpecificationError"
    assert "no such file" in dead[str(missing)]["x-ocs-reason"]
    assert "unknown key(s) 'file'" in dead["typo"]["x-ocs-reason"]
    assert all(h["x-ocs-queue"] == rabbit.name for h in dead.values())
    assert ":guest@" not in ingest.stderr + run.stderr  # the queue password is never printed


def test_enqueue_refuses_missing_files_and_queues_nothing(rabbit: Rabbit, files: dict[str, Path]) -> None:
    from ocs_transfer.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"no-such\.fits: no such file; nothing was queued"):
        enqueue(rabbit.url, rabbit.name, [files["good0"], files["good0"].parent / "no-such.fits"])
    enqueue(rabbit.url, rabbit.name, [files["good0"]])  # the queue exists now; the refused call added nothing
    assert rabbit.counts()["main"] == 1


def test_wrong_password_is_refused_without_showing_it(rabbit: Rabbit, files: dict[str, Path], tmp_path: Path) -> None:
    password = "n0t-the-Passw0rd"
    url = rabbit.url.replace("guest:guest@", f"guest:{password}@")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OCS_TRANSFER_QUEUE_URL": url}
    run = subprocess.run(
        [CLI, "-vv", "enqueue", str(files["good0"]), "--queue-name", rabbit.name], env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "refused the user and password" in run.stderr
    assert "amqp://guest:***@" in run.stderr
    assert password not in run.stdout + run.stderr


# -- a store outage in the middle ---------------------------------------------------------------


def test_store_outage_retries_later_and_acknowledges_only_what_is_stored(
    rabbit: Rabbit, files: dict[str, Path], moto: S3Endpoint, bucket: str
) -> None:
    host, port = moto.url.removeprefix("http://").split(":")
    with FaultProxy((host, int(port))) as proxy:
        config = S3Store.Config(bucket=bucket, endpoint_url=proxy.url, addressing_style="path", max_attempts=1,
                                connect_timeout=2.0, read_timeout=3.0)  # fmt: skip
        store = S3Store.from_config(config, {"key": moto.key, "secret": moto.secret})
        ingester = Ingester(store)
        delays = (1, 2)
        rabbit.topology(delays)
        again = files["good0"].parent / "coj1m011-kb05-20150219-0125-e91.fits.fz"
        again.write_bytes(files["good0"].read_bytes())
        good = [files["good0"], files["good1"], again]
        enqueue(rabbit.url, rabbit.name, good)

        first = consume(rabbit.url, rabbit.name, ingester, retry_delays=delays, max_messages=1)
        assert (first.stored, first.retried) == (1, 0)
        assert held(moto, bucket) == {archive_path(good[0]): md5_of(good[0])}

        proxy.blackhole()  # the store stops answering
        during = consume(rabbit.url, rabbit.name, ingester, retry_delays=delays, max_messages=2)
        assert (during.received, during.stored, during.retried, during.dead) == (2, 0, 2, 0)
        # Not acknowledged as done: both wait for their next attempt (in a retry queue, or back in the queue).
        counts = rabbit.counts()
        assert counts["main"] + counts["retry"] == 2 and counts["dead"] == 0

        proxy.heal()  # the store is back
        after = consume(rabbit.url, rabbit.name, ingester, retry_delays=delays, until_idle=True, idle_seconds=0.5)
        assert (after.stored, after.dead) == (2, 0)
    assert held(moto, bucket) == {archive_path(p): md5_of(p) for p in good}
    assert rabbit.counts() == {"main": 0, "retry": 0, "dead": 0}


# -- the hook, and what its errors do --------------------------------------------------------------


class Archive:
    """A site's archive-record step: records what it is given; fails as told."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.seen: list[Ingested] = []

    @hookimpl
    def ocs_transfer_file_ingested(self, ingested: Ingested) -> None:
        self.seen.append(ingested)
        if self.failures:
            raise self.failures.pop(0)


def test_hook_gets_the_record_and_a_retry_comes_back(rabbit: Rabbit, files: dict[str, Path]) -> None:
    store = get_store("memory", root=f"hook-{uuid.uuid4().hex[:8]}")
    archive = Archive(RetryError("the science archive answered 502"))
    enqueue(rabbit.url, rabbit.name, [files["good0"]], metadata={"OBJECT": "M31-test"})
    with plugins.temporary_plugin(archive, name="archive"):
        stats = consume(rabbit.url, rabbit.name, Ingester(store), retry_delays=(1,), until_idle=True,
                        idle_seconds=0.5)  # fmt: skip
    # The first attempt stored the file, then the hook failed; the second finds it stored and completes.
    assert (stats.received, stats.retried, stats.stored, stats.already, stats.dead) == (2, 1, 0, 1, 0)
    first, second = archive.seen
    assert not first.already_stored and second.already_stored  # the repeat is visible to the hook
    assert first.record["target_name"] == "M31-test" and first.headers["OBJECT"] == "M31-test"
    assert first.version_set == second.version_set
    assert first.version_set is not None and first.version_set["md5"] == md5_of(files["good0"])
    assert first.path is not None and store.info(first.path).size == files["good0"].stat().st_size
    assert rabbit.counts() == {"main": 0, "retry": 0, "dead": 0}


@pytest.mark.parametrize(
    ("error", "where"),
    [(DoNotRetryError("the archive refused the record: bad PROPID"), "dead"),
     (NonFatalDoNotRetryError("the archive already has this frame"), "ack")],
)  # fmt: skip
def test_hook_errors_follow_their_retry_class(
    rabbit: Rabbit, files: dict[str, Path], error: BaseException, where: str
) -> None:
    store = get_store("memory", root=f"hook-{uuid.uuid4().hex[:8]}")
    enqueue(rabbit.url, rabbit.name, [files["good0"]])
    with plugins.temporary_plugin(Archive(error), name="archive"):
        stats = consume(rabbit.url, rabbit.name, Ingester(store), until_idle=True, idle_seconds=0.5)
    assert stats.received == 1 and stats.retried == 0
    dead = rabbit.take_dead()
    if where == "dead":
        assert stats.dead == 1 and [h["x-ocs-reason"] for _, h in dead] == [f"DoNotRetryError: {error}"]
    else:
        assert stats.already == 1 and dead == []
    assert rabbit.counts() == {"main": 0, "retry": 0, "dead": 0}


def test_retries_are_bounded(rabbit: Rabbit, files: dict[str, Path]) -> None:
    store = get_store("memory", root=f"hook-{uuid.uuid4().hex[:8]}")
    enqueue(rabbit.url, rabbit.name, [files["good0"]])
    archive = Archive(*(RetryError(f"archive down ({i})") for i in range(5)))
    with plugins.temporary_plugin(archive, name="archive"):
        stats = consume(rabbit.url, rabbit.name, Ingester(store), retry_delays=(1,), max_attempts=3, until_idle=True,
                        idle_seconds=0.5)  # fmt: skip
    assert (stats.received, stats.retried, stats.dead) == (3, 2, 1)
    [(_, headers)] = rabbit.take_dead()
    assert headers["x-ocs-reason"] == "gave up after 3 attempts: RetryError: archive down (2)"
    assert headers["x-ocs-attempt"] == 3


def test_reasons_never_carry_the_queue_password(rabbit: Rabbit, files: dict[str, Path], caplog: Any) -> None:
    store = get_store("memory", root=f"hook-{uuid.uuid4().hex[:8]}")
    enqueue(rabbit.url, rabbit.name, [files["good0"]])
    leaky = DoNotRetryError(f"could not tell {rabbit.url} about it (password=guest)")
    with plugins.temporary_plugin(Archive(leaky), name="archive"), caplog.at_level("INFO", "ocs_transfer.ingest"):
        consume(rabbit.url, rabbit.name, Ingester(store), until_idle=True, idle_seconds=0.5)
    [(_, headers)] = rabbit.take_dead()
    assert "guest:guest" not in headers["x-ocs-reason"] and "password=guest" not in headers["x-ocs-reason"]
    assert ":***@" in headers["x-ocs-reason"]  # (the test broker's user name is its password, so it goes too)
    assert "guest:guest" not in caplog.text and "could not tell" in caplog.text


# -- a message that keeps crashing the consumer -----------------------------------------------------


def test_a_message_that_keeps_crashing_the_consumer_is_dead_lettered(rabbit: Rabbit, files: dict[str, Path]) -> None:
    limit = 2
    enqueue(rabbit.url, rabbit.name, [files["good0"]], topology=rabbit.topology(limit=limit))
    crashes = 0
    for _ in range(limit + 3):  # bounded: the broker must give up on the message well before this
        run = subprocess.run(
            [sys.executable, str(HERE / "crashing_consumer.py"), rabbit.url, rabbit.name, "crash", str(limit)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if run.returncode != 3:
            assert run.returncode == 0, run.stderr
            break
        crashes += 1
    assert crashes == limit + 1  # the first delivery and `limit` redeliveries, then the broker stops
    assert run.stdout.split() == ["0"]  # the last consumer found nothing to do
    [(body, headers)] = rabbit.take_dead()
    assert json.loads(body) == {"filepath": str(files["good0"])}
    assert headers["x-first-death-reason"] == "delivery_limit"
    assert rabbit.counts() == {"main": 0, "retry": 0, "dead": 0}


# -- the broker connection drops in the middle -------------------------------------------------------


def test_a_dropped_broker_connection_is_opened_again_and_nothing_is_lost(
    rabbit: Rabbit, files: dict[str, Path]
) -> None:
    folder = files["good0"].parent
    queued = [folder / f"coj1m011-kb05-20150219-{n:04d}-e91.fits.fz" for n in range(200, 206)]
    for path in queued:
        path.write_bytes(files["good0"].read_bytes())
    enqueue(rabbit.url, rabbit.name, queued)
    host, port = rabbit.url.split("@")[1].split("/")[0].split(":")
    store = get_store("memory", root=f"drop-{uuid.uuid4().hex[:8]}")
    with FaultProxy((host, int(port))) as proxy:

        class DropOnce:
            dropped = False

            @hookimpl
            def ocs_transfer_file_ingested(self, ingested: Ingested) -> None:
                if not self.dropped and ingested.filepath == str(queued[2]):
                    self.dropped = True
                    proxy.drop_connections()  # while this message is stored but not yet acknowledged

        through = rabbit.url.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.port}/")
        with plugins.temporary_plugin(DropOnce(), name="drop"):
            stats = consume(through, rabbit.name, Ingester(store), until_idle=True, idle_seconds=0.5)
    assert stats.reconnects == 1 and stats.dead == 0
    # The message in hand was never acknowledged (the hook dropped the connection first): it came back, as a repeat.
    # (Its acknowledgement may have been written to the dead socket, then it counts as stored and not returned.)
    assert stats.received == len(queued) + 1 and stats.already >= 1
    assert stats.received == stats.stored + stats.already + stats.returned
    for path in queued:
        assert store.info(archive_path(path)).size == path.stat().st_size
    assert rabbit.counts() == {"main": 0, "retry": 0, "dead": 0}


def test_several_files_at_once(rabbit: Rabbit, files: dict[str, Path]) -> None:
    folder = files["good0"].parent
    queued = [folder / f"cpt1m010-kb70-20151219-{n:04d}-e10.fits.fz" for n in range(100, 109)]
    for path in queued:
        path.write_bytes(files["good1"].read_bytes())
    enqueue(rabbit.url, rabbit.name, [*queued, files["bad"]])
    store = get_store("memory", root=f"many-{uuid.uuid4().hex[:8]}")
    stats = consume(rabbit.url, rabbit.name, Ingester(store), concurrency=3, until_idle=True, idle_seconds=0.5)
    assert (stats.received, stats.stored, stats.dead) == (len(queued) + 1, len(queued), 1)
    for path in queued:
        assert store.info(archive_path(path)).size == path.stat().st_size
    [(body, _)] = rabbit.take_dead()
    assert json.loads(body)["filepath"] == str(files["bad"])
    assert rabbit.counts() == {"main": 0, "retry": 0, "dead": 0}


def test_sigterm_finishes_the_files_in_hand_and_loses_none(
    rabbit: Rabbit, files: dict[str, Path], tmp_path: Path
) -> None:
    import os
    import signal
    import time

    folder = files["good0"].parent
    queued = [folder / f"coj1m011-kb05-20150219-{n:04d}-e91.fits.fz" for n in range(400, 420)]
    for path in queued:
        path.write_bytes(files["good0"].read_bytes())
    enqueue(rabbit.url, rabbit.name, queued)
    root = tmp_path / "archive"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OCS_TRANSFER_QUEUE_URL": rabbit.url,
           "FILESTORE_TYPE": "local", "FILESYSTEM_STORAGE_ROOT_DIR": str(root)}  # fmt: skip
    proc = subprocess.Popen(
        [CLI, "ingest", "--queue-name", rabbit.name, "--concurrency", "2"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while len([p for p in root.rglob("*.fits.fz") if p.is_file()]) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "the ingester did not start storing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    stored = {p.name for p in root.rglob("*.fits.fz") if p.is_file()}
    counts = rabbit.counts()
    # Each message is either stored (and acknowledged) or still waiting: none lost, none half done.
    assert counts["main"] + len(stored) == len(queued) and counts["dead"] == counts["retry"] == 0
    assert stored <= {p.name for p in queued}
    assert f"{len(stored)} ingested" in stderr
