"""The Celery executor with real worker processes (not eager mode), through
the command lines the docs show: `ocs-transfer schedule` (publishes),
`ocs-transfer worker --celery`, `ocs-transfer beat`, on a PostgreSQL ledger,
uploading to an S3 server (moto) whose bucket keeps versions, so every upload
is counted at the store. Each test ends with the nothing-lost check.

- 500 transfers across 4 worker processes, every task published twice: each
  object uploaded exactly once;
- kill -9 of the worker process mid-upload;
- a broker restart (`rabbitmqctl stop_app` / `start_app`), with files
  scheduled while the broker is down;
- PostgreSQL connections dropped (`pg_terminate_backend`) while workers run;
- Redis as the broker.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from ocs_transfer.settings import Settings
from ocs_transfer.storage.s3 import S3Store
from ocs_transfer.testing.servers import FaultProxy, S3Endpoint, moto_s3
from ocs_transfer.testing.services import require_service, services_required
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine, Transfer
from ocs_transfer.transfer.ledger import Ledger

from .conftest import assert_nothing_lost, data_for, postgres_schema

pytest.importorskip("celery", reason="the [celery] extra is not installed")

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(240)]

CLI = [sys.executable, "-c", "from ocs_transfer.cli import run; run()"]


@pytest.fixture(scope="module")
def moto() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


class CeleryRig:
    """A PostgreSQL ledger, a versioned bucket as the destination, a source
    folder, and the worker and beat processes started for one test."""

    def __init__(self, tmp: Path, ledger_url: str, broker: str, moto: S3Endpoint, endpoint_url: str) -> None:
        self.tmp, self.moto = tmp, moto
        self.app_name = f"ocs_celery_{uuid.uuid4().hex[:8]}"
        self.url = f"{ledger_url}&application_name={self.app_name}"
        self.queue = f"ocs_test_{uuid.uuid4().hex[:10]}"
        self.keys = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OCS_TRANSFER_"))},
            "OCS_TRANSFER_LEDGER_URL": self.url, "OCS_TRANSFER_KEYS": self.keys, "OCS_TRANSFER_ACTIVE_KEY": "k1",
            "OCS_TRANSFER_EXECUTOR": "celery", "OCS_TRANSFER_BROKER_URL": broker,
            "OCS_TRANSFER_CELERY_QUEUE": self.queue, "OCS_TRANSFER_HEARTBEAT_INTERVAL": "1",
            "OCS_TRANSFER_STALE_AFTER": "6", "OCS_TRANSFER_RETRY_DELAYS": "1,1,1,1,1",
            "OCS_TRANSFER_CHUNK_SIZE": "65536",
        }  # fmt: skip
        self.settings = Settings.from_env(self.env)
        self.src = tmp / "src"
        self.src.mkdir()
        self.bucket = f"celery-{uuid.uuid4().hex[:12]}"
        client = self.client()
        client.create_bucket(Bucket=self.bucket)
        client.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        self.cli("dest", "add", "cloud", "--provider", "s3", "--scope", "organization",
                 "--option", f"bucket={self.bucket}", "--option", f"endpoint_url={endpoint_url}",
                 "--option", "addressing_style=path", "--option", "region=us-east-1",
                 "--option", "max_attempts=2", "--option", "read_timeout=10",
                 "--credentials-file", "-", stdin=f'{{"key": "{moto.key}", "secret": "{moto.secret}"}}')  # fmt: skip
        self.ledger = Ledger(f"{ledger_url}&application_name=observer")  # the test's own: never dropped
        self.engine = Engine(self.ledger, Destinations(self.ledger, KeyRing.parse(self.keys, "k1")))
        self.files: dict[str, bytes] = {}
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def client(self) -> Any:
        return self.moto.boto3_client()

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*CLI, *args], env=self.env, input=stdin, capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def add_files(self, count: int, size: int, prefix: str = "f") -> list[str]:
        names = [f"{prefix}{len(self.files) + i:04d}.fits" for i in range(count)]
        for name in names:
            data = data_for(name, size)
            (self.src / name).write_bytes(data)
            self.files[name] = data
        return names

    def schedule(self, names: list[str]) -> subprocess.CompletedProcess[str]:
        return self.cli("schedule", *names, "--source", str(self.src), "--to", "cloud")

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"proc{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([*CLI, *args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
        self.procs.append((proc, log))
        return proc

    def start_workers(self, nodes: int = 2, processes: int = 2) -> None:
        for _ in range(nodes):
            self.start("worker", "--celery", "--threads", str(processes))
        self.start("beat")

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for _, log in self.procs)

    def wait(self, done: Callable[[list[Transfer]], bool], what: str, timeout: float = 150) -> list[Transfer]:
        deadline = time.monotonic() + timeout
        while True:
            transfers = self.engine.transfers()
            if done(transfers):
                return transfers
            for proc, _ in self.procs:
                assert proc.poll() is None, f"a worker or beat process exited:\n{self.logs()}"
            if time.monotonic() > deadline:
                states = sorted({(t.state, t.last_error[:80]) for t in transfers})
                pytest.fail(f"{what} did not happen in {timeout:.0f} s: {states}\n{self.logs()}")
            time.sleep(0.3)

    def wait_all_final(self, timeout: float = 150) -> list[Transfer]:
        return self.wait(lambda ts: len(ts) == len(self.files) and all(t.final for t in ts),
                         "every transfer reaching a final state", timeout)  # fmt: skip

    def stop(self) -> None:
        for proc, _ in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.procs.clear()

    def versions(self) -> dict[str, int]:
        """Object versions per key in the bucket: one upload makes one."""
        counts: dict[str, int] = {}
        for page in self.client().get_paginator("list_object_versions").paginate(Bucket=self.bucket):
            for version in page.get("Versions", []):
                counts[version["Key"]] = counts.get(version["Key"], 0) + 1
        return counts

    def check_nothing_lost(self) -> list[Transfer]:
        """Every transfer completed, every object at the store uploaded exactly
        once, and the destination holds exactly the sources' bytes."""
        transfers = self.engine.transfers()
        assert sorted(t.source_path for t in transfers) == sorted(self.files)
        assert {t.state for t in transfers} == {"completed"}, [(t.id, t.state, t.last_error) for t in transfers]
        assert self.versions() == {name: 1 for name in self.files}
        store = S3Store.from_config(
            S3Store.Config(bucket=self.bucket, endpoint_url=self.moto.url, addressing_style="path",
                           region="us-east-1"),
            {"key": self.moto.key, "secret": self.moto.secret},
        )  # fmt: skip
        assert_nothing_lost(self.engine, {"cloud": self.files}, {"cloud": store})
        for name, data in self.files.items():  # the sources were not asked to go, and are all there
            assert (self.src / name).read_bytes() == data
        return transfers

    def close(self) -> None:
        self.stop()
        with contextlib.suppress(Exception):
            from ocs_transfer.transfer.celery import make_app

            with make_app(self.settings).connection_for_write() as conn:
                conn.default_channel.queue_delete(self.queue)
        self.ledger.close()


