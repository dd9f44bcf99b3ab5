"""Presence in raid rooms: who is in the room of each feed whose group
has `presence = true`, on every node.

A socket whose token names a `user_id` and that subscribes to such a feed is a member (with the
`info` of `subscribe {feed, presence: {info}}`). This node keeps its own members (`_local`: the
sockets of each user in each room) and a `View` of the whole cluster; every change of this
node's share of a member goes to the other nodes through Redis (link.py), and each
node tells its own sockets in the room `presence.join` when a user's first socket joins
anywhere and `presence.leave` when the last one leaves, reading that off its view. Presence
costs no store writes.

Without Redis (or while it is down) presence is this node's: after `presence_ttl` seconds of
outage the members of the other nodes leave, and they join again once Redis is back and every
node has republished its members.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from ...auth import Grant
from ...bus.base import Bus
from ...bus.messages import PresenceGone, PresenceSet, PresenceSync
from ...bus.redis_bus import RedisBus
from ...domain.errors import InputError
from ...domain.feeds import USER_ID_RE, FeedId
from ...metrics import PRESENCE_MEMBERS
from ..transport.outlets import RoomEvents
from ..transport.peers import Peer
from ..transport.rooms import feed_room
from .link import PresenceLink
from .view import JOIN, Change, Entry, Key, Member, View

log = logging.getLogger(__name__)
PRESENCE_JOIN, PRESENCE_LEAVE = "presence.join", "presence.leave"
MAX_PAGE = 1000  # most members of one `presence` answer
DEFAULT_PAGE = 100


@dataclass
class LocalMember:
    """One user's sockets in one room on this node, each with the info it joined with: the
    member shows the earliest one's that is still connected."""

    since: float
    peers: dict[Peer, Any] = field(default_factory=dict)

    @property
    def info(self) -> Any:
        return next(iter(self.peers.values()), None)


