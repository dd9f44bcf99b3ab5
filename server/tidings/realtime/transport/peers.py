"""Connected sockets (peers) and the rooms they are in, whatever carries them.

One registry of rooms for every socket of a node: the fast WebSocket path's connections and
python-socketio's (long-polling and upgraded) sockets alike, so that subscribe, unsubscribe,
pull rooms and delivery have one implementation. A peer is a small `__slots__` object; the rooms
it is in are a tuple (it is in few rooms; joins are rare, lookups by room are the hot path).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from ...auth import Grant
from .rate import TokenBucket
from .rooms import room_feed


class Outlet(Protocol):
    """How to reach one peer of a transport (the transport that made it)."""

    async def emit(self, peer: Peer, event: str, data: Any) -> None: ...

    async def disconnect(self, peer: Peer) -> None: ...


class RoomInterest(Protocol):
    """Told when this node's first peer joins a room and when its last one leaves (the bus,
    which routes a room's events to the nodes that hold it)."""

    def opened(self, room: str) -> None: ...

    def closed(self, room: str) -> None: ...


class Peer:
    """One connected socket of namespace "/". `grant` is None until the Socket.IO connect.
    `outlet`: the transport that reaches it (None only for a peer no transport serves)."""

    __slots__ = ("address", "bucket", "grant", "in_flight", "outlet", "pulls", "rooms", "sid")
    fast = False  # written to directly by the hub (True) or through python-socketio (False)

    def __init__(self, sid: str, outlet: Outlet | None = None, address: str | None = None) -> None:
        """`address`: the client's, as the rate limits count it (None: unknown)."""
        self.sid = sid
        self.outlet = outlet
        self.address = address
        self.grant: Grant | None = None
        self.rooms: tuple[str, ...] = ()
        # pull room -> the subscribed feeds that bring it (None while there is none: the usual)
        self.pulls: dict[str, set[str]] | None = None
        self.in_flight = 0  # its events being handled now (Handlers.handle bounds them)
        self.bucket: TokenBucket | None = None  # its publish rate bound, made at the first one

    def feeds(self) -> list[str]:
        """The feeds this socket is subscribed to."""
        return [feed for feed in map(room_feed, self.rooms) if feed is not None]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.sid}>"


class Rooms:
    """room name -> the peers in it. Synchronous: a membership change never awaits. `interest`
    is told when a room gets its first peer and loses its last (the bus routes its events)."""

    def __init__(self, interest: RoomInterest | None = None) -> None:
        self._rooms: dict[str, set[Peer]] = {}
        self._interest = interest

    def join(self, peer: Peer, room: str) -> None:
        if room in peer.rooms:
            return
        room = sys.intern(room)  # one string per room, however many sockets hold it
        members = self._rooms.get(room)
        if members is None:
            members = self._rooms[room] = set()
            if self._interest is not None:
                self._interest.opened(room)
        members.add(peer)
        peer.rooms = (*peer.rooms, room)

    def leave(self, peer: Peer, room: str) -> None:
        if room not in peer.rooms:
            return
        peer.rooms = tuple(r for r in peer.rooms if r != room)
        members = self._rooms.get(room)
        if members is not None:
            members.discard(peer)
            if not members:
                del self._rooms[room]
                if self._interest is not None:
                    self._interest.closed(room)

    def leave_all(self, peer: Peer) -> None:
        for room in peer.rooms:
            self.leave(peer, room)
        peer.pulls = None

    def members(self, room: str) -> frozenset[Peer] | set[Peer]:
        return self._rooms.get(room) or frozenset()

    def recipients(self, rooms: Iterable[str]) -> list[Peer]:
        """Every peer in any of `rooms`, once (a snapshot: later changes do not affect it)."""
        found = [self._rooms[r] for r in rooms if r in self._rooms]
        if not found:
            return []
        if len(found) == 1:
            return list(found[0])
        return list(set().union(*found))

    def __iter__(self) -> Iterator[str]:
        return iter(self._rooms)

    def __len__(self) -> int:
        return len(self._rooms)

    # ----------------------------------------------------------------- pull rooms (ref counts)

    def add_pull(self, peer: Peer, room: str, feed: str) -> None:
        """`feed` (subscribed by `peer`) follows the pull feed of `room`: join it."""
        if peer.pulls is None:
            peer.pulls = {}
        peer.pulls.setdefault(room, set()).add(feed)
        self.join(peer, room)

    def drop_pull(self, peer: Peer, room: str, feed: str) -> None:
        """`feed` no longer brings `room` to `peer`: leave it when no other subscribed feed does."""
        if peer.pulls is None or room not in peer.pulls:
            return
        feeds = peer.pulls[room]
        feeds.discard(feed)
        if not feeds:
            del peer.pulls[room]
            self.leave(peer, room)
            if not peer.pulls:
                peer.pulls = None

    def drop_feed_pulls(self, peer: Peer, feed: str) -> None:
        """`peer` unsubscribed from `feed`: the pull rooms only it brought are left."""
        for room in list(peer.pulls or ()):
            self.drop_pull(peer, room, feed)
