"""The transfer CLI, and secrets_never_leak across logs, reprs, tracebacks,
CLI output and the ledger file."""

from __future__ import annotations

import base64
import json
import logging
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ocs_transfer.cli import main
from ocs_transfer.exceptions import CredentialError
from ocs_transfer.storage import get_store
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine
from ocs_transfer.transfer.ledger import Ledger

from .conftest import FAULTS, assert_nothing_lost, data_for, make_key, unique_root

SECRET = "Zjyi908CUig321AAAAAAAWUs1vErUWCtpCVqT5629zE7098OKH5S26781uU7qax5"


def forms(secret: str) -> list[str]:
    raw = secret.encode()
    out = [secret]
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        text = enc(raw).decode()
        out += [text, text.rstrip("=")]
    return out


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.key = make_key()
        self.db = tmp_path / "ledger.sqlite3"
        self.env = {"OCS_TRANSFER_LEDGER_URL": f"sqlite:///{self.db}", "OCS_TRANSFER_KEYS": f"k1:{self.key}",
                    "OCS_TRANSFER_ACTIVE_KEY": "k1", "OCS_TRANSFER_CHUNK_SIZE": "65536"}  # fmt: skip
        self.outputs: list[str] = []

    def __call__(self, *args: str, input: str | None = None, ok: bool = True) -> Result:
        result = CliRunner().invoke(main, ["-vv", *args], env=self.env, input=input, catch_exceptions=True)
        text = result.output + (result.stderr if result.stderr_bytes else "")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            text += "".join(traceback.format_exception(result.exception))
        self.outputs.append(text)
        if ok:
            assert result.exit_code == 0, text
        return result


@pytest.fixture
def cli(tmp_path: Path, faulty_provider: None) -> Cli:
    return Cli(tmp_path)


def test_dest_lifecycle(cli: Cli) -> None:
    root = unique_root("cli")
    cli("dest", "add", "box", "--provider", "faulty-memory", "--option", f"root={root}", "--layout", "by_target",
        "--scope", "project", "--owner", "p1", "--keep-days", "7", "--credential", "token", input="tok-value-1\n")
    out = cli("dest", "show", "box", "--json").output
    shown = json.loads(out)
    assert shown["credential_fields"] == ["token"] and shown["keep_days"] == 7 and shown["scope"] == "project"
    cli("dest", "edit", "box", "--comment", "hi", "--credential", "token", input="\n")  # empty keeps it
    assert "hi" in cli("dest", "show", "box").output
    assert "box" in cli("dest", "list").output
    assert "ok:" in cli("dest", "test", "box").output
    assert "ok " in cli("dest", "list").output
    cli("dest", "disable", "box")
    assert json.loads(cli("dest", "list", "--json").output)[0]["enabled"] is False
    cli("dest", "enable", "box")
    bad = cli("dest", "edit", "box", "--layout", "sideways", ok=False)
    assert bad.exit_code != 0
    cli("dest", "remove", "box", "--yes")
    assert "no destinations" in cli("dest", "list").output


def test_schedule_worker_status_retry_cancel_purge(cli: Cli) -> None:
    root = unique_root("cli2")
    src = "memory:/" + unique_root("clisrc")
    store = get_store(src)
    import io

    for name in ("x.fits", "y.fits"):
        store.put(io.BytesIO(data_for(name, 100_000)), name)
    cli("dest", "add", "d", "--provider", "faulty-memory", "--option", f"root={root}", "--credentials-file", "-",
        input=json.dumps({"token": "file-token"}))
    FAULTS[root] = ["never"]
    lines = cli("schedule", "x.fits", "y.fits", "--to", "d", "--source", src).output.strip().splitlines()
    ids = [int(line.split("\t")[0]) for line in lines]
    cli("worker", "--until-idle", "--poll", "0.01", "--threads", "2")
    status = cli("status").output
    assert "completed" in status and "403" in status
    data = json.loads(cli("status", "--json").output)
    assert data["counts"]["d"] == {"completed": 1, "failed": 1}
    failed = next(t["id"] for t in data["transfers"] if t["state"] == "failed")
    cli("retry", str(failed))
    cli("worker", "--until-idle", "--poll", "0.01")
    assert json.loads(cli("status", "--json").output)["counts"]["d"] == {"completed": 2}
    assert "already completed" in str(cli("cancel", str(ids[0]), ok=False).exception)
    assert "purged 0" in cli("purge").output
    assert "purged 2" in cli("purge", "--days", "0").output
    assert "expired 0" in cli("expire").output


def test_keys_rotate_and_status(cli: Cli) -> None:
    cli("dest", "add", "k", "--provider", "memory", "--option", f"root={unique_root('k')}", "--credentials-file",
        "-", input=json.dumps({"token": "abc-123-xyz"}))
    entry = cli("keys", "generate", "--kid", "k2").output.strip()
    assert entry.startswith("k2:") and len(base64.b64decode(entry[3:])) == 32
    cli.env["OCS_TRANSFER_KEYS"] += "," + entry
    cli.env["OCS_TRANSFER_ACTIVE_KEY"] = "k2"
    assert "k1: in use" in cli("keys", "status").output
    assert "re-encrypted 1" in cli("keys", "rotate").output
    assert "re-encrypted 0" in cli("keys", "rotate").output
    assert "k1: unused" in cli("keys", "status").output


def test_missing_key_is_a_clear_startup_error(cli: Cli) -> None:
    del cli.env["OCS_TRANSFER_KEYS"]
    result = cli("keys", "rotate", ok=False)
    assert result.exit_code != 0 and "no default key" in str(result.exception)


