"""Per-tick coalescing of lookups (store/coalesce.py) and the activity cache's bounds and
generations (store/activity_cache.py): pure, no store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection

import pytest

from tidings.bus.base import LocalBus
from tidings.bus.messages import Forget, Message
from tidings.store.memory.activity_cache import ActivityCache, measured
from tidings.store.memory.coalesce import Coalescer


class Source:
    """Stands for one `$in` query: records the keys of each call; `gate` holds them open."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = fail
        self.asked = asyncio.Event()

    async def fetch(self, keys: list[str]) -> dict[str, str]:
        self.calls.append(keys)
        self.asked.set()
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("store down")
        return {k: k.upper() for k in keys if not k.startswith("missing")}


async def test_one_query_per_tick_for_every_waiter() -> None:
    source = Source()
    batcher = Coalescer(source.fetch)
    answers = await asyncio.gather(
        *(batcher.get_many([f"a{i}", f"a{i + 1}", "missing"]) for i in range(50))
    )
    assert len(source.calls) == 1
    assert sorted(source.calls[0]) == sorted({f"a{i}" for i in range(51)} | {"missing"})
    assert answers[3] == {"a3": "A3", "a4": "A4"}  # in the order asked, missing ones left out


async def test_batches_are_bounded() -> None:
    source = Source()
    batcher = Coalescer(source.fetch, max_keys=10)
    found = await batcher.get_many([f"k{i}" for i in range(25)])
    assert len(found) == 25
    assert [len(c) for c in source.calls] == [10, 10, 5]


async def test_a_cancelled_waiter_does_not_cancel_the_others() -> None:
    source = Source()
    source.gate.clear()
    batcher = Coalescer(source.fetch)
    gone = asyncio.ensure_future(batcher.get("x"))
    staying = asyncio.ensure_future(batcher.get("x"))
    await source.asked.wait()
    gone.cancel()
    await asyncio.sleep(0)
    source.gate.set()
    assert await staying == "X"
    assert gone.cancelled()
    assert len(source.calls) == 1


async def test_a_failed_query_fails_every_waiter_and_the_next_tick_asks_again() -> None:
    source = Source(fail=True)
    batcher = Coalescer(source.fetch)
    results = await asyncio.gather(batcher.get("a"), batcher.get("b"), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    source.fail = False
    assert await batcher.get("a") == "A"
    assert len(source.calls) == 2


async def test_close_cancels_queries_in_flight() -> None:
    source = Source()
    source.gate.clear()
    batcher = Coalescer(source.fetch)
    waiter = asyncio.ensure_future(batcher.get("a"))
    await source.asked.wait()
    await batcher.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter


def test_cache_is_bounded_by_bytes_least_recently_used_out() -> None:
    cache = ActivityCache(max_bytes=1600)
    now = time.monotonic()
    cache.put_many(((f"a{i}", {"n": i}, 100) for i in range(16)), cache.generation, now)
    assert len(cache) == 16 and cache.bytes == 1600
    cache.get_many(["a0"])  # used: a1 is now the oldest
    cache.put_many([("b", {"n": -1}, 100)], cache.generation, time.monotonic())
    assert cache.bytes <= 1600
    assert set(cache.get_many(["a0", "a1", "b"])) == {"a0", "b"}
    # Past a 16th of the bound: never kept.
    cache.put_many([("huge", {}, 101)], cache.generation, time.monotonic())
    assert "huge" not in cache.get_many(["huge"])


async def test_a_fill_that_raced_an_invalidation_is_dropped() -> None:
    bus = Heard("node")
    cache = ActivityCache(max_bytes=10_000, bus=bus)
    cache.put_many([("a", {"v": 1}, 10)], cache.generation, time.monotonic())
    started = cache.generation  # a read starts here ...
    await cache.invalidate(["a"])  # ... the activity changes meanwhile ...
    cache.put_many([("a", {"v": 1}, 10)], started, time.monotonic())  # ... so it is not kept
    assert cache.get_many(["a"]) == {} and bus.heard == [Forget(["a"])]
    cache.put_many([("a", {"v": 2}, 10)], cache.generation, time.monotonic())
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0


def test_an_activity_is_answered_from_memory_for_max_staleness_only() -> None:
    cache = ActivityCache(max_bytes=10_000, max_staleness=0.5)
    cache.put_many([("a", {"v": 1}, 10)], cache.generation, time.monotonic())
    cache.put_many([("b", {"v": 1}, 10)], cache.generation, time.monotonic() - 1.0)
    assert set(cache.get_many(["a", "b"])) == {"a"}  # b was read a second ago: read again
    cache.distrust()  # the link was down: nothing read before is answered
    assert cache.get_many(["a"]) == {}


def test_sizes_are_measured_memory() -> None:
    fields = {"actor": "user:1", "verb": "post", "object": "o:1", "n": [1, 2.5, None]}
    assert measured(fields) > 3 * len(json.dumps(fields))


class Heard(LocalBus):
    """A bus that keeps what is published on it (the other nodes would hear it)."""

    def __init__(self, node: str) -> None:
        super().__init__(node)
        self.heard: list[Message] = []

    async def publish(self, message: Message, owed: Collection[str] | None = ()) -> None:
        self.heard.append(message)
