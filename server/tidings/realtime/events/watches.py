"""`reaction.watch` and `reaction.unwatch`: sockets that hear an activity's reactions live.

A watcher is in the activity's reactions room (transport/rooms.py), one room per activity on
every node, so a reaction event reaches its watchers without any fanout to the feeds that hold
the activity. Reading an activity's reactions is what the REST filter allows any user or server
token, so a socket may watch any stored activity when its token is a user token or one for
reactions on every feed (a server token); a token scoped to one feed is refused. `since` (a
reaction id the socket saw) answers what changed after it: the recovery log is the reactions
collection itself, so hard-deleted reactions are told only by the counts.
"""

from __future__ import annotations

from typing import Any

from ...bus.base import Bus
from ...config import Settings
from ...domain.errors import InputError, NotAllowedError
from ...domain.ids import lookup_id
from ...domain.reactions import SentCounts, new_reaction_id
from ...feeds.reactions import Reactions
from ..transport.dispatch import Ack
from ..transport.peers import Peer, Rooms
from ..transport.rooms import is_reactions_room, reactions_room
from .handlers import Event, grant_of, payload

MAX_WATCHES = 100  # activities one socket watches at once


class Watches:
    def __init__(
        self, settings: Settings, reactions: Reactions, rooms: Rooms, sent: SentCounts,
        bus: Bus,
    ) -> None:  # fmt: skip
        """`bus`: a watch returns once the events of its room reach this node."""
        self._max_missed = settings.realtime.max_missed
        self._reactions, self.rooms, self._bus = reactions, rooms, bus
        self._sent = sent  # the counts this node sent of each activity (the broadcaster's)

    def events(self) -> dict[str, Event]:
        """The socket events of reaction watching, for the handlers."""
        return {"reaction.watch": self.watch, "reaction.unwatch": self.unwatch}

    async def watch(self, peer: Peer, data: Any) -> Ack:
        data = payload(data, "{activity_id, since?}")
        activity_id = _activity_id(data)
        grant = grant_of(peer)
        if grant.user_id is None and not grant.app_wide("reactions", "read"):
            raise NotAllowedError(
                "watching reactions needs a user token or a server token for reactions"
            )
        since = data.get("since")
        if since is not None:
            since = lookup_id(since) if isinstance(since, str) else None
            if since is None:
                raise InputError("since must be a reaction id", {"since": ["not a UUID"]})
        room = reactions_room(activity_id)
        watched = sum(1 for r in peer.rooms if is_reactions_room(r))
        if room not in peer.rooms and watched >= MAX_WATCHES:
            raise InputError(
                f"a socket watches at most {MAX_WATCHES} activities; unwatch one first",
                {"activity_id": [f"at most {MAX_WATCHES} watched"]},
            )
        await self._reactions.require_activity(activity_id)
        # Join first, then read: a reaction stored in between comes both in `missed` and as an
        # event (clients dedupe by id) rather than in neither.
        if peer.grant is not None:  # else it disconnected meanwhile, leaving every room
            self.rooms.join(peer, room)
            await self._bus.heard([room])
        # Every change after `cursor` (a reaction id of now) reaches the socket live: it is a
        # `since` for a watch again when no reaction newer than it came.
        ack: Ack = {"ok": True, "activity_id": activity_id, "missed": [], "more": False,
                    "cursor": new_reaction_id()}  # fmt: skip
        if since is not None:
            missed = await self._reactions.changed_since(activity_id, since, self._max_missed)
            # Counts this node sends of the activity from now on are never older than these.
            counts = self._sent.newest(activity_id, missed.counts)
            ack.update(missed=missed.reactions, more=missed.more, reaction_counts=counts)
        return ack

    async def unwatch(self, peer: Peer, data: Any) -> Ack:
        activity_id = _activity_id(payload(data, "{activity_id}"))
        self.rooms.leave(peer, reactions_room(activity_id))
        return {"ok": True}


def _activity_id(data: dict[str, Any]) -> str:
    value = data.get("activity_id")
    if not isinstance(value, str) or lookup_id(value) is None:
        raise InputError("activity_id must be an activity id", {"activity_id": ["not an id"]})
    return value
