"""The file server refuses an upload without a valid token before reading
its body (not after the whole upload was streamed)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from .conftest import RunningServer

MiB = 1024 * 1024
TOTAL = 256 * MiB


def test_put_without_a_token_is_refused_before_the_body(file_server: RunningServer) -> None:
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        block = b"\0" * MiB
        while sent < TOTAL:
            sent += len(block)
            yield block

    status = None
    with httpx.Client(timeout=30) as client:
        try:
            response = client.put(f"{file_server.url}/big.fits", content=body(),
                                  headers={"Content-Length": str(TOTAL)})  # fmt: skip
            status = response.status_code
        except httpx.TransportError:
            pass  # the server closed the connection while we were still sending: that is the point
    assert status in (None, 401)
    assert sent < TOTAL // 4, f"the client streamed {sent // MiB} MiB of {TOTAL // MiB} before being refused"
    assert not any(file_server.root.iterdir())
