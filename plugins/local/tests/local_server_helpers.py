"""Helpers of the file server's tests: raw requests (no client-side path
normalisation), an authorised httpx client, test data. (The module name is
unique across the plugins' test folders: pytest's importlib mode needs that.)"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx

HOSTILE = "hello? sausage/êé/Hello, 世界/ \" ' @ < > & ? + ≠/z.txt"


def pattern(size: int) -> bytes:
    block = bytes(range(256)) * 4
    return (block * (size // len(block) + 1))[:size]


def client(srv) -> httpx.Client:
    return httpx.Client(base_url=srv.url, headers=srv.auth, timeout=10)


def raw_request(url: str, head: bytes, body: bytes = b"", *, read: bool = True) -> int | None:
    """Send bytes as they are (no client-side path normalisation) and return the status."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + b"\r\n" + body)
        if not read:
            return None
        status_line = sock.makefile("rb").readline()
    return int(status_line.split()[1])


def auth_header(srv) -> bytes:
    return f"Authorization: Bearer {srv.token}\r\n".encode()


def no_partials(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if "ocs-server-partial" in p.name]
