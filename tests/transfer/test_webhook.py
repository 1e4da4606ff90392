"""The webhook notifier: a bundle made through the CLI reaches a real HTTP
receiver as one signed POST with its link, size, checksums and expiry; a
5xx is retried, a 4xx is not, and neither undoes the transfer; bad settings
are refused at start-up."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ocs_transfer import plugins
from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.settings import Settings
from ocs_transfer.testing.bundles import local_tree
from ocs_transfer.transfer.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookNotifier

from .conftest import data_for
from .test_cli import Cli

SECRET = "hook-secret-0123456789abcdef"


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers with the next scripted status."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.got: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.answers.pop(0) if outer.answers else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/transfer"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cli(tmp_path: Path, faulty_provider: None) -> Iterator[Cli]:
    import ocs_transfer_local.plugin

    with plugins.temporary_plugin(ocs_transfer_local.plugin, "local"):
        yield Cli(tmp_path)
    plugins.reset()  # drop the notifier the commands registered


def _bundle(cli: Cli, tmp_path: Path, receiver: Receiver) -> dict[str, Any]:
    local_tree(tmp_path / "out", {"a.fits.fz": data_for("a", 80_000), "notes.txt": b"seeing 1.1\n" * 100})
    cli.env.update({"OCS_TRANSFER_WEBHOOK_URL": receiver.url, "OCS_TRANSFER_WEBHOOK_SECRET": SECRET})
    cli("dest", "add", "box", "--provider", "local", "--option", f"root={tmp_path / 'box'}",
        "--option", "link_base_url=https://files.example.org/box")  # fmt: skip
    out = cli("bundle", str(tmp_path / "out"), "--to", "box", "--name", "results.zip", "--keep-days", "3", "--json")
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _verified(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    stamp = headers[TIMESTAMP_HEADER.lower()]
    mine = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER.lower()], f"sha256={mine}")
    return json.loads(body)  # type: ignore[no-any-return]


def test_a_bundle_reaches_the_receiver_signed_after_a_retry(cli: Cli, tmp_path: Path) -> None:
    receiver = Receiver([503])
    try:
        out = _bundle(cli, tmp_path, receiver)
    finally:
        receiver.close()
    assert len(receiver.got) == 2  # the 503 was retried
    first, second = (_verified(h, b) for h, b in receiver.got)
    assert first == second
    assert second["state"] == "completed" and second["kind"] == "bundle" and second["name"] == "results.zip"
    assert {k: second[k] for k in ("path", "size", "md5", "sha256", "link")} == \
        {k: out[k] for k in ("path", "size", "md5", "sha256", "link")}  # fmt: skip
    held = (tmp_path / "box" / "results.zip").read_bytes()
    assert second["sha256"] == hashlib.sha256(held).hexdigest()
    assert SECRET not in "".join(cli.outputs) and SECRET.encode() not in receiver.got[0][1]


def test_a_refused_notification_is_not_retried_and_keeps_the_transfer(
    cli: Cli, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = Receiver([400])
    try:
        _bundle(cli, tmp_path, receiver)
    finally:
        receiver.close()
    assert len(receiver.got) == 1
    assert "completed" in cli("status", "results.zip").output
    said = "".join(cli.outputs) + caplog.text
    assert "refused the notification: 400" in said and "/hooks/transfer" not in said  # the path may hold a token


def test_bad_webhook_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="OCS_TRANSFER_WEBHOOK_SECRET is not"):
        WebhookNotifier.from_settings(Settings(webhook_url="https://hooks.example.org/x"))
    with pytest.raises(ConfigurationError, match="too short"):
        WebhookNotifier("https://hooks.example.org/x", "short")
    with pytest.raises(ConfigurationError, match="plain http"):
        WebhookNotifier("http://hooks.example.org/x", SECRET)
    assert WebhookNotifier.from_settings(Settings()) is None
    assert SECRET not in repr(WebhookNotifier("https://hooks.example.org/x", SECRET))
