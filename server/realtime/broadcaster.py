"""Delivers `feed.update` events to the Socket.IO rooms of feeds (the domain's Broadcaster)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import socketio

from ..domain.events import FEED_UPDATE
from .rooms import feed_room, pull_room


class SocketIOBroadcaster:
    def __init__(self, sio: socketio.AsyncServer, realtime_groups: Collection[str]) -> None:
        self._sio = sio
        self._groups = frozenset(realtime_groups)

    async def feed_update(self, feeds: Sequence[str], event: dict[str, Any]) -> None:
        rooms = [feed_room(f) for f in feeds if f.partition(":")[0] in self._groups]
        if rooms:
            # One emit to a list of rooms: encoded once; a socket in several rooms gets it once.
            await self._sio.emit(FEED_UPDATE, event, to=rooms)

    async def pull_update(self, feed: str, event: dict[str, Any]) -> None:
        if feed.partition(":")[0] in self._groups:
            await self._sio.emit(FEED_UPDATE, event, to=pull_room(feed))

    async def follows_changed(self, source: str, target: str, following: bool) -> None:
        # This node's sockets only, for now; cross-node comes with the realtime rework.
        room = pull_room(target)
        for sid, _ in list(self._sio.manager.get_participants("/", feed_room(source))):
            if following:
                await self._sio.enter_room(sid, room)
            else:
                await self._sio.leave_room(sid, room)
