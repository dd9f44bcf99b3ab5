"""Which feeds someone is watching, on any node: the order of a push (fanout/runner.py writes
them first).

A feed is active when a socket of this node is subscribed to it (the hub's feed rooms: every
transport's sockets), when it was read on this node within `fanout.active_seconds`
(store/memory/recent_reads.py), or when another node said so within that time. With Redis,
each node tells the others through one sorted set, `<redis.channel>:active`: feed -> the last
time (unix seconds) a node saw it active. Every PUBLISH_SECONDS a node adds what became active
on it since (feeds newly subscribed or read), and again every third of `active_seconds` the
feeds its sockets still watch; entries older than `active_seconds` are swept out. A question
about a window of follower feeds is one ZMSCORE, bounded by ASK_TIMEOUT.

All of it is a hint: a lost write, an outage or a slow Redis changes only the order in which
follower feeds are written, never what they hold or whether their events go.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from redis.exceptions import RedisError

from ..bus.redis_bus import RedisBus
from ..store.memory.recent_reads import RecentReads
from .transport.peers import Rooms
from .transport.rooms import feed_room, room_feed

log = logging.getLogger(__name__)
PUBLISH_SECONDS = 1.0
ASK_TIMEOUT = 0.25  # seconds a fanout waits for the answer; past it: this node's view alone


class WatchedFeeds:
    """The ActiveFeeds port (domain/ports.py) of a node: its own sockets and reads, and, with
    Redis, the other nodes'."""

    def __init__(
        self, rooms: Rooms, reads: RecentReads, link: RedisBus | None, channel: str,
        seconds: float,
    ) -> None:  # fmt: skip
        self.rooms, self.reads, self.link, self.seconds = rooms, reads, link, seconds
        self.key = f"{channel}:active"
        self._told: dict[str, float] = {}  # watched feed -> when it was last written (monotonic)
        self._last = float("-inf")  # reads after this were not written yet (monotonic)
        self._swept = float("-inf")

    def here(self, feed: str) -> bool:
        """Active on this node."""
        return bool(self.rooms.members(feed_room(feed))) or feed in self.reads

    async def active(self, feeds: Sequence[str]) -> set[str]:
        found = {feed for feed in feeds if self.here(feed)}
        rest = [feed for feed in feeds if feed not in found]
        if not rest or self.link is None or not self.link.up:
            return found
        try:
            async with asyncio.timeout(ASK_TIMEOUT):
                scores = await self.link.client().zmscore(self.key, rest)
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("could not ask which feeds are active: %r", exc)
            return found
        horizon = time.time() - self.seconds
        found.update(f for f, s in zip(rest, scores, strict=True) if s is not None and s > horizon)
        return found

    async def publish(self) -> None:
        """Tell the other nodes what became active here since the last time (and, every third
        of `seconds`, what is still watched); sweep out what nobody saw for `seconds`."""
        if self.link is None or not self.link.up:
            return
        now, wall = time.monotonic(), time.time()
        watched = {feed for feed in map(room_feed, list(self.rooms)) if feed is not None}
        refresh = now - self.seconds / 3
        due = {feed for feed in watched if self._told.get(feed, float("-inf")) < refresh}
        due.update(self.reads.since(self._last))
        sweep = self._swept < refresh
        if not due and not sweep:
            return
        pipe = self.link.client().pipeline(transaction=False)
        if due:
            pipe.zadd(self.key, dict.fromkeys(due, wall))
        if sweep:
            pipe.zremrangebyscore(self.key, "-inf", wall - self.seconds)
        await pipe.execute()
        # Written: feeds no longer watched are forgotten (a socket coming back tells at once).
        self._told = {f: t for f, t in self._told.items() if f in watched}
        self._told.update((feed, now) for feed in due if feed in watched)
        self._last = now
        if sweep:
            self._swept = now

    async def run(self) -> None:
        """Publish every PUBLISH_SECONDS until cancelled (nothing to do without Redis)."""
        if self.link is None:
            return
        while True:
            try:
                await self.publish()
            except (RedisError, OSError) as exc:  # the bus says when Redis is down
                log.debug("could not tell which feeds are active: %r", exc)
            except Exception:  # a bug: the order suffers, the loop goes on
                log.exception("cannot tell the other nodes which feeds are active")
            await asyncio.sleep(PUBLISH_SECONDS)
