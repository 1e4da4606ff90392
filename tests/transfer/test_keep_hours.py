"""Retention in hours (issue 12): `dest add/edit --keep-hours N` and
`--keep-days` with a duration (48h, 2d) or whole days; `dest show`/`list` show
it; `expire` and the worker's periodic pass delete a file kept 48 hours after
48 hours, not before."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.storage import get_store
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.destinations import Destinations, parse_retention
from ocs_transfer.transfer.engine import Engine
from ocs_transfer.transfer.ledger import Ledger

from .conftest import FakeClock, assert_nothing_lost, data_for, unique_root
from .test_cli import Cli

HOUR = 3600


@pytest.fixture
def cli(tmp_path: Path, faulty_provider: None) -> Cli:
    return Cli(tmp_path)


def _add(cli: Cli, name: str, *keep: str) -> str:
    root = unique_root(name)
    cli("dest", "add", name, "--provider", "faulty-memory", "--option", f"root={root}", *keep)
    return root


def _shown(cli: Cli, name: str) -> dict[str, object]:
    data = json.loads(cli("dest", "show", name, "--json").output)
    assert isinstance(data, dict)
    return data


def _engine(cli: Cli, clock: FakeClock) -> tuple[Ledger, Engine]:
    ledger = Ledger(cli.env["OCS_TRANSFER_LEDGER_URL"])
    dests = Destinations(ledger, KeyRing.parse(cli.env["OCS_TRANSFER_KEYS"]), clock=clock)
    return ledger, Engine(ledger, dests, clock=clock)


def test_dest_commands_take_and_show_hours(cli: Cli) -> None:
    _add(cli, "hours", "--keep-hours", "48")
    _add(cli, "duration", "--keep-days", "36h")
    _add(cli, "days", "--keep-days", "2d")
    _add(cli, "plain", "--keep-days", "3")
    _add(cli, "forever")
    got = {n: _shown(cli, n) for n in ("hours", "duration", "days", "plain", "forever")}
    assert {n: (d["keep_hours"], d["keep_days"]) for n, d in got.items()} == {
        "hours": (48, 2), "duration": (36, 1.5), "days": (48, 2), "plain": (72, 3), "forever": (None, None),
    }  # fmt: skip
    text = cli("dest", "show", "duration").output
    assert "keep_hours         36" in text and "keep_days          1.5" in text
    listed = {line.split()[1]: line.split() for line in cli("dest", "list").output.splitlines()[2:]}
    assert listed["hours"][7] == "2d" and listed["duration"][7] == "36h" and listed["forever"][7] == "-"
    assert "keep" in cli("dest", "list").output.splitlines()[0]
    cli("dest", "edit", "plain", "--keep-hours", "5")
    assert _shown(cli, "plain")["keep_hours"] == 5
    cli("dest", "edit", "plain", "--keep-days", "1")
    assert _shown(cli, "plain")["keep_hours"] == 24


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--keep-days", "two days"), "a duration such as 48h or 2d"),
        (("--keep-days", "0h"), "at least 1 hour"),
        (("--keep-days", "-1"), "a duration such as 48h or 2d"),
        (("--keep-hours", "0"), "--keep-hours"),
        (("--keep-days", "2", "--keep-hours", "5"), "not both"),
    ],
)
def test_bad_retention_is_refused_when_entered(cli: Cli, args: tuple[str, ...], message: str) -> None:
    result = cli("dest", "add", "bad", "--provider", "faulty-memory", "--option", f"root={unique_root('b')}", *args,
                 ok=False)  # fmt: skip
    assert result.exit_code == 2 and message in result.output, result.output
    assert "no destinations" in cli("dest", "list").output  # nothing half-made


def test_parse_retention() -> None:
    assert [parse_retention(v) for v in (7, "7", "48h", "48H", " 2d ", None)] == [168, 168, 48, 48, 48, None]
    for bad in ("1.5", "2w", "h", True, 0, "0d"):
        with pytest.raises(ConfigurationError, match="keep_days"):
            parse_retention(bad)


def test_api_keep_days_still_works(cli: Cli) -> None:
    ledger = Ledger(cli.env["OCS_TRANSFER_LEDGER_URL"])
    try:
        ledger.migrate()
        dests = Destinations(ledger, None)
        dest = dests.add("api", "memory", options={"root": unique_root("api")}, keep_days=2)
        assert (dest.keep_hours, dest.keep_days, dest.snapshot()["keep_hours"]) == (48, 2, 48)
        assert dests.edit("api", keep_days="12h").keep_hours == 12
        assert dests.edit("api", keep_hours=30).keep_days == 1.25
        with pytest.raises(ConfigurationError, match="not both"):
            dests.edit("api", keep_days=1, keep_hours=30)
    finally:
        ledger.close()


def test_expire_command_honours_hours(cli: Cli) -> None:
    """Two files on a destination kept 48 hours, one transferred 47 hours ago
    and one 49 hours ago (the engine's clock set back): `expire` removes only
    the older one."""
    root = _add(cli, "short", "--keep-hours", "48")
    long_root = _add(cli, "long")
    src = "memory:/" + unique_root("keepsrc")
    files = {name: data_for(name, 5000) for name in ("old.fits", "new.fits")}
    for name, data in files.items():
        get_store(src).put(io.BytesIO(data), name)
    clock = FakeClock(time.time() - 49 * HOUR)
    ledger, engine = _engine(cli, clock)
    try:
        engine.schedule(src, ["old.fits"], ["short", "long"])
        engine.run_due()
        clock.advance(2 * HOUR)
        engine.schedule(src, ["new.fits"], ["short", "long"])
        engine.run_due()
        assert "expired 1 file(s)" in cli("expire").output
        assert "expired 0 file(s)" in cli("expire").output
        stores = {"short": get_store("memory", root=root), "long": get_store("memory", root=long_root)}
        assert_nothing_lost(engine, {"short": {"new.fits": files["new.fits"]}, "long": files}, stores)
        expired = [t.remote_path for t in engine.transfers() if t.expired_at is not None]
        assert expired == ["old.fits"]
        assert all(get_store(src).exists(name) for name in files)  # the source was never asked to go
    finally:
        ledger.close()


def test_periodic_pass_honours_hours(cli: Cli) -> None:
    root = _add(cli, "short", "--keep-days", "48h")
    src = "memory:/" + unique_root("keepsrc")
    data = data_for("p.fits", 5000)
    get_store(src).put(io.BytesIO(data), "p.fits")
    clock = FakeClock()
    ledger, engine = _engine(cli, clock)
    try:
        [t] = engine.schedule(src, ["p.fits"], ["short"])
        engine.run_due()
        store = get_store("memory", root=root)
        clock.advance(47 * HOUR)
        engine.periodic()
        assert store.exists("p.fits") and engine.get(t.id).expired_at is None
        clock.advance(2 * HOUR)
        engine.periodic()
        assert not store.exists("p.fits") and engine.get(t.id).expired_at == clock.now
        assert_nothing_lost(engine, {"short": {}}, {"short": store})
    finally:
        ledger.close()
