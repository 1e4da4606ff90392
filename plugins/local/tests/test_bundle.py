"""Bundles on the file server: `ocs-transfer bundle` streams the zip over
WebDAV (no size known ahead), the server's signed link downloads exactly it,
the link's expiry is the bundle's --keep-days, and a link stops working
once its time is up."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from click.testing import CliRunner
from ocs_transfer_local.webdav import WebdavStore

from ocs_transfer.cli import main
from ocs_transfer.storage.bundle import bundle_files, plan_members
from ocs_transfer.testing.bundles import assert_bundle_holds, local_tree
from ocs_transfer.testing.data import pattern_bytes

FILES = {
    "run-17/a.fits.fz": pattern_bytes(400_000),
    "run-17/log.txt": b"exposure 30 s, seeing 1.2\n" * 3000,
    "run-17/deep/c.fits": pattern_bytes(150_000)[::-1],
}


def test_bundle_cli_to_the_file_server_with_a_signed_link(file_server, local_plugins, tmp_path: Path) -> None:
    local_tree(tmp_path, FILES)
    url = file_server.url.replace("http://", "webdav+http://") + "/users/42"
    creds = json.dumps({"token": file_server.token, "signing_key": file_server.signing_key})
    before = time.time()
    env = {"OCS_TRANSFER_LEDGER_URL": f"sqlite:///{tmp_path / 'none.db'}"}
    result = CliRunner().invoke(main, ["bundle", str(tmp_path / "run-17"), "--to", url, "--name", "results.zip",
                                       "--keep-days", "1", "--credentials-file", "-", "--json"],
                                input=creds, env=env)  # fmt: skip
    assert result.exit_code == 0, result.output + (result.stderr if result.stderr_bytes else "")
    out = json.loads(result.stdout)
    held = (file_server.root / "users" / "42" / "results.zip").read_bytes()
    assert out["sha256"] == hashlib.sha256(held).hexdigest() and out["size"] == len(held)
    assert_bundle_holds(held, FILES)
    got = httpx.get(out["link"], timeout=10)
    assert got.status_code == 200 and got.content == held
    exp = int(parse_qs(urlsplit(out["link"]).query)["exp"][0])
    assert datetime.fromisoformat(out["expires"]) == datetime.fromtimestamp(exp, UTC)
    assert before + 86400 - 1 <= exp <= time.time() + 86400 + 1  # the link lives as long as the bundle is kept
    assert file_server.token not in result.output and file_server.signing_key not in result.output


def test_a_bundles_link_stops_working_when_it_expires(file_server, tmp_path: Path) -> None:
    local_tree(tmp_path, FILES)
    config = WebdavStore.Config(url=file_server.url, root="short")
    with WebdavStore.from_config(config, {"token": file_server.token, "signing_key": file_server.signing_key}) as store:
        done = bundle_files(store, plan_members([tmp_path / "run-17"]), "brief.zip", keep=timedelta(seconds=2))
    assert done.link is not None and done.expires is not None
    assert httpx.get(done.link, timeout=10).content == (file_server.root / "short" / "brief.zip").read_bytes()
    while datetime.now(UTC) <= done.expires + timedelta(seconds=1):
        time.sleep(0.5)  # waiting for the link's time to pass, not timing anything
    assert httpx.get(done.link, timeout=10).status_code == 403
    assert (file_server.root / "short" / "brief.zip").exists()  # the link expired; the file waits for `expire`
