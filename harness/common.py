"""What every launcher shares: the repository root, the test app's key and secret, tokens,
free ports and bounded waits."""

from __future__ import annotations

import ctypes
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import jwt

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key"
API_SECRET = "test-secret-0123456789abcdef-0123456789"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn`: the child gets SIGTERM when its parent dies, even by kill -9 (Linux)."""
    return _die_with_parent if sys.platform == "linux" else None


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), 0.2):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05,
    what: str = "condition",
) -> T:  # fmt: skip
    """`predicate()` once it answers something truthy; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def token(claims: dict[str, Any], secret: str = API_SECRET) -> str:
    """A JWT signed with the test app's secret (HS256, as Stream's SDKs sign)."""
    return jwt.encode(claims, secret, algorithm="HS256")


SERVER_CLAIMS: dict[str, Any] = {"resource": "*", "action": "*", "feed_id": "*"}
SERVER_TOKEN = token(SERVER_CLAIMS)
