"""Delivers `feed.update` events to the Socket.IO rooms of feeds (the domain's Broadcaster)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import socketio

from ..domain.events import FEED_UPDATE
from .rooms import feed_room


class SocketIOBroadcaster:
    def __init__(self, sio: socketio.AsyncServer, realtime_groups: Collection[str]) -> None:
        self._sio = sio
        self._groups = frozenset(realtime_groups)

    async def feed_update(self, feeds: Sequence[str], event: dict[str, Any]) -> None:
        rooms = [feed_room(f) for f in feeds if f.partition(":")[0] in self._groups]
        if rooms:
            # One emit to a list of rooms: encoded once; a socket in several rooms gets it once.
            await self._sio.emit(FEED_UPDATE, event, to=rooms)
