"""The one place that names Socket.IO rooms."""

from __future__ import annotations


def feed_room(feed: str) -> str:
    """The room of the sockets subscribed to a feed (`timeline:bob`)."""
    return f"feed:{feed}"
