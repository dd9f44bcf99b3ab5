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
    {"k": "resync", "n": NODE, "r": [ROOMS]?}\\n   (NODE could not publish some events to these
        rooms: resync your sockets in them; every socket without "r")
    {"k": "inval", "n": NODE, "ids": [IDS]}\\n   (these activities changed: forget them, see
        store/activity_cache.py)
    {"k": "heads", "n": NODE, "feeds": [FEEDS]}\\n   (NODE wrote entries of these feeds: drop
        their heads, see store/feed_heads.py)
    {"k": "p.set" | "p.sync" | "p.gone", ...}\\n   (presence: see presence_link.py)
A node skips its own messages (it delivered them already).

`inval` and `heads` make the caches current as fast as Redis carries them; the caches never
depend on them (what memory may answer is bounded by when it was read), so losing one owes
nobody a resync. After this node's own link was down, nothing it read before is trusted
(`distrust`, each time the link is subscribed again) and its sockets resync.
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
from .transport.peers import Peer
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
            link.on_linked = self.distrust
            link.resync_request = self._resync_request

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
        await self._publish({"k": "heads", "n": self.node, "feeds": feeds}, b"", ())

    async def invalidate(self, ids: list[str]) -> None:
        """Activities changed on this node (forgotten here already): the others forget them."""
        await self._publish({"k": "inval", "n": self.node, "ids": ids}, b"", ())

    async def pull_update(self, feed: str, event: dict[str, Any]) -> None:
        if self._realtime(feed):
            await self._emit([pull_room(feed)], event)

    async def follows_changed(self, source: str, target: str, following: bool) -> None:
        self.handlers.follows_changed(source, target, following)
        if self.no_pulls is not None:
            self.no_pulls.changed(source)
        header = {"k": "follow", "n": self.node, "s": source, "t": target, "f": following}
        await self._publish(header, b"", [feed_room(source)])

    async def _emit(self, rooms: list[str], event: dict[str, Any]) -> None:
        frames = p.FeedFrames.of(FEED_UPDATE, event)
        header = {"k": "emit", "n": self.node, "r": rooms, "p": len(frames.prefix)}
        if self.link is None:
            await self.deliver(rooms, frames, event)
            return
        # Published first, so that the other nodes write to their sockets while this one writes
        # to its own; local delivery does not wait for Redis (down: publish returns at once).
        publishing = asyncio.ensure_future(
            self._publish(header, frames.prefix + frames.suffix, rooms)
        )
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

    async def _publish(
        self, header: dict[str, Any], body: bytes, rooms: Collection[str] | None
    ) -> None:
        """`rooms`: whose sockets must resync when the other nodes miss it."""
        if self.link is not None:
            await self.link.publish(json.dumps(header).encode() + b"\n" + body, rooms)

    def _resync_request(self, rooms: list[str] | None) -> bytes:
        header: dict[str, Any] = {"k": "resync", "n": self.node}
        if rooms is not None:
            header["r"] = rooms
        return json.dumps(header).encode() + b"\n"

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
            rooms = header.get("r")
            await self.resync_sockets(None if rooms is None else {str(r) for r in rooms})
        elif str(header.get("k")).startswith("p.") and self.handlers.presence is not None:
            self.handlers.presence.remote(header)  # presence_link.py's messages

    async def distrust(self) -> None:
        """The link is subscribed (again): what this node read before may have missed drops
        and invalidations, so none of it answers without being read again."""
        if self.cache is not None:
            self.cache.distrust()
        if self.heads is not None:
            self.heads.distrust()
        if self.no_pulls is not None:
            self.no_pulls.clear()

    async def resync(self) -> None:
        """After this node's Redis outage: tell every socket of this node to re-subscribe with
        `since`; nothing read before is trusted."""
        await self.distrust()
        await self.resync_sockets()

    async def resync_sockets(self, rooms: Collection[str] | None = None) -> None:
        """Tell the sockets of this node in `rooms` (None: every one) to re-subscribe with
        `since` (another node could not publish some of its events to them). Follow changes
        published meanwhile may have been missed too: the pull-source cache starts afresh."""
        self.handlers.pull_sources.clear()
        data = {"reason": "redis"}
        if rooms is None:
            frame = p.text_frame(p.event(RESYNC, data))
            for conn in list(self.hub.conns.values()):
                if conn.grant is not None:
                    self.hub.send(conn, frame)
            await self.sio_peers.emit_all(RESYNC, data)
            return
        frame = p.text_frame(p.event(RESYNC, data))
        for conn in list(self.hub.conns.values()):
            if conn.grant is not None and _in_rooms(conn, rooms):
                self.hub.send(conn, frame)
        for peer in list(self.sio_peers.peers.values()):
            if peer.grant is not None and _in_rooms(peer, rooms):
                await self.sio_peers.emit(peer, RESYNC, data)


def _in_rooms(peer: Peer, rooms: Collection[str]) -> bool:
    """Whether the socket gets the events of one of `rooms` (its feeds' and pull rooms)."""
    return any(r in rooms for r in peer.rooms) or bool(
        peer.pulls and any(r in rooms for r in peer.pulls)
    )
