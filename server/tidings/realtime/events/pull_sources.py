"""Which pull feeds' rooms a subscriber of a feed joins, remembered per node for a few seconds.

Many sockets subscribe to the same feed (a raid room, a live match, a reconnect storm after a
deploy): asking the store each time would cost two queries per subscribe. Every change of the
answer for a feed comes with a `FollowChanged` for that feed (a follow, an unfollow, a feed
switching between push and pull), which every node hears; it forgets that feed's entry at once.
Entries also expire after `TTL` seconds, and everything is forgotten when the bus comes back
from an outage or another node says it could not publish (follow changes may have been missed
meanwhile). A lookup that raced with a change is not remembered (the generation counter).

Subscribes of one feed that arrive while its lookup is out (10,000 sockets connecting to a raid
room at once) wait for that lookup instead of each starting its own: one query per feed, not
one per socket, until the answer is known.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

TTL = 10.0  # seconds an answer is trusted without a follows_changed
MAX_FEEDS = 10_000  # entries remembered; past that the cache starts afresh

Lookup = Callable[[], Awaitable[list[str]]]


class PullSources:
    """Cleared and changed by realtime/events/handlers.py, from the bus's messages."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._flights: dict[str, asyncio.Future[tuple[str, ...]]] = {}
        self._generation = 0

    async def get(self, feed: str, lookup: Lookup) -> tuple[str, ...]:
        known = self._known.get(feed)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        flight = self._flights.get(feed)
        if flight is None:
            flight = self._flights[feed] = asyncio.ensure_future(self._look_up(feed, lookup))
            flight.add_done_callback(_retrieve)
        # Shielded: a subscriber that goes away does not cancel the others' lookup.
        return await asyncio.shield(flight)

    async def _look_up(self, feed: str, lookup: Lookup) -> tuple[str, ...]:
        generation, started = self._generation, time.monotonic()
        try:
            found = tuple(await lookup())
        finally:
            if self._flights.get(feed) is asyncio.current_task():
                del self._flights[feed]
        if generation == self._generation:
            if len(self._known) >= MAX_FEEDS:
                self._known.clear()
            self._known[feed] = (started + TTL, found)
        return found

    def changed(self, feed: str) -> None:
        """The pull feeds `feed` brings changed: forget it; a lookup in flight serves those
        already waiting for it, nobody after them."""
        self._known.pop(feed, None)
        self._flights.pop(feed, None)
        self._generation += 1

    def clear(self) -> None:
        self._known.clear()
        self._flights.clear()
        self._generation += 1


def _retrieve(flight: asyncio.Future[tuple[str, ...]]) -> None:
    """Mark a failed lookup's error as seen: its waiters got it, or were all gone."""
    if not flight.cancelled():
        flight.exception()
