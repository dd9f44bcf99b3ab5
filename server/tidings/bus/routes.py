"""Which rooms' events reach this node: one Redis channel per room, subscribed while the node
holds a socket in the room.

With one channel for every event, each node receives and decodes every event of the cluster,
whether it holds a socket for it or not: N nodes do N times the work per event. Routed, an event
for a few rooms (`max_rooms` or fewer: a feed's own subscribers, a raid room, an activity's
reaction watchers) is published on the channel of each of its rooms, and Redis hands it only to
the nodes subscribed there. An event for more rooms (a fanout batch naming many follower feeds)
still goes once on the bus channel, to every node: one message there costs each node less than
many, and most nodes hold some of its rooms anyway.

Redis is the registry: once it confirmed a node's SUBSCRIBE to a room's channel, every event
published there after reaches the node. A subscribe (or a reaction watch) so waits for that
confirmation (`heard`) before it reads what the socket missed (`since`), as it joins its room
before reading: an event stored meanwhile comes in both, never in neither. The channels share
the bus channel's hash tag, so that on a Redis Cluster they live on its shard and one connection
(the listener's) hears them all.

A room left by its last socket stays subscribed for LINGER_SECONDS, so that a client that
reconnects at once (a deploy, a flaky network) does not cost two round trips; then it is
unsubscribed, many at once. While the link is down nothing is subscribed: the listener
subscribes every room held when it is back, and every socket resyncs (bus/redis_bus.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence

from ..metrics import ROUTED_ROOMS
from ..runtime.background import spawn
from .messages import Message
from .redis_client import Subscription

log = logging.getLogger(__name__)
LINGER_SECONDS = 10.0  # a room left by its last socket is unsubscribed after this long
CONFIRM_TIMEOUT = 2.0  # seconds `heard` waits for Redis; past it the link is dead (redis_bus)
BATCH = 1000  # channels of one SUBSCRIBE or UNSUBSCRIBE command


class Routes:
    """The rooms this node hears on their own channels, and their subscriptions on the current
    link (`attach`ed by the listener, `detach`ed when it dies)."""

    def __init__(self, channel: str, max_rooms: int) -> None:
        """`max_rooms`: the most rooms of an event sent room by room (0: every event goes on
        the bus channel, to every node, as without routing)."""
        self.max_rooms = max_rooms
        self._prefix = f"{{{channel}}}:room:"
        self._wanted: set[str] = set()  # rooms with a socket of this node
        self._lingering: dict[str, float] = {}  # room -> when its last socket left (monotonic)
        self._subscribed: set[str] = set()  # rooms subscribed (or being) on the current link
        self._confirming: dict[bytes, asyncio.Future[None]] = {}  # channel -> its confirmation
        self._leaving: set[bytes] = set()  # channels unsubscribed, not yet confirmed
        self._late: dict[bytes, str] = {}  # channel -> its room, confirmed after `heard` gave up
        self._queued: list[str] = []  # rooms to subscribe at the next flush
        self._subscription: Subscription | None = None
        self.broken = False  # a subscription failed on this link: the listener starts afresh

    @property
    def enabled(self) -> bool:
        return self.max_rooms > 0

    def channel(self, room: str) -> str:
        return self._prefix + room

    def split(self, message: Message) -> Sequence[str] | None:
        """The rooms to publish `message` to one by one, or None to publish it on the bus
        channel."""
        if not self.enabled or not message.ROUTED:
            return None
        rooms: Sequence[str] = getattr(message, "rooms")  # noqa: B009 (ROUTED: it has rooms)
        return rooms if len(rooms) <= self.max_rooms else None

    # ------------------------------------------------------------- what the sockets hold

    def opened(self, room: str) -> None:
        if not self.enabled:
            return
        self._wanted.add(room)
        self._lingering.pop(room, None)
        if self._subscription is not None and room not in self._subscribed:
            self._queue(room)

    def closed(self, room: str) -> None:
        if self.enabled and room in self._wanted:
            self._wanted.discard(room)
            self._lingering[room] = time.monotonic()

    async def heard(self, rooms: Iterable[str]) -> None:
        """Return once the events of `rooms` reach this node (at once while the link is down:
        the sockets resync when it is back). Bounded by CONFIRM_TIMEOUT: a room whose
        confirmation comes later is `late`, and its sockets resync then (`confirmed`)."""
        waits = {self._key(room): room for room in rooms}
        futures = {k: f for k in waits if (f := self._confirming.get(k)) is not None}
        if not futures:
            return
        await asyncio.wait(futures.values(), timeout=CONFIRM_TIMEOUT)
        for key, future in futures.items():
            if not future.done():
                log.warning("Redis had not confirmed the subscription to %s within %s s",
                            waits[key], CONFIRM_TIMEOUT)  # fmt: skip
                self._late[key] = waits[key]

    # ------------------------------------------------------------------- the listener's

    def attach(self, subscription: Subscription) -> None:
        """The listener subscribed to the bus channel on a new link: subscribe every room held."""
        self._subscription = subscription
        self.broken = False
        self._lingering.clear()
        for room in self._wanted:
            self._queue(room)

    def detach(self) -> None:
        """The link died: nothing is subscribed any more; whoever waits returns."""
        self._subscription = None
        self._subscribed.clear()
        self._leaving.clear()
        self._late.clear()  # every socket resyncs after the outage
        self._queued.clear()
        for future in self._confirming.values():
            if not future.done():
                future.set_result(None)
        self._confirming.clear()
        ROUTED_ROOMS.set(0)

    def confirmed(self, channel: bytes) -> str | None:
        """Redis confirmed a subscription: the room whose sockets must resync now, if a
        subscribe stopped waiting for it (it read `since` before events reached the node)."""
        future = self._confirming.pop(channel, None)
        if future is not None and not future.done():
            future.set_result(None)
        return self._late.pop(channel, None)

    def left(self, channel: bytes) -> bool:
        """Whether Redis ended `channel`'s subscription because this node asked (False: Redis
        ended it on its own, as when a cluster moved the slot)."""
        if channel in self._leaving:
            self._leaving.discard(channel)
            return True
        return False

    async def sweep(self) -> None:
        """Unsubscribe the rooms left longer than LINGER_SECONDS ago (the listener calls it
        between messages)."""
        subscription = self._subscription
        if subscription is None or not self._lingering:
            return
        horizon = time.monotonic() - LINGER_SECONDS
        gone = [room for room, at in self._lingering.items() if at < horizon]
        for room in gone:
            del self._lingering[room]
        rooms = [room for room in gone if room in self._subscribed]
        for room in rooms:
            self._subscribed.discard(room)
            self._leaving.add(self._key(room))
        ROUTED_ROOMS.set(len(self._subscribed))
        for start in range(0, len(rooms), BATCH):
            await subscription.remove([self.channel(r) for r in rooms[start : start + BATCH]])

    # ----------------------------------------------------------------------- internals

    def _key(self, room: str) -> bytes:
        return self.channel(room).encode()

    def _queue(self, room: str) -> None:
        loop = asyncio.get_running_loop()
        self._subscribed.add(room)
        self._confirming[self._key(room)] = loop.create_future()
        if not self._queued:
            spawn(self._flush())
        self._queued.append(room)

    async def _flush(self) -> None:
        """Subscribe the rooms queued in this turn of the event loop, in few commands (a
        connect storm opens thousands of rooms at once). An error means the link died: the
        listener finds out and starts again."""
        await asyncio.sleep(0)
        rooms, self._queued = self._queued, []
        subscription = self._subscription
        ROUTED_ROOMS.set(len(self._subscribed))
        if subscription is None:
            return
        try:
            for start in range(0, len(rooms), BATCH):
                await subscription.add([self.channel(r) for r in rooms[start : start + BATCH]])
        except Exception as exc:  # the listener starts the link again, and subscribes them
            log.warning("could not subscribe to %d rooms' channels: %r", len(rooms), exc)
            self.broken = True
