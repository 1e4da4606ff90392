"""Reaching the machine's test services (PostgreSQL, RabbitMQ, Redis).

Tests that need a service call :func:`require_service`. When the service is
unreachable the test is skipped with a clear reason, so the suite passes on a
bare machine; with ``OCS_TRANSFER_REQUIRE_SERVICES=1`` (set by ``.ci/run``) it
fails instead, so in CI those tests always run.
"""

from __future__ import annotations

import os
import socket

import pytest

__all__ = ["require_service", "services_required", "SERVICES"]

#: name -> (host, port, environment variable that overrides "host:port")
SERVICES: dict[str, tuple[str, int, str]] = {
    "postgresql": ("127.0.0.1", 5432, "OCS_TRANSFER_TEST_POSTGRES"),
    "rabbitmq": ("127.0.0.1", 5672, "OCS_TRANSFER_TEST_RABBITMQ"),
    "redis": ("127.0.0.1", 6379, "OCS_TRANSFER_TEST_REDIS"),
}


def services_required() -> bool:
    return os.environ.get("OCS_TRANSFER_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def _reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str) -> tuple[str, int]:
    """Return ``(host, port)`` of the service, or skip (fail in CI) the
    calling test when it cannot be reached."""
    host, port, var = SERVICES[name]
    override = os.environ.get(var)
    if override:
        host, _, port_text = override.rpartition(":")
        port = int(port_text)
    if _reachable(host, port):
        return host, port
    reason = f"{name} is not reachable at {host}:{port} (set {var}=host:port to point elsewhere)"
    if services_required():
        pytest.fail(f"{reason}; OCS_TRANSFER_REQUIRE_SERVICES is set, so this is a failure, not a skip")
    pytest.skip(reason)
    raise AssertionError("unreachable")  # pytest.skip raises
