"""A destination acts only as itself (issue 11.5): ids are never reused, and a
transfer runs only against the destination whose uuid it was queued with.
Columns take what users type (issue 12's audit, on PostgreSQL too). A wrong key
stops the worker before it claims anything; failed transfers retry in bulk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from ocs_transfer.exceptions import CredentialError
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Worker

from .conftest import FAULTS, Rig, assert_nothing_lost, assert_sources_safe, make_key, unique_root
from .test_cli import Cli


def test_ids_are_never_reused(rig: Rig) -> None:
    store_a = rig.add_dest("a", delete_source=True)
    data = rig.add_source("x.fits")
    [queued] = rig.engine.schedule(rig.source_url, "x.fits", ["a"])
    a_id = rig.destinations.get("a").id
    rig.destinations.remove("a")
    store_b = rig.add_dest("b", credentials={"token": "tok-b-secret"})
    assert rig.destinations.get("b").id != a_id
    rig.engine.run_due()
    failed = rig.engine.get(queued.id)
    assert failed.state == "failed" and "was removed" in failed.last_error and "source is kept" in failed.last_error
    assert list(store_b.list()) == [] and list(store_a.list()) == []
    assert_sources_safe(rig.source, {"x.fits": data}, {})
    # transfer ids are not reused after a purge either
    rig.clock.advance(1)
    rig.engine.purge(older_than_days=0, failed=True)
    [again] = rig.engine.schedule(rig.source_url, "x.fits", ["b"])
    assert again.id > queued.id
    rig.engine.run_due()
    assert_nothing_lost(rig.engine, {"b": {"x.fits": data}}, {"b": store_b})


def test_a_transfer_runs_only_against_its_destinations_uuid(rig: Rig) -> None:
    """Even if another destination had the queued one's id (a ledger that reused
    ids before the upgrade), its credentials are never lent: the uuid differs."""
    rig.add_dest("a", delete_source=True)
    data = rig.add_source("y.fits")
    [queued] = rig.engine.schedule(rig.source_url, "y.fits", ["a"])
    a = rig.destinations.get("a")
    with rig.ledger.session() as session:  # "remove A, add B with the same id"
        session.execute(text("UPDATE ocs_destinations SET name = 'b', uuid = 'another-destination-uuid'"))
    rig.engine.run_due()
    failed = rig.engine.get(queued.id)
    assert failed.state == "failed" and f"(id {a.id}) was removed" in failed.last_error
    assert failed.attempts == 1
    assert_sources_safe(rig.source, {"y.fits": data}, {})


def test_long_user_input_fits_every_column(rig: Rig) -> None:
    """The docs' template layout and long names (VARCHAR(32) refused the layout
    on PostgreSQL); a long host name in the worker id."""
    layout = "{project}/{target}/" + "x" * 40 + "/{filename}"
    store = rig.add_dest("t", layout=layout, display_name="D" * 500, owner_id="o" * 500)
    data = rig.add_source("z.fits")
    [queued] = rig.engine.schedule(rig.source_url, "z.fits", ["t"], context={"project": "P", "target": "M31"})
    engine = rig.make_engine(worker_id="h" * 253 + ":1:abc")
    engine.run_due()
    done = engine.get(queued.id)
    assert done.state == "completed" and rig.destinations.get("t").layout == layout
    assert_nothing_lost(engine, {"t": {done.remote_path: data}}, {"t": store})


def test_wrong_key_stops_the_worker_before_it_claims_anything(rig: Rig) -> None:
    for name in ("a", "b"):
        rig.add_dest(name)
    rig.add_source("k.fits")
    transfers = rig.engine.schedule(rig.source_url, "k.fits", ["a", "b"])
    wrong = Destinations(rig.ledger, KeyRing.parse(f"k1:{make_key()}", "k1"), settings=rig.settings, clock=rig.clock)
    engine = rig.make_engine()
    engine.destinations = wrong
    with pytest.raises(CredentialError, match=r"could not be decrypted.*OCS_TRANSFER_KEYS"):
        Worker(engine, threads=2, poll_interval=0.01).run(until_idle=True)
    assert [(rig.engine.get(t.id).state, rig.engine.get(t.id).attempts) for t in transfers] == [("pending", 0)] * 2


def test_one_damaged_credential_does_not_stop_the_worker(rig: Rig) -> None:
    stores = {name: rig.add_dest(name) for name in ("good", "damaged")}
    data = rig.add_source("k.fits")
    transfers = {t.destination_name: t for t in rig.engine.schedule(rig.source_url, "k.fits", ["good", "damaged"])}
    with rig.ledger.session() as session:  # one row's ciphertext altered
        row = session.execute(text("SELECT credentials FROM ocs_destinations WHERE name = 'damaged'")).scalar()
        blob = json.loads(row)
        blob["token"] = blob["token"][:-6] + ("AAAAAA" if not blob["token"].endswith("AAAAAA") else "BBBBBB")
        session.execute(text("UPDATE ocs_destinations SET credentials = :c WHERE name = 'damaged'"),
                        {"c": json.dumps(blob)})
    assert Worker(rig.engine, threads=2, poll_interval=0.01).run(until_idle=True) == 2
    assert rig.engine.get(transfers["good"].id).state == "completed"
    damaged = rig.engine.get(transfers["damaged"].id)
    assert damaged.state == "failed" and "could not be decrypted" in damaged.last_error
    assert_nothing_lost(rig.engine, {"good": {"k.fits": data}, "damaged": {}}, stores)


def test_wrong_key_via_the_cli_and_retry_all_failed(tmp_path: Path, faulty_provider: None) -> None:
    cli = Cli(tmp_path)
    roots = {}
    for name in ("d1", "d2"):
        roots[name] = unique_root(name)
        cli("dest", "add", name, "--provider", "faulty-memory", "--option", f"root={roots[name]}",
            "--credentials-file", "-", input=json.dumps({"token": f"tok-{name}"}))
        FAULTS[roots[name]] = ["never", "never"]
    import io

    from ocs_transfer.storage import get_store

    src = "memory:/" + unique_root("src")
    for i in range(2):
        get_store(src).put(io.BytesIO(b"x" * (100 + i)), f"f{i}.fits")
    cli("schedule", "f0.fits", "f1.fits", "--to", "d1", "--to", "d2", "--source", src)
    good = cli.env["OCS_TRANSFER_KEYS"]
    cli.env["OCS_TRANSFER_KEYS"] = f"k1:{make_key()}"
    refused = cli("worker", "--until-idle", "--poll", "0.01", ok=False)
    assert refused.exit_code != 0
    assert "could not be decrypted" in cli.outputs[-1] and "OCS_TRANSFER_KEYS" in cli.outputs[-1]
    cli.env["OCS_TRANSFER_KEYS"] = good
    assert "pending" in cli("status").output
    cli("worker", "--until-idle", "--poll", "0.01")
    out = cli("retry", "--all-failed", "--destination", "d1").output
    assert "2 failed transfer(s) queued again" in out
    cli("worker", "--until-idle", "--poll", "0.01")
    assert "2 failed transfer(s) queued again" in cli("retry", "--all-failed").output  # then d2's
    assert cli("retry", ok=False).exit_code != 0
