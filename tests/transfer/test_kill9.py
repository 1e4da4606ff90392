"""kill9_restart: a real worker process is SIGKILLed at several points of a
transfer, then restarted; nothing is lost, duplicated or left partial, and the
source is deleted iff every destination completed."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import ocs_transfer_local.plugin
import pytest
from ocs_transfer_local.local import LocalStore

from ocs_transfer import plugins
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine
from ocs_transfer.transfer.ledger import Ledger

from .conftest import data_for, make_key

WORKER = Path(__file__).resolve().parent / "kill9_worker.py"


@pytest.fixture
def dir_provider(builtin_plugins_only: None) -> Iterator[None]:
    with plugins.temporary_plugin(ocs_transfer_local.plugin, "local"):
        yield


def _run(env: dict[str, str], url: str, kill_at: str, marker: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WORKER), url, kill_at, str(marker)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under root, hidden ones included, with size and sha256."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            data = path.read_bytes()
            out[str(path.relative_to(root))] = (len(data), hashlib.sha256(data).hexdigest())
    return out


@pytest.mark.parametrize("kill_at", ["start", "mid", "uploaded", "recorded"])
def test_kill9_restart(kill_at: str, tmp_path: Path, dir_provider: None) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    env = {**os.environ, "OCS_TRANSFER_KEYS": f"k1:{make_key()}", "OCS_TRANSFER_CHUNK_SIZE": "65536",
           "OCS_TRANSFER_DISABLE_ENTRYPOINTS": "1"}  # fmt: skip
    src_root, a_root, b_root = tmp_path / "src", tmp_path / "a", tmp_path / "b"
    for d in (src_root, a_root, b_root):
        d.mkdir()
    files = {f"obs{i}.fits": data_for(f"obs{i}.fits", 400_000 + i) for i in range(3)}
    source = LocalStore.from_config(LocalStore.Config(root=str(src_root)))
    for name, data in files.items():
        source.put(io.BytesIO(data), name)

    ledger = Ledger(url)
    ledger.migrate()
    dests = Destinations(ledger, KeyRing.parse(env["OCS_TRANSFER_KEYS"]))
    dests.add("a", "local", options={"root": str(a_root)})
    dests.add("b", "local", options={"root": str(b_root)}, delete_source=True)
    engine = Engine(ledger, dests)
    engine.schedule(str(src_root), sorted(files), ["a", "b"])

    marker = tmp_path / "marker"
    proc = _run(env, url, kill_at, marker)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "the worker never reached the kill point"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert any(t.state == "in_progress" or t.state == "completed" for t in engine.transfers())

    restart = _run(env, url, "none", tmp_path / "unused")
    _out, err = restart.communicate(timeout=120)
    assert restart.returncode == 0, err.decode()[-3000:]

    transfers = engine.transfers()
    assert len(transfers) == 6 and all(t.state == "completed" for t in transfers), [
        (t.id, t.state, t.last_error) for t in transfers
    ]
    want = {name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in files.items()}
    assert _tree(a_root) == want  # no duplicates, no hidden partial files
    assert _tree(b_root) == want
    assert _tree(src_root) == {}  # every destination completed and b asked: sources deleted
    for t in transfers:
        assert t.sha256 == want[t.source_path][1]
        assert engine.source_file(t.file_id)["delete_state"] == "deleted"
    ledger.close()
