"""Bundles end to end through the CLI on the local provider: `bundle` to a
destination of the ledger (unzipped and compared member by member, the same
files giving the same bytes), `expire` after its --keep-days, and `schedule
--bundle` as one transfer with the retries, states and records of any other,
deleting its sources only once it completed (nothing lost)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ocs_transfer import plugins
from ocs_transfer.testing.bundles import assert_bundle_holds, local_tree
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine
from ocs_transfer.transfer.ledger import Ledger

from .conftest import FAULTS, data_for, unique_root
from .test_cli import Cli


@pytest.fixture
def cli(tmp_path: Path, faulty_provider: None) -> Iterator[Cli]:
    import ocs_transfer_local.plugin

    with plugins.temporary_plugin(ocs_transfer_local.plugin, "local"):
        yield Cli(tmp_path)


def results(tmp_path: Path) -> dict[str, bytes]:
    """A results folder as the results service makes one, and a summary beside it."""
    files = {
        "run-17/red/a.fits.fz": data_for("a", 250_000),
        "run-17/red/b.fits.fz": data_for("b", 90_000),
        "run-17/stats.csv": b"object,mag\n" + b"M31,3.4\n" * 4000,
        "run-17/thumb.jpg": data_for("thumb", 20_000),
        "summary.txt": b"17 frames\n",
    }
    return local_tree(tmp_path / "out", files)


def members_of(files: dict[str, bytes]) -> dict[str, bytes]:
    return dict(files)  # named in the bundle as below the folder given: run-17/..., summary.txt


def test_bundle_to_a_destination_then_expire(cli: Cli, tmp_path: Path) -> None:
    files = results(tmp_path)
    root = tmp_path / "box"
    cli("dest", "add", "box", "--provider", "local", "--option", f"root={root}", "--path", "users/42",
        "--option", "link_base_url=https://files.example.org/box")  # fmt: skip
    given = [str(tmp_path / "out" / "run-17"), str(tmp_path / "out" / "summary.txt")]
    out = json.loads(cli("bundle", *given, "--to", "box", "--name", "results.zip", "--keep-days", "2",
                         "--json").stdout)  # fmt: skip
    held = (root / "users" / "42" / "results.zip").read_bytes()
    assert out["path"] == "users/42/results.zip" and out["size"] == len(held)
    assert out["md5"] == hashlib.md5(held, usedforsecurity=False).hexdigest()
    assert out["sha256"] == hashlib.sha256(held).hexdigest()
    assert [m["name"] for m in out["members"]] == sorted(files)
    assert_bundle_holds(held, members_of(files))
    assert out["link"] == "https://files.example.org/box/users/42/results.zip"
    assert out["expires"] is None  # a permanent link: it works until `expire` deletes the bundle
    kept = datetime.fromisoformat(out["kept_until"]).timestamp()
    assert time.time() + 2 * 86400 - 60 <= kept <= time.time() + 2 * 86400
    taken = cli("bundle", *given, "--to", "box", "--name", "results.zip", ok=False)
    assert taken.exit_code != 0 and "Give the bundle another name" in cli.outputs[-1]
    assert (root / "users" / "42" / "results.zip").read_bytes() == held  # the one there stays

    again = json.loads(cli("bundle", *given, "--to", "box", "--name", "again.zip", "--json").stdout)
    assert again["sha256"] == out["sha256"]  # the same files, the same bytes
    assert (root / "users" / "42" / "again.zip").read_bytes() == held

    assert "expired 0 file(s)" in cli("expire").output  # not yet
    ledger = Ledger(cli.env["OCS_TRANSFER_LEDGER_URL"])
    try:
        later = Engine(ledger, Destinations(ledger, None), clock=lambda: time.time() + 2 * 86400 + 60)
        assert later.expire() == 1  # the bundle kept 2 days; `again` keeps the destination's (forever)
        assert later.get(out["transfer_id"]).expired_at is not None
    finally:
        ledger.close()
    assert not (root / "users" / "42" / "results.zip").exists()
    assert (root / "users" / "42" / "again.zip").exists()


def test_bundle_to_a_directory_is_not_recorded(cli: Cli, tmp_path: Path) -> None:
    files = results(tmp_path)
    out = json.loads(cli("bundle", str(tmp_path / "out"), "--to", str(tmp_path / "plain"), "--name", "r.zip",
                         "--json").stdout)  # fmt: skip
    assert_bundle_holds((tmp_path / "plain" / "r.zip").read_bytes(), {f"out/{k}": v for k, v in files.items()})
    assert "transfer_id" not in out and out["link"] is None


def test_bundle_refuses_bad_input_before_sending(cli: Cli, tmp_path: Path) -> None:
    results(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "summary.txt").write_bytes(b"another")
    twice = cli("bundle", str(tmp_path / "out" / "summary.txt"), str(tmp_path / "other" / "summary.txt"),
                "--to", str(tmp_path / "plain"), "--name", "r.zip", ok=False)  # fmt: skip
    assert twice.exit_code == 2 and "two files would be 'summary.txt'" in twice.output
    missing = cli("bundle", str(tmp_path / "nope"), "--to", str(tmp_path / "plain"), "--name", "r.zip", ok=False)
    assert missing.exit_code == 2 and "no such file or directory" in missing.output
    bad_keep = cli("bundle", str(tmp_path / "out"), "--to", str(tmp_path / "plain"), "--name", "r.zip",
                   "--keep-days", "soon", ok=False)  # fmt: skip
    assert bad_keep.exit_code == 2 and "keep_days" in bad_keep.output
    assert not (tmp_path / "plain").exists()


def test_schedule_bundle_retries_then_deletes_its_sources(cli: Cli, tmp_path: Path) -> None:
    files = results(tmp_path)
    cli.env["OCS_TRANSFER_RETRY_DELAYS"] = "0,0,0"
    root = unique_root("bundles")
    FAULTS[root] = ["transient"]  # the first attempt fails at the destination
    cli("dest", "add", "box", "--provider", "faulty-memory", "--option", f"root={root}", "--delete-source",
        "--credential", "token", input="tok-bundle\n")  # fmt: skip
    listing = cli("schedule", "--bundle", "results.zip", str(tmp_path / "out"), "--to", "box").output
    assert "results.zip" in listing and listing.count("\n") == 1  # one transfer for all the files
    cli("worker", "--until-idle", "--poll", "0.01")
    status = json.loads(cli("status", "results.zip", "--json").output)
    assert [(t["state"], t["attempts"], t["kind"]) for t in status] == [("completed", 2, "bundle")]
    from ocs_transfer.storage import get_store

    store = get_store("memory", root=root)
    with store.get_fileobj("results.zip") as reader:
        held = reader.read()
    assert hashlib.sha256(held).hexdigest() == status[0]["sha256"]
    assert_bundle_holds(held, {f"out/{k}": v for k, v in files.items()})
    # nothing lost: every source went only after the bundle holding its bytes completed
    assert not any((tmp_path / "out" / rel).exists() for rel in files)
    assert [i.path for i in store.list()] == ["results.zip"]


def test_a_member_changed_after_scheduling_fails_the_attempt_and_is_kept(cli: Cli, tmp_path: Path) -> None:
    files = results(tmp_path)
    root = unique_root("bundles")
    cli("dest", "add", "box", "--provider", "faulty-memory", "--option", f"root={root}", "--delete-source",
        "--credential", "token", input="tok-bundle\n")  # fmt: skip
    cli("schedule", "--bundle", "results.zip", str(tmp_path / "out"), "--to", "box")
    (tmp_path / "out" / "summary.txt").write_bytes(b"rewritten after scheduling\n")
    cli("worker", "--until-idle", "--poll", "0.01")
    [t] = json.loads(cli("status", "results.zip", "--json").output)
    assert t["state"] == "pending" and "changed since it was scheduled" in t["last_error"]
    from ocs_transfer.storage import get_store

    assert list(get_store("memory", root=root).list()) == []  # nothing published
    for rel, data in files.items():  # nothing deleted
        assert (tmp_path / "out" / rel).read_bytes() == (data if rel != "summary.txt" else b"rewritten after"
                                                         b" scheduling\n")  # fmt: skip


def test_a_refreshed_bundle_keeps_its_name_and_retention(cli: Cli, tmp_path: Path) -> None:
    files = results(tmp_path)
    root = unique_root("bundles")
    FAULTS[root] = ["never"]  # refused for good: failed at once
    cli("dest", "add", "box", "--provider", "faulty-memory", "--option", f"root={root}", "--layout", "by_target",
        "--path", "old", "--credential", "token", input="tok-bundle\n")  # fmt: skip
    cli("schedule", "--bundle", "results.zip", str(tmp_path / "out"), "--to", "box", "--keep-days", "3")
    cli("worker", "--until-idle", "--poll", "0.01")
    [t] = json.loads(cli("status", "results.zip", "--json").output)
    assert t["state"] == "failed" and t["remote_path"] == "old/results.zip"
    cli("dest", "edit", "box", "--path", "users/42")
    cli("retry", str(t["id"]), "--refresh")
    cli("worker", "--until-idle", "--poll", "0.01")
    [t] = json.loads(cli("status", "results.zip", "--json").output)
    assert t["state"] == "completed" and t["remote_path"] == "users/42/results.zip"  # no layout for bundles
    from ocs_transfer.storage import get_store

    with get_store("memory", root=root).get_fileobj("users/42/results.zip") as reader:
        assert_bundle_holds(reader.read(), {f"out/{k}": v for k, v in files.items()})
    ledger = Ledger(cli.env["OCS_TRANSFER_LEDGER_URL"])
    try:
        from ocs_transfer.transfer.crypto import KeyRing

        dests = Destinations(ledger, KeyRing.parse(cli.env["OCS_TRANSFER_KEYS"], "k1"))
        assert Engine(ledger, dests, clock=lambda: time.time() + 2 * 86400).expire() == 0
        assert Engine(ledger, dests, clock=lambda: time.time() + 3 * 86400 + 60).expire() == 1  # its 3 days held
    finally:
        ledger.close()


def test_bundles_on_each_ledger_database(rig: Any) -> None:
    """The engine's bundle path on SQLite and PostgreSQL, from a store source:
    one transfer per destination, the same bytes at both, members deleted once
    both completed, and nothing else left anywhere."""
    data = {f"night/{n}": rig.add_source(f"night/{n}", size) for n, size in (("a.fits.fz", 90_000), ("b.txt", 4000))}
    one = rig.add_dest("one", delete_source=True)
    two = rig.add_dest("two", path="users/7")
    members = [(rig.source_url, path, path) for path in sorted(data)]
    created = rig.engine.schedule_bundle("results.zip", members, ["one", "two"], keep_hours=5)
    assert [t.kind for t in created] == ["bundle", "bundle"] and created[0].file_id == created[1].file_id
    assert rig.engine.run_due() == 2
    done = [rig.engine.get(t.id) for t in created]
    assert [t.state for t in done] == ["completed", "completed"] and done[0].sha256 == done[1].sha256
    for store, path in ((one, "results.zip"), (two, "users/7/results.zip")):
        with store.get_fileobj(path) as reader:
            assert_bundle_holds(reader.read(), data)
        assert [i.path for i in store.list()] == [path]
    assert list(rig.source.list()) == []  # the members went, after both transfers completed
    assert rig.engine.source_file(created[0].file_id)["delete_state"] == "deleted"
    rig.clock.advance(5 * 3600 + 1)
    assert rig.engine.expire() == 2 and list(one.list()) == [] and list(two.list()) == []


def test_a_member_scheduled_on_its_own_too_is_deleted_only_after_both(rig: Any) -> None:
    """A file in a bundle whose destination deletes sources, and scheduled on
    its own to another destination that has not got it yet: the completed
    bundle must not delete it (nor may the other way round: a file whose own
    transfers completed must wait for a bundle holding it). Both go only once
    every transfer of those bytes completed."""
    data = {p: rig.add_source(p, 50_000) for p in ("night/a.fits", "night/b.fits")}
    bundled = rig.add_dest("bundled", delete_source=True)
    alone = rig.add_dest("alone")
    FAULTS[alone.root] = ["transient"]  # its first attempt fails: a retry is due later
    rig.engine.schedule(rig.source_url, "night/a.fits", ["alone"])
    bundle = rig.engine.schedule_bundle("b.zip", [(rig.source_url, p, p) for p in sorted(data)], ["bundled"])
    rig.engine.run_due()
    assert rig.engine.get(bundle[0].id).state == "completed"
    assert sorted(i.path for i in rig.source.list()) == sorted(data)  # a's other copy is not made yet
    rig.clock.advance(3600)
    rig.engine.run_due()
    rig.engine.periodic()
    assert [i.path for i in alone.list()] == ["a.fits"]
    assert list(rig.source.list()) == []  # now both copies exist: both sources went
    with bundled.get_fileobj("b.zip") as reader:
        assert_bundle_holds(reader.read(), data)

    # the other way round: a file deleted by its own schedule while a bundle holding it waits
    again = rig.add_source("night/c.fits", 40_000)
    own = rig.add_dest("own", delete_source=True)
    late = rig.add_dest("late")
    FAULTS[late.root] = ["transient"]
    rig.engine.schedule_bundle("c.zip", [(rig.source_url, "night/c.fits", "c.fits")], ["late"])
    rig.engine.schedule(rig.source_url, "night/c.fits", ["own"])
    rig.engine.run_due()
    assert [i.path for i in own.list()] == ["c.fits"]
    assert [i.path for i in rig.source.list()] == ["night/c.fits"]  # the bundle has not got it yet
    rig.clock.advance(3600)
    rig.engine.run_due()
    rig.engine.periodic()
    with late.get_fileobj("c.zip") as reader:
        assert_bundle_holds(reader.read(), {"c.fits": again})
    assert list(rig.source.list()) == []
