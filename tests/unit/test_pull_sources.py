"""The per-node memory of which pull rooms a feed's subscribers join (pure, no store)."""

from __future__ import annotations

import asyncio

from server.realtime import pull_sources as module
from server.realtime.pull_sources import PullSources


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
    await asyncio.sleep(0)
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
