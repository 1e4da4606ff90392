"""A consumer process that dies (``os._exit``) in the middle of every
message, as one killed by the OOM killer or a segfault would: the message is
never answered. Used by test_queue.py::test_a_message_that_keeps_crashing_the_consumer.

    python crashing_consumer.py URL QUEUE_NAME STORE_ROOT DELIVERY_LIMIT
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ocs_transfer import plugins
from ocs_transfer.hookspecs import hookimpl
from ocs_transfer.ingest import Ingester, consume
from ocs_transfer.storage import get_store


class Crash:
    @hookimpl
    def ocs_transfer_file_ingested(self, ingested: Any) -> None:
        os._exit(3)


def main() -> None:
    url, name, root, limit = sys.argv[1:5]
    plugins.get_plugin_manager().register(Crash(), name="crash")
    ingester = Ingester(get_store("memory", root=root))
    stats = consume(url, name, ingester, delivery_limit=int(limit), until_idle=True, idle_seconds=0.5)
    print(stats.received)


if __name__ == "__main__":
    main()
