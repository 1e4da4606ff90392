"""The results service's workflow on Seafile through the CLI: a backend
record imported as a destination, `bundle` of a results folder as one zip
(Seafile needs the size first: the zip is measured by making it twice, never
spooled to disk), a share
link expiring with --keep-days, and `expire` deleting the bundle and its share
link once those days passed."""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from ocs_transfer.testing.bundles import assert_bundle_holds, local_tree
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine
from ocs_transfer.transfer.ledger import Ledger

from .conftest import token_of
from .fake_seafile import FakeSeafile
from .test_cli import run


def test_bundle_to_seafile_then_expire_it_and_its_link(fake: FakeSeafile, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    repo = fake.add_repo("Results")
    env = {"OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
           "OCS_TRANSFER_KEYS": "k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode(),
           "OCS_TRANSFER_ACTIVE_KEY": "k1"}  # fmt: skip
    record = {"storage_backend": "Seafile", "storage_backend_id": "seafile", "storage_backend_keep_days": "10",
              "storage_backend_config": json.dumps({"token": token_of(fake), "repoid": repo.id})}  # fmt: skip
    run("dest", "import", "-", "--option", f"server_url={fake.url}", input=json.dumps(record), env=env)
    files = local_tree(tmp_path, {"run-9/a.fits.fz": os.urandom(200_000), "run-9/b.fits.fz": os.urandom(70_000),
                                  "run-9/plot.jpg": os.urandom(9_000),
                                  "run-9/stats.csv": b"frame,fwhm\n" + b"17,1.21\n" * 20_000})  # fmt: skip

    def no_spool(*args: object, **kwargs: object) -> None:
        raise AssertionError("the bundle was spooled to a temporary file")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_spool)
    out = json.loads(run("bundle", str(tmp_path / "run-9"), "--to", "Seafile", "--name", "results.zip",
                         "--keep-days", "2", "--json", env=env).stdout)  # fmt: skip
    monkeypatch.undo()
    held = fake.read(repo.id, "/results.zip")
    assert out["size"] == len(held) and fake.files(repo.id) == ["results.zip"]
    assert_bundle_holds(held, files)
    (link,) = fake.share_links.values()
    assert out["link"] == link["link"] and link["expire_days"] == 2 and link["path"] == "/results.zip"
    assert token_of(fake) not in json.dumps(out)

    ledger = Ledger(env["OCS_TRANSFER_LEDGER_URL"])
    try:
        from ocs_transfer.transfer.crypto import KeyRing

        dests = Destinations(ledger, KeyRing.parse(env["OCS_TRANSFER_KEYS"], "k1"))
        assert Engine(ledger, dests, clock=lambda: time.time() + 86400).expire() == 0  # one day in: kept
        assert Engine(ledger, dests, clock=lambda: time.time() + 2 * 86400 + 60).expire() == 1
    finally:
        ledger.close()
    assert fake.files(repo.id) == [] and fake.share_links == {}  # the bundle and its share link are gone
