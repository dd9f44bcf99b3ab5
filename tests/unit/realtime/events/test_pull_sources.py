"""The per-node memory of which pull rooms a feed's subscribers join (pure, no store)."""

from __future__ import annotations

import asyncio

import pytest

from tidings.realtime.events.pull_sources import PullSources


class Store:
    """Stands for FeedService.pull_sources_of: counts its lookups and keeps the feeds of each;
    `gate` holds them open."""

    def __init__(self) -> None:
        self.answer = ["user:celeb"]
        self.batches: list[list[str]] = []
        self.gate: asyncio.Event | None = None

    @property
    def lookups(self) -> int:
        return len(self.batches)

    async def lookup(self, feeds: list[str]) -> dict[str, list[str]]:
        self.batches.append(list(feeds))
        answer = {feed: list(self.answer) for feed in feeds}
        if self.gate is not None:
            await self.gate.wait()
        return answer

    async def started(self, lookups: int = 1) -> None:
        """Until `lookups` lookups are out (each runs on a task of its own)."""
        for _ in range(100):
            if self.lookups >= lookups:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"{self.lookups} lookups started, expected {lookups}")


async def test_one_lookup_serves_many_subscribes_until_a_follow_changes() -> None:
    store = Store()
    cache = PullSources(store.lookup)
    for _ in range(100):
        assert await cache.get("timeline:a") == ("user:celeb",)
    assert store.lookups == 1
    store.answer = []
    cache.changed("timeline:b")  # another feed: a's answer stands
    assert await cache.get("timeline:a") == ("user:celeb",)
    cache.changed("timeline:a")
    assert await cache.get("timeline:a") == ()
    assert store.lookups == 2
    cache.clear()
    await cache.get("timeline:a")
    assert store.lookups == 3


async def test_a_lookup_that_raced_with_a_change_is_not_remembered() -> None:
    store = Store()
    cache = PullSources(store.lookup)
    store.gate = asyncio.Event()
    racing = asyncio.ensure_future(cache.get("timeline:a"))
    await store.started()
    store.answer = []
    cache.changed("timeline:a")  # while the lookup is out: its answer may be stale
    store.gate.set()
    assert await racing == ("user:celeb",)  # that subscribe uses it (the change follows it)...
    store.gate = None
    assert await cache.get("timeline:a") == ()  # ...but nobody after it
    assert store.lookups == 2


async def test_entries_expire_after_the_staleness_bound() -> None:
    """A change whose message was lost is seen once the entry is `ttl` old."""
    store = Store()
    cache = PullSources(store.lookup, ttl=0.05)
    assert await cache.get("timeline:a") == ("user:celeb",)
    store.answer = []  # no `changed`: the message never came
    assert await cache.get("timeline:a") == ("user:celeb",)
    await asyncio.sleep(0.06)
    assert await cache.get("timeline:a") == ()
    assert store.lookups == 2


async def test_concurrent_subscribes_share_one_lookup() -> None:
    store = Store()
    cache = PullSources(store.lookup)
    store.gate = asyncio.Event()
    waiting = [asyncio.ensure_future(cache.get("timeline:a")) for _ in range(100)]
    await store.started()
    waiting[0].cancel()  # one subscriber goes away: the others still get their answer
    store.gate.set()
    answers = await asyncio.gather(*waiting[1:])
    assert answers == [("user:celeb",)] * 99
    assert store.lookups == 1


async def test_subscribes_of_distinct_feeds_are_looked_up_together() -> None:
    """Feeds asked for in one turn go in one lookup; those asked for while `max_flights`
    lookups are out gather into the next one; every feed gets its own answer."""
    store = Store()
    cache = PullSources(store.lookup, max_flights=1, max_batch=3)
    store.gate = asyncio.Event()
    first = [asyncio.ensure_future(cache.get(f"timeline:{n}")) for n in range(5)]
    await store.started()
    assert store.batches == [["timeline:0", "timeline:1", "timeline:2"]]  # at most 3 a batch
    later = [asyncio.ensure_future(cache.get(f"timeline:{n}")) for n in range(3, 7)]
    await asyncio.sleep(0)
    assert store.lookups == 1  # one out at a time: the others wait for it
    store.gate.set()
    assert await asyncio.gather(*first, *later) == [("user:celeb",)] * 9
    assert store.batches[1:] == [["timeline:3", "timeline:4", "timeline:5"], ["timeline:6"]]


async def test_a_change_during_a_shared_lookup_starts_a_new_one_for_later_subscribes() -> None:
    store = Store()
    cache = PullSources(store.lookup)
    store.gate = asyncio.Event()
    early = asyncio.ensure_future(cache.get("timeline:a"))
    await store.started()
    store.answer = []
    cache.changed("timeline:a")
    later = asyncio.ensure_future(cache.get("timeline:a"))
    await store.started(2)
    store.gate.set()
    assert await early == ("user:celeb",)
    assert await later == ()
    assert store.lookups == 2
    store.gate = None
    assert await cache.get("timeline:a") == ()  # the later answer is remembered
    assert store.lookups == 2


async def test_a_failed_lookup_reaches_every_waiter_and_is_not_remembered() -> None:
    calls = 0

    async def failing(feeds: list[str]) -> dict[str, list[str]]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise ConnectionError("store down")

    cache = PullSources(failing)
    results = await asyncio.gather(
        *(cache.get(feed) for feed in ("timeline:a", "timeline:a", "timeline:b")),
        return_exceptions=True,
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    assert calls == 1
    with pytest.raises(ConnectionError):
        await cache.get("timeline:a")
    assert calls == 2
