"""Slow consumers among python-socketio's sockets (long-polling and upgraded connections).

The fast WebSocket path bounds its queues itself (hub.py). python-engineio has no public bound
on a socket's outgoing queue, so for its sockets this watch looks every `INTERVAL` seconds at
`engineio.AsyncServer.sockets` and each socket's `queue`: one holding more than
`realtime.max_queue_packets` packets is dropped (its connection aborted; it recovers through
`subscribe` with `since`). Should a python-engineio upgrade change those attributes, the watch
says so once in the log and stops; delivery is not affected.
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
        try:
            sockets = list(sio.eio.sockets.items())
            for eio_sid, socket in sockets:
                queued = socket.queue.qsize()
                if queued > limit and not socket.closing:
                    log.warning(
                        "disconnecting slow consumer %s: %d packets waiting (limit %d); it "
                        "recovers with `since` on reconnect", eio_sid, queued, limit,
                    )  # fmt: skip
                    SLOW_CONSUMERS.inc()
                    await _drop(sio, eio_sid, socket)
        except AttributeError as exc:
            log.error("slow-consumer watch of python-socketio sockets stopped: %s", exc)
            return


async def _drop(sio: socketio.AsyncServer, eio_sid: str, socket: Any) -> None:
    environ = sio.environ.get(eio_sid) or {}
    request = environ.get("aiohttp.request")
    if request is not None and request.transport is not None:
        request.transport.abort()
    await socket.close(wait=False, abort=True, reason="slow consumer")
