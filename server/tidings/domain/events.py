"""The `feed.update` event: the shape of Stream's real-time messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from .ids import format_time

FEED_UPDATE = "feed.update"
RESYNC = "resync"  # tells a socket to re-subscribe with `since`: it may have missed events


def feed_update(
    feed: str,
    new: Sequence[dict[str, Any]] = (),
    deleted: Sequence[str] = (),
    deleted_foreign_ids: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "feed": feed,
        "new": list(new),
        "deleted": list(deleted),
        "deleted_foreign_ids": list(deleted_foreign_ids),
        "published_at": format_time(datetime.now(UTC)),
    }


def marked(
    event: dict[str, Any], mark_seen: bool | Sequence[str], mark_read: bool | Sequence[str]
) -> dict[str, Any]:
    """A notification feed's event after a mark, with the marks as Stream's realtime messages
    name them: `mark_seen` / `mark_read`, `"all"` or the group ids marked."""
    for name, mark in (("mark_seen", mark_seen), ("mark_read", mark_read)):
        if mark:
            event[name] = "all" if mark is True else list(mark)
    return event


class Broadcaster(Protocol):
    """Delivers events to the sockets subscribed to feeds (realtime/ implements it).

    Called only after every listed feed durably holds what the event announces. One call sends
    the event to the subscribers of all `feeds`, each time with its `feed` set to the feed the
    socket subscribed to (as Stream's channels do): a socket subscribed to several of them gets
    one event per feed. Delivery is at most once per call: a socket that misses it recovers
    through `subscribe` with `since`."""

    async def feed_update(self, feeds: Sequence[str], event: dict[str, Any]) -> None: ...

    async def pull_update(self, feed: str, event: dict[str, Any]) -> None:
        """An update of a *pull* feed (too many followers to copy into): to the sockets
        subscribed to `feed` itself or to any feed that follows it, wherever they are
        connected, one event per such subscribed feed, naming it. Called once `feed` holds
        the activity: readers of follower feeds merge it in at read time, so they hold it
        too."""
        ...

    async def reaction_event(
        self, activity_id: str, name: str, data: dict[str, Any], version: int
    ) -> None:
        """A reaction event (`reaction.added`, ...) to the sockets watching `activity_id`'s
        reactions, wherever they are connected; called once the store holds the write.
        `version`: that of the counts in `data["reaction_counts"]`: a node that sent newer
        counts of the activity to its sockets already sends those instead."""
        ...

    async def follows_changed(self, source: str, target: str, following: bool) -> None:
        """`source` now follows (or no longer follows) the pull feed `target`: on every node,
        the sockets subscribed to `source` start (or stop) receiving `target`'s pull updates."""
        ...
