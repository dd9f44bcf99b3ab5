"""Engine.IO v4 heartbeat of the fast path: one timer for every connection, no task per socket.

The server pings (`2`) and the client answers (`3`). The connections are spread over `slices`
ticks of one second, so a node with 100k sockets pings a few thousand at a time, not all at
once. When a connection's turn comes, it is pinged every `ping_interval` seconds; one that has not
answered the previous ping by then is dead and its transport is aborted (the client, which
expects a ping within `pingInterval + pingTimeout`, reconnects on its own side anyway).
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from .hub import FastConn, Hub
from .protocol import PING, text_frame

log = logging.getLogger(__name__)
TICK = 1.0  # seconds between two ticks
PING_FRAME = text_frame(PING)


class Heartbeat:
    def __init__(self, hub: Hub, ping_interval: float) -> None:
        self.hub = hub
        self.slices = max(1, round(ping_interval / TICK))
        self._next_slot = itertools.cycle(range(self.slices))
        self._tick = 0
        self._timer: asyncio.TimerHandle | None = None

    def assign(self, conn: FastConn) -> None:
        """Give a new connection its turn (round robin: the slices stay even)."""
        conn.slot = next(self._next_slot)

    def start(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(TICK, self._beat)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _beat(self) -> None:
        slot = self._tick % self.slices
        self._tick += 1
        hub = self.hub
        try:
            for conn in list(hub.conns.values()):
                if conn.slot != slot:
                    continue
                if not conn.alive:
                    log.info("closing socket %s: no pong to the last ping", conn.sid)
                    hub.abort(conn)
                    continue
                conn.alive = False
                hub.send(conn, PING_FRAME)
        finally:
            self._timer = asyncio.get_running_loop().call_later(TICK, self._beat)
