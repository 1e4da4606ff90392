"""``test_connection``: prove a store works by writing, checking and
deleting a small probe object."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..exceptions import OcsTransferError
from .base import ConnectionTestResult

if TYPE_CHECKING:
    from .base import FileStore

__all__ = ["run_connection_test", "PROBE_PREFIX"]

log = logging.getLogger(__name__)

#: Probe objects are ``.ocs-transfer-probe-<random>.bin`` at the store root:
#: no folder is created, so nothing is left once the probe is deleted. Listings
#: hide them and ``sweep`` removes one a crash left.
PROBE_PREFIX = ".ocs-transfer-probe"


def run_connection_test(store: FileStore) -> ConnectionTestResult:
    started = time.monotonic()
    checked_at = datetime.now(UTC)
    data = os.urandom(1024)
    path = f"{PROBE_PREFIX}-{uuid.uuid4().hex}.bin"  # at the top: no folder is left behind

    def result(ok: bool, message: str) -> ConnectionTestResult:
        return ConnectionTestResult(
            ok=ok, message=message, checked_at=checked_at, duration_s=round(time.monotonic() - started, 3)
        )

    try:
        stored = store.put(io.BytesIO(data), path, size=len(data))
        try:
            if stored.sha256 != hashlib.sha256(data).hexdigest() or store.get_file_size(path) != len(data):
                return result(False, "the probe object came back different from what was written")
        finally:
            store.delete_file(path)
    except OcsTransferError as exc:
        log.info("connection test of %r failed: %s", store, exc)
        return result(False, str(exc))
    except Exception as exc:  # a test reports, it does not raise
        log.info("connection test of %r failed: %s", store, type(exc).__name__)
        return result(False, f"unexpected {type(exc).__name__}; see the logs")
    return result(True, f"wrote, verified and deleted a {len(data)}-byte probe object")
