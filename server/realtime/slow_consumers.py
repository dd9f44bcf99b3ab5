"""Slow consumers: a socket that does not read must not grow the server's memory without bound.

Every `INTERVAL` seconds, each Engine.IO socket whose outgoing queue holds more than
`realtime.max_queue_packets` packets is dropped: its connection is aborted (it is not reading,
so a goodbye would only join the queue) and it recovers through `subscribe` with `since` when it
reconnects. Reads `engineio.AsyncServer.sockets` and each socket's `queue`, the one place where
Tidings looks inside python-engineio; tests/integration/test_many_nodes.py guards it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio

from ..metrics import SLOW_CONSUMERS

log = logging.getLogger(__name__)
INTERVAL = 1.0


async def watch_slow_consumers(sio: socketio.AsyncServer, limit: int) -> None:
    while True:
        await asyncio.sleep(INTERVAL)
        for eio_sid, socket in list(sio.eio.sockets.items()):
            queued = socket.queue.qsize()
            if queued > limit and not socket.closing:
                log.warning(
                    "disconnecting slow consumer %s: %d packets waiting (limit %d); it recovers "
                    "with `since` on reconnect", eio_sid, queued, limit,
                )  # fmt: skip
                SLOW_CONSUMERS.inc()
                await _drop(sio, eio_sid, socket)


async def _drop(sio: socketio.AsyncServer, eio_sid: str, socket: Any) -> None:
    environ = sio.environ.get(eio_sid) or {}
    request = environ.get("aiohttp.request")
    if request is not None and request.transport is not None:
        request.transport.abort()
    await socket.close(wait=False, abort=True, reason="slow consumer")
