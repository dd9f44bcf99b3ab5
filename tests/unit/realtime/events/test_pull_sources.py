"""The per-node memory of which pull rooms a feed's subscribers join (pure, no store)."""

from __future__ import annotations

import asyncio

from tidings.realtime.events import pull_sources as module
from tidings.realtime.events.pull_sources import PullSources


class Store:
    """Stands for FeedService.pull_sources: counts its lookups; `gate` holds one open."""

    def __init__(self) -> None:
        self.answer = ["user:celeb"]
        self.lookups = 0
        self.gate: asyncio.Event | None = None

    async def lookup(self) -> list[str]:
        self.lookups += 1
        answer = list(self.answer)
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
    cache, store = PullSources(), Store()
    for _ in range(100):
        assert await cache.get("timeline:a", store.lookup) == ("user:celeb",)
    assert store.lookups == 1
    store.answer = []
    cache.changed("timeline:b")  # another feed: a's answer stands
    assert await cache.get("timeline:a", store.lookup) == ("user:celeb",)
    cache.changed("timeline:a")
    assert await cache.get("timeline:a", store.lookup) == ()
    assert store.lookups == 2
    cache.clear()
    await cache.get("timeline:a", store.lookup)
    assert store.lookups == 3


async def test_a_lookup_that_raced_with_a_change_is_not_remembered() -> None:
    cache, store = PullSources(), Store()
    store.gate = asyncio.Event()
    racing = asyncio.ensure_future(cache.get("timeline:a", store.lookup))
    await store.started()
    store.answer = []
    cache.changed("timeline:a")  # while the lookup is out: its answer may be stale
    store.gate.set()
    assert await racing == ("user:celeb",)  # that subscribe uses it (the change follows it)...
    store.gate = None
    assert await cache.get("timeline:a", store.lookup) == ()  # ...but nobody after it
    assert store.lookups == 2


async def test_entries_expire() -> None:
    cache, store = PullSources(), Store()
    module.TTL, ttl = 0.0, module.TTL
    try:
        await cache.get("timeline:a", store.lookup)
        await cache.get("timeline:a", store.lookup)
    finally:
        module.TTL = ttl
    assert store.lookups == 2


async def test_concurrent_subscribes_share_one_lookup() -> None:
    cache, store = PullSources(), Store()
    store.gate = asyncio.Event()
    waiting = [asyncio.ensure_future(cache.get("timeline:a", store.lookup)) for _ in range(100)]
    await store.started()
    waiting[0].cancel()  # one subscriber goes away: the others still get their answer
    store.gate.set()
    answers = await asyncio.gather(*waiting[1:])
    assert answers == [("user:celeb",)] * 99
    assert store.lookups == 1


async def test_a_change_during_a_shared_lookup_starts_a_new_one_for_later_subscribes() -> None:
    cache, store = PullSources(), Store()
    store.gate = asyncio.Event()
    early = asyncio.ensure_future(cache.get("timeline:a", store.lookup))
    await store.started()
    store.answer = []
    cache.changed("timeline:a")
    later = asyncio.ensure_future(cache.get("timeline:a", store.lookup))
    await store.started(2)
    store.gate.set()
    assert await early == ("user:celeb",)
    assert await later == ()
    assert store.lookups == 2
    store.gate = None
    assert await cache.get("timeline:a", store.lookup) == ()  # the later answer is remembered
    assert store.lookups == 2


async def test_a_failed_lookup_reaches_every_waiter_and_is_not_remembered() -> None:
    cache = PullSources()
    calls = 0

    async def failing() -> list[str]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise ConnectionError("store down")

    results = await asyncio.gather(
        *(cache.get("timeline:a", failing) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    assert calls == 1
    await asyncio.gather(cache.get("timeline:a", failing), return_exceptions=True)
    assert calls == 2
