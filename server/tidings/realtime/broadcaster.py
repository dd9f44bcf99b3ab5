"""Delivers `feed.update` events to the rooms of feeds (the domain's Broadcaster), on every node.

An event is encoded once, as a Socket.IO packet and as a WebSocket frame, published on Redis for
the other nodes and, at the same time, written to this node's fast sockets (hub.py) and, with one
`sio.emit`, to its python-socketio sockets; the other nodes deliver it to theirs the same way.
The emitting node delivers locally and directly, whether Redis is up or not, so a Redis outage
never stops local delivery.

Messages on the Redis channel: a JSON header line, then the packet as it goes on the wire:
    {"k": "emit", "n": NODE, "r": [ROOMS], "p": N}\\n42["feed.update",{"feed":,...}]
        (the packet without its feed id: `p` bytes, then the feed's JSON, then the rest)
    {"k": "follow", "n": NODE, "s": SOURCE, "t": TARGET, "f": true|false}\\n
    {"k": "resync", "n": NODE}\\n   (NODE could not publish some events: resync your sockets)
    {"k": "inval", "n": NODE, "ids": [IDS]}\\n   (these activities changed: forget them, see
        store/activity_cache.py; a resync clears the whole cache, invalidations were missed)
    {"k": "heads", "n": NODE, "feeds": [FEEDS]}\\n   (NODE wrote entries of these feeds: drop
        their heads, see store/feed_heads.py; a resync drops every head)
    {"k": "p.set" | "p.sync" | "p.gone", ...}\\n   (presence: see presence_link.py)
A node skips its own messages (it delivered them already).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from ..bus.pubsub import RESYNC, RedisLink
from ..domain.events import FEED_UPDATE
from ..feeds.reads import NoPulls
from ..metrics import BROADCAST_SECONDS
from ..store.memory.activity_cache import ActivityCache
from ..store.memory.feed_heads import FeedHeads
from .events.handlers import Handlers
from .transport import protocol as p
from .transport.hub import Hub
from .transport.rooms import feed_room, pull_room
from .transport.sio_peers import SioPeers

Counts = Callable[[Sequence[str]], Awaitable[dict[str, tuple[int, int]]]]


async def _no_counts(feeds: Sequence[str]) -> dict[str, tuple[int, int]]:
    return {}


class Broadcaster:
    def __init__(
        self, hub: Hub, sio_peers: SioPeers, handlers: Handlers, link: RedisLink | None,
        realtime_groups: Collection[str], node: str,
    ) -> None:  # fmt: skip
        self.hub, self.sio_peers, self.handlers, self.link = hub, sio_peers, handlers, link
        self._groups = frozenset(realtime_groups)
        self._notification: frozenset[str] = frozenset()
        self._counts: Counts = _no_counts
        self.node = node
        self.cache: ActivityCache | None = None
        self.heads: FeedHeads | None = None
        self.no_pulls: NoPulls | None = None
        if link is not None:
            link.on_message = self.on_message
            link.on_recovery = self.resync
            link.resync_request = json.dumps({"k": "resync", "n": node}).encode() + b"\n"

    def _realtime(self, feed: str) -> bool:
        return feed.partition(":")[0] in self._groups

    def count_groups(self, counts: Counts, notification_groups: Collection[str]) -> None:
        """Notification feeds' events carry `unseen` and `unread` (counts of groups, read by
        `counts(feeds)`, for all the feeds of one event at once, once they hold what the event
        announces)."""
        self._counts, self._notification = counts, frozenset(notification_groups)

    async def feed_update(self, feeds: Sequence[str], event: dict[str, Any]) -> None:
        realtime = [f for f in feeds if self._realtime(f)]
        counted = [f for f in realtime if f.partition(":")[0] in self._notification]
        rooms = [feed_room(f) for f in realtime if f not in counted]
        if rooms:  # one packet for all the rooms: a socket in several of them gets it once
            await self._emit(rooms, event)
        counts = await self._counts(counted) if counted else {}
        for feed in counted:  # counts are per feed: an event of its own (one feed per room)
            unseen, unread = counts.get(feed, (0, 0))
            await self._emit([feed_room(feed)], {**event, "unseen": unseen, "unread": unread})

    def keep_current(self, cache: ActivityCache, heads: FeedHeads, no_pulls: NoPulls) -> None:
        """Invalidations of `cache` and the feeds written for `heads` go to every node; theirs
        come here, and follow changes reach `no_pulls` (a resync clears all three)."""
        self.cache, self.heads, self.no_pulls = cache, heads, no_pulls
        cache.on_invalidate = self.invalidate
        heads.on_drop = self.drop_heads

    async def drop_heads(self, feeds: list[str]) -> None:
        """This node wrote entries of `feeds`: the other nodes drop their heads."""
        await self._publish({"k": "heads", "n": self.node, "feeds": feeds}, b"")

    async def invalidate(self, ids: list[str]) -> None:
        """Activities changed on this node (forgotten here already): the others forget them."""
        await self._publish({"k": "inval", "n": self.node, "ids": ids}, b"")

    async def pull_update(self, feed: str, event: dict[str, Any]) -> None:
        if self._realtime(feed):
            await self._emit([pull_room(feed)], event)

    async def follows_changed(self, source: str, target: str, following: bool) -> None:
        self.handlers.follows_changed(source, target, following)
        if self.no_pulls is not None:
            self.no_pulls.changed(source)
        header = {"k": "follow", "n": self.node, "s": source, "t": target, "f": following}
        await self._publish(header, b"")

    async def _emit(self, rooms: list[str], event: dict[str, Any]) -> None:
        frames = p.FeedFrames.of(FEED_UPDATE, event)
        header = {"k": "emit", "n": self.node, "r": rooms, "p": len(frames.prefix)}
        if self.link is None:
            await self.deliver(rooms, frames, event)
            return
        # Published first, so that the other nodes write to their sockets while this one writes
        # to its own; local delivery does not wait for Redis (down: publish returns at once).
        publishing = asyncio.ensure_future(self._publish(header, frames.prefix + frames.suffix))
        try:
            await self.deliver(rooms, frames, event)
        finally:
            await publishing

    async def deliver(
        self, rooms: Sequence[str], frames: p.FeedFrames, data: dict[str, Any] | None = None
    ) -> None:
        """Write the event to this node's sockets in `rooms`, each time naming the feed the
        socket subscribed to (hub.py)."""
        started = time.perf_counter()
        others = await self.hub.broadcast(rooms, frames)
        if others:
            if data is None:
                _, data = p.event_data(frames.packet("").decode())
            await self.sio_peers.deliver(others, FEED_UPDATE, data)
        BROADCAST_SECONDS.observe(time.perf_counter() - started)

    async def _publish(self, header: dict[str, Any], body: bytes) -> None:
        if self.link is not None:
            await self.link.publish(json.dumps(header).encode() + b"\n" + body)

    async def on_message(self, raw: bytes) -> None:
        """A message from Redis: another node's emit or follow change, for this node's sockets."""
        line, _, body = raw.partition(b"\n")
        header = json.loads(line)
        if not isinstance(header, dict) or header.get("n") == self.node:
            return
        if header.get("k") == "emit":
            split = int(header["p"])
            frames = p.FeedFrames(body[:split], body[split:])
            await self.deliver([str(room) for room in header["r"]], frames)
        elif header.get("k") == "follow":
            self.handlers.follows_changed(str(header["s"]), str(header["t"]), bool(header["f"]))
            if self.no_pulls is not None:
                self.no_pulls.changed(str(header["s"]))
        elif header.get("k") == "heads":
            if self.heads is not None:
                self.heads.drop([str(f) for f in header["feeds"]])
        elif header.get("k") == "inval":
            if self.cache is not None:
                self.cache.forget([str(i) for i in header["ids"]])
        elif header.get("k") == "resync":  # that node could not publish some of its events
            await self.resync()
        elif str(header.get("k")).startswith("p.") and self.handlers.presence is not None:
            self.handlers.presence.remote(header)  # presence_link.py's messages

    async def resync(self) -> None:
        """Tell every socket of this node to re-subscribe with `since` (after a Redis outage).
        Follow changes published meanwhile were missed too: the pull-source cache starts afresh."""
        self.handlers.pull_sources.clear()
        if self.cache is not None:
            self.cache.clear()
        if self.heads is not None:
            self.heads.clear()
        if self.no_pulls is not None:
            self.no_pulls.clear()
        frame = p.text_frame(p.event(RESYNC, {"reason": "redis"}))
        for conn in list(self.hub.conns.values()):
            if conn.grant is not None:
                self.hub.send(conn, frame)
        await self.sio_peers.emit_all(RESYNC, {"reason": "redis"})
