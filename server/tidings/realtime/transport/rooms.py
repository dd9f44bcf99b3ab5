"""The one place that names Socket.IO rooms."""

from __future__ import annotations

FEED_PREFIX = "feed:"
PULL_PREFIX = "pull:"


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
