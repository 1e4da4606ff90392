"""A transfer worker process for the kill9 tests (the ``local`` provider).

argv: LEDGER_URL KILL_AT MARKER. KILL_AT is "none", "start" (before the first
source byte), "mid" (mid-upload), "uploaded" (after the store's put returned,
before the ledger knows) or "recorded" (after the ledger recorded completion,
before the source is deleted). At that point the process writes MARKER and
waits to be killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, Any

from ocs_transfer_local.local import LocalStore

from ocs_transfer import plugins
from ocs_transfer.hookspecs import hookimpl
from ocs_transfer.settings import Settings
from ocs_transfer.storage.base import StoredObject
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.engine import Engine, Transfer, Worker
from ocs_transfer.transfer.ledger import Ledger

URL, KILL_AT, MARKER = sys.argv[1], sys.argv[2], Path(sys.argv[3])


def halt() -> None:
    MARKER.write_text(KILL_AT)
    while True:
        time.sleep(1)


class Reader:
    def __init__(self, inner: IO[bytes]) -> None:
        self.inner, self.seen = inner, 0

    def read(self, n: int = -1) -> bytes:
        if KILL_AT == "start":
            halt()
        data = self.inner.read(n)
        self.seen += len(data)
        if KILL_AT == "mid" and self.seen > 100_000:
            halt()
        return data

    def close(self) -> None:
        self.inner.close()


class Source(LocalStore):
    def open(self, path: str, version_id: str | None = None) -> Any:
        return Reader(super().open(path, version_id))


class Destination(LocalStore):
    """The local provider, halting after its put when asked."""

    def put(self, source: IO[bytes], path: str, **kwargs: Any) -> StoredObject:
        stored = super().put(source, path, **kwargs)
        if KILL_AT == "uploaded":
            halt()
        return stored


class Plugin:
    @hookimpl
    def ocs_transfer_register_providers(self, register: Any) -> None:
        register(Destination)


def main() -> None:
    settings = Settings.from_env()
    ledger = Ledger(URL)
    plugins.reset(load_entrypoints=False)
    with plugins.temporary_plugin(Plugin(), "kill9"):
        dests = Destinations(ledger, KeyRing.from_settings(settings), settings=settings)

        def finished(transfer: Transfer) -> None:
            if KILL_AT == "recorded" and transfer.state == "completed":
                halt()

        engine = Engine(
            ledger, dests, settings=settings, on_finished=finished,
            source_resolver=lambda ref: Source.from_config(Source.Config(root=ref, create_root=False),
                                                           settings=settings),
        )  # fmt: skip
        Worker(engine, threads=1, poll_interval=0.05).run(until_idle=True)


if __name__ == "__main__":
    main()