@contextlib.contextmanager
def celery_rig(tmp_path: Path, moto: S3Endpoint, broker: str, endpoint_url: str | None = None) -> Iterator[CeleryRig]:
    with postgres_schema() as url:
        rig = CeleryRig(tmp_path, url, broker, moto, endpoint_url or moto.url)
        try:
            yield rig
        finally:
            rig.close()


def rabbitmq_url() -> str:
    host, port = require_service("rabbitmq")
    return f"amqp://guest:guest@{host}:{port}//"


def test_500_transfers_four_processes_each_uploaded_once(tmp_path: Path, moto: S3Endpoint) -> None:
    with celery_rig(tmp_path, moto, rabbitmq_url()) as rig:
        names = rig.add_files(500, 1024)
        out = rig.schedule(names).stdout
        assert len(out.splitlines()) == 500
        from ocs_transfer.transfer.celery import make_app, publish

        # every task delivered twice: the second claim finds the transfer taken or done
        assert publish(rig.engine, [t.id for t in rig.engine.transfers()], make_app(rig.settings)) == 500
        rig.start_workers(nodes=2, processes=2)
        transfers = rig.wait_all_final()
        rig.stop()
        rig.check_nothing_lost()
        assert {t.attempts for t in transfers} == {1}
        pids = {t.worker.split(":")[1] for t in transfers}
        assert len(pids) >= 2, f"the transfers ran in {pids} only"