class Presence:
    def __init__(
        self,
        node: str,
        groups: Collection[str],
        ttl: float,
        info_bytes: int,
        events: RoomEvents,
        bus: Bus,
    ) -> None:
        """`bus`: the other nodes; on Redis, presence spans them (link.py), else it is this
        node's."""
        self.node = node
        self.groups = frozenset(groups)  # the feed groups with presence
        self.ttl, self.info_bytes = ttl, info_bytes
        self.events = events
        self.view = View()
        self.link = PresenceLink(self, bus) if isinstance(bus, RedisBus) else None
        self._local: dict[Key, LocalMember] = {}
        self._by_peer: dict[Peer, dict[str, str]] = {}  # peer -> feed -> user_id

    def start(self) -> None:
        if self.link is not None:
            self.link.start()

    async def close(self) -> None:
        """A clean stop: this node's members leave every node at once."""
        if self.link is not None:
            await self.link.close()

    def enabled(self, feed: FeedId) -> bool:
        return feed.group in self.groups

    @property
    def state(self) -> str:
        """`cluster` while presence spans the nodes (Redis up), else `local`."""
        return "cluster" if self.link is not None and self.link.up else "local"

    # --------------------------------------------------------------------- this node's sockets

    def member_of(self, grant: Grant, feed: FeedId, raw: Any) -> tuple[str, Any] | None:
        """Who a subscribe of `feed` makes a member, with which info (`raw` is the subscribe's
        `presence`); None when it makes none (no presence in the group, no user in the token).
        Raises InputError for a bad or oversize info, before anything is joined (a group
        without presence ignores it)."""
        if not self.enabled(feed):
            return None
        if raw is not None and not isinstance(raw, dict):
            raise InputError("presence must be an object {info}", {"presence": ["not an object"]})
        info = (raw or {}).get("info")
        if info is not None:
            if not isinstance(info, dict):
                raise InputError(
                    "presence.info must be an object", {"presence.info": ["not an object"]}
                )
            size = len(json.dumps(info, separators=(",", ":")).encode())
            if size > self.info_bytes:
                raise InputError(
                    f"presence.info is {size} bytes of JSON, more than the {self.info_bytes} "
                    "allowed",
                    {"presence.info": [f"larger than {self.info_bytes} bytes"]},
                )
        user_id = grant.user_id
        if user_id is None or not USER_ID_RE.match(user_id):
            return None
        return user_id, info

    def join(self, peer: Peer, feed: str, user_id: str, info: Any) -> None:
        feeds = self._by_peer.setdefault(peer, {})
        if feed in feeds:  # subscribed again: still one connection
            return
        feeds[feed] = user_id
        local = self._local.get((feed, user_id))
        if local is None:
            local = self._local[(feed, user_id)] = LocalMember(time.time())
        local.peers[peer] = info
        self._changed(feed, user_id)

    def leave(self, peer: Peer, feed: str) -> None:
        feeds = self._by_peer.get(peer)
        user_id = feeds.pop(feed, None) if feeds is not None else None
        if feeds is not None and not feeds:
            del self._by_peer[peer]
        if user_id is None:
            return
        local = self._local.get((feed, user_id))
        if local is not None:
            local.peers.pop(peer, None)
            if not local.peers:
                del self._local[(feed, user_id)]
        self._changed(feed, user_id)

    def forget(self, peer: Peer) -> None:
        """The socket is gone: it leaves every room it was a member of."""
        for feed in list(self._by_peer.get(peer, ())):
            self.leave(peer, feed)

    def _changed(self, feed: str, user_id: str) -> None:
        local = self._local.get((feed, user_id))
        entry = None if local is None else Entry(local.info, len(local.peers), local.since)
        self._announce(self.view.put(self.node, feed, user_id, entry))
        PRESENCE_MEMBERS.set(len(self._local))
        if self.link is not None:
            self.link.set(feed, user_id, entry)

    def local_entries(self) -> dict[Key, Entry]:
        return dict(self.view.entries_of(self.node))

    # ----------------------------------------------------------------------- the other nodes

    def remote_set(self, message: PresenceSet) -> None:
        entry = None if message.entry is None else Entry.of(message.entry)
        self._announce(self.view.put(message.node, message.feed, message.user_id, entry))

    def remote_sync(self, message: PresenceSync) -> None:
        entries = {(str(f), str(u)): Entry.of(rest) for f, u, *rest in message.members}
        for change in self.view.replace_node(message.node, entries):
            self._announce(change)
        if message.ask and self.link is not None:
            self.link.sync()  # it asks: tell it (and all) what this node has

    def remote_gone(self, message: PresenceGone) -> None:
        if message.gone != self.node:
            self.node_gone(message.gone)
            return
        log.warning(
            "presence: another node claimed this one dead (it did not refresh within the TTL): "
            "registering and republishing its members"
        )  # declared dead while alive: come back
        if self.link is not None:
            self.link.rejoin()

    def node_gone(self, node: str) -> None:
        for change in self.view.drop_node(node):
            self._announce(change)

    def isolate(self) -> None:
        """Redis has been down for a TTL: the members of the other nodes leave."""
        for node in self.view.nodes() - {self.node}:
            self.node_gone(node)

    def _announce(self, change: Change | None) -> None:
        if change is None:
            return
        room = feed_room(change.feed)
        if change.kind == JOIN:
            data = {"feed": change.feed, "user_id": change.user_id, "info": change.info}
            self.events.send(room, PRESENCE_JOIN, data)
        else:
            self.events.send(room, PRESENCE_LEAVE, {"feed": change.feed, "user_id": change.user_id})

    # -------------------------------------------------------------------------------- listing

    def page(
        self, feed: str, limit: int, cursor: str | None
    ) -> tuple[int, list[Member], str | None]:
        members, following = self.view.page(feed, limit, cursor)
        return self.view.count(feed), members, following
