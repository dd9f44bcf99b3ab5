"""Delivers `feed.update` events to the rooms of feeds (the domain's Broadcaster), on every node.

An event is encoded once, as a Socket.IO packet and as a WebSocket frame, and published on the
bus as an `Emit` (bus/messages.py): this node writes it to its fast sockets (hub.py) and, with
one `sio.emit`, to its python-socketio sockets while the other nodes do the same with theirs.
The emitting node delivers locally whether the bus is up or not, so a Redis outage never stops
local delivery.

From the bus, beside the emits: `Resync` (a node could not publish some of its events: the
sockets of the rooms named re-subscribe with `since`), and `LinkUp` after an outage of this
node's own link (every socket of this node resyncs). Follow changes go out as `FollowChanged`.

Peers of the rooms that are neither fast sockets nor python-socketio's (Faye clients,
realtime/faye/) get the event, and the resync, through their own `Outlet`, once per feed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from ..bus.base import Bus
from ..bus.messages import Emit, FollowChanged, LinkUp, ReactionEmit, Resync
from ..domain.events import FEED_UPDATE, RESYNC
from ..domain.reactions import SentCounts, Summary
from ..metrics import BROADCAST_SECONDS
from .transport import protocol as p
from .transport.hub import FastConn, Hub
from .transport.peers import Peer
from .transport.rooms import feed_room, pull_room, reactions_room
from .transport.sio_peers import SioPeers

Counts = Callable[[Sequence[str]], Awaitable[dict[str, tuple[int, int]]]]


class Broadcaster:
    def __init__(
        self, hub: Hub, sio_peers: SioPeers, bus: Bus, realtime_groups: Collection[str],
        notification_groups: Collection[str], counts: Counts, sent_counts: SentCounts,
    ) -> None:  # fmt: skip
        """Notification feeds' events carry `unseen` and `unread`: `counts(feeds)` reads them
        for all the feeds of one event at once (merged groups too), once they hold what the
        event announces. `sent_counts`: the reactions' counts this node sent (shared with the
        acks of reaction watches)."""
        self.hub, self.sio_peers, self.bus = hub, sio_peers, bus
        self._groups = frozenset(realtime_groups)
        self._notification = frozenset(notification_groups)
        self._counts = counts
        self.sent_counts = sent_counts  # the newest counts sent of each activity's reactions
        bus.on(Emit, self._delivered)
        bus.on(ReactionEmit, self.deliver_to_watchers)
        bus.on(Resync, lambda m: self.resync_sockets(None if m.rooms is None else set(m.rooms)))
        bus.on(LinkUp, lambda m: self.resync_sockets() if m.after_outage else None)

    def _realtime(self, feed: str) -> bool:
        return feed.partition(":")[0] in self._groups

    async def feed_update(self, feeds: Sequence[str], event: dict[str, Any]) -> None:
        realtime = [f for f in feeds if self._realtime(f)]
        counted = [f for f in realtime if f.partition(":")[0] in self._notification]
        rooms = [feed_room(f) for f in realtime if f not in counted]
        if rooms:  # one packet for all the rooms: a socket in several of them gets it once
            await self._emit(rooms, event)
        counts = await self._counts(counted) if counted else {}
        # Counts are per feed: one event for the feeds of equal counts (a fanout batch's feeds
        # have a few distinct ones), which the hub writes once per feed a socket subscribed to.
        alike: dict[tuple[int, int], list[str]] = {}
        for feed in counted:
            alike.setdefault(counts.get(feed, (0, 0)), []).append(feed_room(feed))
        for (unseen, unread), same in alike.items():
            await self._emit(same, {**event, "unseen": unseen, "unread": unread})

    async def pull_update(self, feed: str, event: dict[str, Any]) -> None:
        if self._realtime(feed):
            await self._emit([pull_room(feed)], event)

    async def follows_changed(self, source: str, target: str, following: bool) -> None:
        """On every node: the sockets of `source` join (leave) `target`'s pull room, and the
        caches of what `source` follows forget it."""
        await self.bus.publish(FollowChanged(source, target, following), [feed_room(source)])

    async def reaction_event(
        self, activity_id: str, name: str, data: dict[str, Any], version: int
    ) -> None:
        """A reaction event to the sockets watching `activity_id`'s reactions, on every node
        (one room: no fanout to the feeds that hold the activity)."""
        rooms = [reactions_room(activity_id)]
        await self.bus.publish(ReactionEmit(rooms, name, data, version), rooms)

    async def deliver_to_watchers(self, emit: ReactionEmit) -> None:
        """Write a reaction event to this node's sockets in its rooms, fast or not, with its
        counts or newer ones this node sent already (by version: events of racing writes,
        from this node or others, arrive in any order). No await between choosing the counts
        and writing the frame to the fast sockets; the bus calls this as it publishes on the
        node that writes (before it first suspends) and as messages arrive on the others, so
        what a node sends of an activity never goes back."""
        data = emit.data
        activity_id, counts = str(data["activity_id"]), data["reaction_counts"]
        newest = self.sent_counts.newest(activity_id, Summary(emit.version, counts))
        if newest != counts:
            data = {**data, "reaction_counts": newest}
        peers = self.hub.recipients(emit.rooms)
        if not peers:
            return
        name = emit.name
        frame = p.text_frame(p.event(name, data))
        for peer in peers:
            if isinstance(peer, FastConn):
                self.hub.send(peer, frame)
            elif peer.outlet is not None:
                await peer.outlet.emit(peer, name, data)

    async def _emit(self, rooms: list[str], event: dict[str, Any]) -> None:
        frames = p.FeedFrames.of(FEED_UPDATE, event)
        body = frames.prefix + frames.suffix
        await self.bus.publish(Emit(rooms, len(frames.prefix), body, event), rooms)

    async def _delivered(self, emit: Emit) -> None:
        frames = p.FeedFrames(emit.body[: emit.split], emit.body[emit.split :])
        await self.deliver(emit.rooms, frames, emit.event)

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
            sio = [(peer, feed) for peer, feed in others if peer.outlet is self.sio_peers]
            if sio:
                await self.sio_peers.deliver(sio, FEED_UPDATE, data)
            if len(sio) < len(others):  # peers of another transport (Faye), through its outlet
                for peer, feed in others:
                    if peer.outlet is not self.sio_peers and peer.outlet is not None:
                        await peer.outlet.emit(peer, FEED_UPDATE, {**data, "feed": feed})
        BROADCAST_SECONDS.observe(time.perf_counter() - started)

    async def resync_sockets(self, rooms: Collection[str] | None = None) -> None:
        """Tell the sockets of this node in `rooms` (None: every one) to re-subscribe with
        `since`: events to them may have been missed."""
        data = {"reason": "redis"}
        frame = p.text_frame(p.event(RESYNC, data))
        for peer in self.hub.recipients(self.hub if rooms is None else rooms):
            outlet = peer.outlet  # peers of another transport (Faye) resync their own way
            if not peer.fast and outlet is not None and outlet is not self.sio_peers:
                await outlet.emit(peer, RESYNC, data)
        if rooms is None:
            for conn in list(self.hub.conns.values()):
                if conn.grant is not None:
                    self.hub.send(conn, frame)
            await self.sio_peers.emit_all(RESYNC, data)
            return
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
