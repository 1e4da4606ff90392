"""The ingest queue: files announced on RabbitMQ, stored and scheduled.

The telescope side publishes ``{"filepath": "/path/to/file"}`` messages
(:func:`enqueue`, ``ocs-transfer enqueue``); the ingester consumes them
(:func:`consume`, ``ocs-transfer ingest``), stores each file in the file store
and/or schedules it to destinations, and acknowledges a message only when that
is done. See docs/ingest.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ingester import Ingested, Ingester, IngestFileError
    from .message import IngestMessage, MessageError
    from .queue import ConsumeStats, QueueUnavailableError, QueueURL, Topology, consume, enqueue

#: Where each name lives; imported on first use (building the plugin manager imports this package).
_HOME = {
    "IngestFileError": "ingester", "Ingested": "ingester", "Ingester": "ingester",
    "IngestMessage": "message", "MessageError": "message",
    "ConsumeStats": "queue", "QueueUnavailableError": "queue", "QueueURL": "queue", "Topology": "queue",
    "consume": "queue", "enqueue": "queue",
}  # fmt: skip

__all__ = [
    "ConsumeStats",
    "IngestFileError",
    "IngestMessage",
    "Ingested",
    "Ingester",
    "MessageError",
    "QueueURL",
    "QueueUnavailableError",
    "Topology",
    "consume",
    "enqueue",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