def test_kill9_mid_upload(tmp_path: Path, moto: S3Endpoint) -> None:
    rabbit = rabbitmq_url()
    with FaultProxy(("127.0.0.1", int(moto.url.rsplit(":", 1)[1]))) as proxy:
        proxy.latency(0.25)  # each 256 KiB forwarded waits: uploads of 2 MB take seconds
        with celery_rig(tmp_path, moto, rabbit, endpoint_url=proxy.url) as rig:
            rig.schedule(rig.add_files(4, 2 * 1024 * 1024))
            rig.start_workers(nodes=1, processes=2)
            running = rig.wait(lambda ts: any(t.state == "in_progress" and t.bytes_done > 0 for t in ts),
                               "an upload under way")  # fmt: skip
            victim = next(t for t in running if t.state == "in_progress" and t.bytes_done > 0)
            _host, pid, _ = victim.worker.split(":", 2)
            assert pid.isdigit()
            os.kill(int(pid), signal.SIGKILL)  # the worker process running the upload
            rig.wait_all_final()
            proxy.latency(0)
            rig.stop()
            transfers = rig.check_nothing_lost()
            again = next(t for t in transfers if t.id == victim.id)
            assert again.attempts == 2 and again.worker != victim.worker


def test_broker_restart(tmp_path: Path, moto: S3Endpoint) -> None:
    rabbit = rabbitmq_url()
    ctl = shutil.which("rabbitmqctl")
    if ctl is None or subprocess.run([ctl, "status"], capture_output=True, timeout=60).returncode != 0:
        reason = "rabbitmqctl is not available here (or cannot reach the node), so the broker cannot be restarted"
        if services_required():
            pytest.fail(reason)
        pytest.skip(reason)
    with FaultProxy(("127.0.0.1", int(moto.url.rsplit(":", 1)[1]))) as proxy:
        proxy.latency(0.02)
        with celery_rig(tmp_path, moto, rabbit, endpoint_url=proxy.url) as rig:
            rig.schedule(rig.add_files(80, 64 * 1024))
            rig.start_workers(nodes=1, processes=2)
            rig.wait(lambda ts: sum(t.state == "completed" for t in ts) >= 5, "the first transfers completing")
            subprocess.run([ctl, "stop_app"], check=True, capture_output=True, timeout=60)
            try:
                # scheduled while the broker is down: the ledger has them, the publish fails
                late = rig.schedule(rig.add_files(20, 64 * 1024, prefix="late"))
                assert "broker could not be reached" in late.stderr
                time.sleep(2)
            finally:
                subprocess.run([ctl, "start_app"], check=True, capture_output=True, timeout=120)
            proxy.latency(0)
            rig.wait_all_final()
            rig.stop()
            rig.check_nothing_lost()


def test_postgres_connection_drop(tmp_path: Path, moto: S3Endpoint) -> None:
    with celery_rig(tmp_path, moto, rabbitmq_url()) as rig:
        rig.schedule(rig.add_files(120, 4096))
        rig.start_workers(nodes=1, processes=2)
        admin = sqlalchemy.create_engine(rig.url.split("?")[0])
        try:
            dropped = 0
            for _ in range(3):
                rig.wait(lambda ts: sum(t.final for t in ts) >= 20 * (dropped + 1) or all(t.final for t in ts),
                         "progress between connection drops")  # fmt: skip
                with admin.begin() as conn:
                    dropped += conn.exec_driver_sql(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                        (rig.app_name,),
                    ).scalar_one()
            assert dropped > 0
        finally:
            admin.dispose()
        rig.wait_all_final()
        rig.stop()
        rig.check_nothing_lost()


def test_redis_broker(tmp_path: Path, moto: S3Endpoint) -> None:
    host, port = require_service("redis")
    with celery_rig(tmp_path, moto, f"redis://{host}:{port}/0") as rig:
        rig.schedule(rig.add_files(40, 2048))
        rig.start_workers(nodes=1, processes=2)
        rig.wait_all_final()
        rig.stop()
        rig.check_nothing_lost()


def test_schedule_publishes_only_with_the_celery_executor(tmp_path: Path, moto: S3Endpoint) -> None:
    """With OCS_TRANSFER_EXECUTOR=worker nothing is published; the ledger's
    dispatch pass publishes those transfers when a Celery worker runs it."""
    with celery_rig(tmp_path, moto, rabbitmq_url()) as rig:
        rig.env["OCS_TRANSFER_EXECUTOR"] = "worker"
        rig.schedule(rig.add_files(3, 1024))
        assert all(t.state == "pending" for t in rig.engine.transfers())
        from amqp.exceptions import NotFound

        from ocs_transfer.transfer.celery import make_app

        with make_app(rig.settings).connection_for_write() as conn:
            try:
                waiting = conn.default_channel.queue_declare(rig.queue, passive=True).message_count
            except NotFound:  # never declared: nothing was published to it
                waiting = 0
        assert waiting == 0
        rig.start_workers(nodes=1, processes=1)
        rig.wait_all_final()
        rig.stop()
        rig.check_nothing_lost()