def test_secrets_never_leak(cli: Cli, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy.engine", "fsspec", "ocs_transfer"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    root = unique_root("leak")
    src = "memory:/" + unique_root("leaksrc")
    import io

    get_store(src).put(io.BytesIO(b"data" * 1000), "s.fits")
    cli("dest", "add", "leaky", "--provider", "faulty-memory", "--option", f"root={root}", "--credentials-file", "-",
        input=json.dumps({"token": SECRET, "app_secret": SECRET + "2"}))
    cli("dest", "edit", "leaky", "--credential", "token", input=SECRET + "\n")
    cli("dest", "test", "leaky")
    cli.env["OCS_TRANSFER_RETRY_DELAYS"] = "0,0,0"
    FAULTS[root] = ["leak", "leak"]
    cli("schedule", "s.fits", "--to", "leaky", "--source", src)
    for args in (("dest", "show", "leaky"), ("dest", "show", "leaky", "--json"), ("dest", "list", "--json"),
                 ("worker", "--until-idle", "--poll", "0.01"), ("status",), ("status", "--json")):  # fmt: skip
        cli(*args)
    # the provider's echo of the token was recorded, redacted
    ledger = Ledger(cli.env["OCS_TRANSFER_LEDGER_URL"])
    ring = KeyRing.parse(cli.env["OCS_TRANSFER_KEYS"])
    dests = Destinations(ledger, ring)
    engine = Engine(ledger, dests)
    [transfer] = engine.transfers()
    assert transfer.state == "completed" and transfer.attempts == 3
    assert_nothing_lost(engine, {"leaky": {"s.fits": b"data" * 1000}}, {"leaky": get_store("memory", root=root)})
    # reprs and a traceback of a credential failure
    texts = [repr(dests.get("leaky")), repr(transfer), repr(dests), repr(engine), repr(dests.credentials("leaky")),
             str(dests.credentials("leaky")), repr(ring)]  # fmt: skip
    with pytest.raises(CredentialError) as wrong_key:
        Destinations(ledger, KeyRing.parse(f"k1:{make_key()}")).credentials("leaky")
    texts.append("".join(traceback.format_exception(wrong_key.value)))
    texts.append(caplog.text)
    texts += cli.outputs
    texts.append(Path(cli.db).read_bytes().decode("latin-1"))
    for wal in Path(cli.db).parent.glob("*.sqlite3-wal"):
        texts.append(wal.read_bytes().decode("latin-1"))
    everything = "\n".join(texts)
    assert "sqlalchemy.engine" in caplog.text  # DEBUG logging really was on
    assert "server said: token *** (***) rejected" in caplog.text  # the echo happened, redacted
    for form in forms(SECRET) + forms(SECRET + "2"):
        assert form not in everything
    ledger.close()


def test_schedule_local_files(cli: Cli, tmp_path: Path) -> None:
    import ocs_transfer_local.plugin

    from ocs_transfer import plugins

    with plugins.temporary_plugin(ocs_transfer_local.plugin, "local"):
        dest_root = tmp_path / "dest"
        cli("dest", "add", "disk", "--provider", "local", "--option", f"root={dest_root}", "--layout", "by_target",
            "--delete-source")
        obs = tmp_path / "obs"
        obs.mkdir()
        files = {obs / f"img{i}.fits": data_for(f"img{i}", 70_000 + i) for i in range(2)}
        for path, data in files.items():
            path.write_bytes(data)
        missing = cli("schedule", *map(str, files), "--to", "disk", ok=False)
        assert "needs target" in str(missing.exception)
        cli("schedule", *map(str, files), "--to", "disk", "--target", "M31")
        cli("worker", "--until-idle", "--poll", "0.01")
        for path, data in files.items():
            assert (dest_root / "M31" / path.name).read_bytes() == data
            assert not path.exists()  # the destination asked for the source to go


def test_embedded_default_needs_no_keys_until_a_destination_has_credentials(cli: Cli, tmp_path: Path) -> None:
    """The zero-set-up path: a local-disk destination and the SQLite ledger run
    without a key ring; once any destination stores credentials, a worker
    without keys refuses to start, saying why."""
    import ocs_transfer_local.plugin

    from ocs_transfer import plugins

    with plugins.temporary_plugin(ocs_transfer_local.plugin, "local"):
        del cli.env["OCS_TRANSFER_KEYS"]
        del cli.env["OCS_TRANSFER_ACTIVE_KEY"]
        source = tmp_path / "obs.fits"
        source.write_bytes(data_for("obs.fits", 200_000))
        cli("dest", "add", "disk", "--provider", "local", "--option", f"root={tmp_path / 'copies'}", "--layout", "flat")
        cli("schedule", str(source), "--to", "disk")
        cli("worker", "--until-idle")
        assert (tmp_path / "copies" / "obs.fits").read_bytes() == source.read_bytes()
        assert "completed" in cli("status").output

        cli.env["OCS_TRANSFER_KEYS"] = f"k1:{cli.key}"
        cli.env["OCS_TRANSFER_ACTIVE_KEY"] = "k1"
        cli("dest", "add", "box", "--provider", "faulty-memory", "--option", f"root={unique_root('k')}",
            "--credential", "token", input="tok-value-1\n")  # fmt: skip
        del cli.env["OCS_TRANSFER_KEYS"]
        refused = cli("worker", "--until-idle", ok=False)
        assert refused.exit_code != 0 and "OCS_TRANSFER_KEYS" in cli.outputs[-1]
