"""Which pull feeds' rooms a subscriber of a feed joins, remembered per node for a few seconds.

Many sockets subscribe to the same feed (a raid room, a live match, a reconnect storm after a
deploy): asking the store each time would cost two queries per subscribe. Every change of the
answer for a feed comes with a `follows_changed` for that feed (a follow, an unfollow, a feed
switching between push and pull), which every node hears; it forgets that feed's entry at once.
Entries also expire after `TTL` seconds, and everything is forgotten when the Redis link comes
back from an outage (follow changes may have been missed meanwhile). A lookup that raced with a
change is not remembered (the generation counter).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

TTL = 10.0  # seconds an answer is trusted without a follows_changed
MAX_FEEDS = 10_000  # entries remembered; past that the cache starts afresh

Lookup = Callable[[], Awaitable[list[str]]]


class PullSources:
    def __init__(self) -> None:
        self._known: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._generation = 0

    async def get(self, feed: str, lookup: Lookup) -> tuple[str, ...]:
        known = self._known.get(feed)
        now = time.monotonic()
        if known is not None and known[0] > now:
            return known[1]
        generation = self._generation
        found = tuple(await lookup())
        if generation == self._generation:
            if len(self._known) >= MAX_FEEDS:
                self._known.clear()
            self._known[feed] = (now + TTL, found)
        return found

    def changed(self, feed: str) -> None:
        """The pull feeds `feed` brings changed: forget it (and any lookup in flight)."""
        self._known.pop(feed, None)
        self._generation += 1

    def clear(self) -> None:
        self._known.clear()
        self._generation += 1
