"""Sending one event to a room of this node's sockets, on both transports."""

from __future__ import annotations

from collections import deque
from typing import Any

from ...runtime.background import spawn
from . import protocol as p
from .hub import FastConn, Hub
from .sio import Server


class RoomEvents:
    """Events to this node's sockets of one room, in order: the fast path's written at once
    (one frame for all), python-socketio's through one task (one emit per event)."""

    def __init__(self, hub: Hub, sio: Server) -> None:
        self.hub, self.sio = hub, sio
        self._queue: deque[tuple[str, Any, list[str]]] = deque()
        self._sending = False

    def send(self, room: str, event: str, data: Any) -> None:
        frame: bytes | None = None
        sids: list[str] = []
        for peer in list(self.hub.members(room)):
            if isinstance(peer, FastConn):
                frame = frame or p.text_frame(p.event(event, data))
                self.hub.send(peer, frame)
            else:
                sids.append(peer.sid)
        if sids:
            self._queue.append((event, data, sids))
            if not self._sending:
                self._sending = True
                spawn(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                event, data, sids = self._queue.popleft()
                await self.sio.emit(event, data, to=sids)
        finally:
            self._sending = False
