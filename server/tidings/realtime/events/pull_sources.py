"""Which pull feeds' rooms a subscriber of a feed joins, remembered per node for a few seconds,
and looked up for many feeds at once.

Many sockets subscribe to the same feed (a raid room, a live match): asking the store each time
would cost two queries per subscribe. Every change of the answer for a feed comes with a
`FollowChanged` for that feed (a follow, an unfollow, a feed switching between push and pull),
which every node hears; it forgets that feed's entry at once. Entries also expire after `ttl`
seconds (`cache.max_staleness_seconds`: what a lost message may cost), and everything is
forgotten when the bus comes back from an outage or another node says it could not publish
(follow changes may have been missed meanwhile). A lookup that raced with a change is not
remembered (the generation counter).

Subscribes of one feed that arrive while its lookup is out wait for that lookup instead of each
starting its own. Subscribes of *different* feeds (a connect storm after a deploy: every socket
on its own timeline) are looked up together: the feeds asked for in one turn of the event loop
go in one batch (`lookup(feeds)`: one `$in` query per collection), and while `MAX_FLIGHTS`
batches are out, the feeds asked for meanwhile gather into the next one. A storm is so answered
by a few large queries instead of thousands of small ones, and a lone subscribe still starts its
lookup at the next turn of the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from ...store.memory.coalesce import fail_waiters

TTL = 2.0  # seconds an answer is trusted without a follows_changed (max_staleness_seconds)
MAX_FEEDS = 10_000  # entries remembered; past that the cache starts afresh
MAX_BATCH = 1000  # feeds of one lookup
MAX_FLIGHTS = 2  # lookups out at once; feeds asked for meanwhile wait for the next one

Sources = tuple[str, ...]
Lookup = Callable[[list[str]], Awaitable[dict[str, list[str]]]]


class _Batch:
    __slots__ = ("feeds", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.feeds: dict[str, None] = {}  # in the order asked, once each
        self.future: asyncio.Future[dict[str, list[str]]] = loop.create_future()


class PullSources:
    """Cleared and changed by realtime/events/handlers.py, from the bus's messages. `lookup`
    answers the pull sources of many feeds (FeedService.pull_sources_of): every feed asked for
    has an entry, perhaps empty."""

    def __init__(
        self, lookup: Lookup, ttl: float = TTL, max_batch: int = MAX_BATCH,
        max_flights: int = MAX_FLIGHTS,
    ) -> None:  # fmt: skip
        self._lookup = lookup
        self.ttl, self.max_batch, self.max_flights = ttl, max_batch, max_flights
        self._known: dict[str, tuple[float, Sources]] = {}
        self._pending: dict[str, _Batch] = {}  # feed -> the batch that will answer it
        self._queue: deque[_Batch] = deque()  # batches not started yet; the last one open
        self._flights: set[asyncio.Task[None]] = set()
        self._generation = 0
        self.lookups = 0  # batches looked up (what a test or a benchmark counts)

    async def get(self, feed: str) -> Sources:
        known = self._known.get(feed)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        batch = self._pending.get(feed)
        if batch is None:
            batch = self._pending[feed] = self._open()
            batch.feeds[feed] = None
        # Shielded: a subscriber that goes away does not cancel the others' lookup.
        found = await asyncio.shield(batch.future)
        return tuple(found.get(feed, ()))

    def _open(self) -> _Batch:
        """The batch new feeds join: the last one queued while it has room, else a new one."""
        if self._queue and len(self._queue[-1].feeds) < self.max_batch:
            return self._queue[-1]
        loop = asyncio.get_running_loop()
        batch = _Batch(loop)
        self._queue.append(batch)
        if len(self._queue) == 1:
            loop.call_soon(self._pump)  # the feeds of this turn of the loop join it first
        return batch

    def _pump(self) -> None:
        while self._queue and len(self._flights) < self.max_flights:
            task = asyncio.ensure_future(self._run(self._queue.popleft()))
            self._flights.add(task)
            task.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._flights.discard(task)
        self._pump()

    async def _run(self, batch: _Batch) -> None:
        generation, started = self._generation, time.monotonic()
        self.lookups += 1
        try:
            found = await self._lookup(list(batch.feeds))
        except BaseException as exc:
            fail_waiters(batch.future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        else:
            if generation == self._generation:
                if len(self._known) + len(batch.feeds) > MAX_FEEDS:
                    self._known.clear()
                until = started + self.ttl
                for feed in batch.feeds:
                    self._known[feed] = (until, tuple(found.get(feed, ())))
            if not batch.future.done():
                batch.future.set_result(found)
        finally:
            for feed in batch.feeds:
                if self._pending.get(feed) is batch:
                    del self._pending[feed]

    def changed(self, feed: str) -> None:
        """The pull feeds `feed` brings changed: forget it; a lookup in flight serves those
        already waiting for it, nobody after them."""
        self._known.pop(feed, None)
        self._pending.pop(feed, None)
        self._generation += 1

    def clear(self) -> None:
        self._known.clear()
        self._pending.clear()
        self._generation += 1
