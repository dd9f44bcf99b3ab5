"""Slow consumers among python-socketio's sockets (long-polling and upgraded connections).

The fast WebSocket path bounds its queues itself (hub.py). python-engineio has no public bound
on a socket's outgoing queue, so for its sockets this watch looks every `INTERVAL` seconds at
`engineio.AsyncServer.sockets` and each socket's `queue` (an `asyncio.Queue` of Engine.IO
packets): one holding more than `realtime.max_queue_packets` packets, or more than
`realtime.max_queue_bytes` bytes of them, is dropped (its connection aborted; it recovers
through `subscribe` with `since`). The bytes are read from the queue's own deque (asyncio has no
public way to look into a queue); where that is missing, only packets are counted.

The watch never stops: an error (a python-engineio upgrade that changed these attributes, a
socket closing under it) is logged with its traceback once, until a look succeeds again, and it
keeps looking; delivery is not affected either way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...metrics import SLOW_CONSUMERS
from .sio import Server

log = logging.getLogger(__name__)
INTERVAL = 1.0


async def watch_slow_consumers(sio: Server, max_packets: int, max_bytes: int = 1 << 62) -> None:
    failing = False
    while True:
        await asyncio.sleep(INTERVAL)
        try:
            await check(sio, max_packets, max_bytes)
        except Exception:
            if not failing:
                log.exception("slow-consumer watch of python-socketio sockets failed (it "
                              "keeps watching; logged once until it works again)")  # fmt: skip
            failing = True
        else:
            if failing:
                log.warning("slow-consumer watch of python-socketio sockets works again")
            failing = False


async def check(sio: Server, max_packets: int, max_bytes: int) -> None:
    """One look at every python-socketio socket: drop those over a bound."""
    for eio_sid, socket in list(sio.eio.sockets.items()):
        if socket.closing or socket.closed:
            continue
        packets, size = queued(socket.queue)
        if packets > max_packets or size > max_bytes:
            log.warning(
                "disconnecting slow consumer %s: %d packets, %d bytes waiting (limits %d, %d);"
                " it recovers with `since` on reconnect", eio_sid, packets, size, max_packets,
                max_bytes,
            )  # fmt: skip
            SLOW_CONSUMERS.inc()
            await _drop(sio, eio_sid, socket)


def queued(queue: asyncio.Queue[Any]) -> tuple[int, int]:
    """(packets, bytes) waiting in a python-engineio socket's queue."""
    items = getattr(queue, "_queue", None)
    if items is None:
        return queue.qsize(), 0
    size = 0
    for pkt in list(items):
        data = getattr(pkt, "data", None)
        if isinstance(data, str | bytes):
            size += len(data)
    return len(items), size


async def _drop(sio: Server, eio_sid: str, socket: Any) -> None:
    environ = sio.environ.get(eio_sid) or {}
    request = environ.get("aiohttp.request")
    if request is not None and request.transport is not None:
        request.transport.abort()
    await socket.close(wait=False, abort=True, reason="slow consumer")
