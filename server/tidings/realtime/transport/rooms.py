"""The one place that names Socket.IO rooms."""

from __future__ import annotations

FEED_PREFIX = "feed:"
PULL_PREFIX = "pull:"
REACTIONS_PREFIX = "reactions:"


def feed_room(feed: str) -> str:
    """The room of the sockets subscribed to a feed (`timeline:bob`)."""
    return FEED_PREFIX + feed


def pull_room(feed: str) -> str:
    """The room of the sockets that get the updates of a pull feed: the subscribers of the feed
    and of every feed that follows it."""
    return PULL_PREFIX + feed


def room_feed(room: str) -> str | None:
    """The feed a room is for, or None for the rooms that are not feed rooms (the sid's own)."""
    return room.removeprefix(FEED_PREFIX) if room.startswith(FEED_PREFIX) else None


def reactions_room(activity_id: str) -> str:
    """The room of the sockets watching an activity's reactions (`reaction.watch`)."""
    return REACTIONS_PREFIX + activity_id


def is_reactions_room(room: str) -> bool:
    return room.startswith(REACTIONS_PREFIX)
