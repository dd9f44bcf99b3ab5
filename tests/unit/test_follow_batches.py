"""The group commit of single follows (fanout/following.py Batches)."""

from __future__ import annotations

import asyncio

import pytest

from tidings.domain.errors import InputError
from tidings.fanout.following import Batches, Key


async def test_items_arriving_during_a_batch_go_together_into_the_next() -> None:
    seen: list[list[str]] = []
    gate = asyncio.Event()

    async def run(key: Key, items: list[str]) -> dict[str, InputError]:
        seen.append(items)
        if len(seen) == 1:
            await gate.wait()
        return {"bad": InputError("no", {})} if "bad" in items else {}

    batches = Batches(run, max_size=3)
    first = asyncio.create_task(batches.submit(("t", 0), "a"))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batches.submit(("t", 0), x)) for x in ("b", "bad", "c", "d")]
    await asyncio.sleep(0)
    gate.set()
    assert await first is None
    results = await asyncio.gather(*rest)
    assert seen == [["a"], ["b", "bad", "c"], ["d"]]  # bounded by max_size
    assert results[0] is None and isinstance(results[1], InputError)
    assert not batches._tasks and not batches._pending


async def test_a_cancelled_caller_does_not_cancel_its_batch_and_a_failure_fails_each() -> None:
    stored: list[str] = []
    gate = asyncio.Event()

    async def run(key: Key, items: list[str]) -> dict[str, InputError]:
        await gate.wait()
        if "boom" in items:
            raise RuntimeError("store down")
        stored.extend(items)
        return {}

    batches = Batches(run, max_size=10)
    caller = asyncio.create_task(batches.submit(("t", 0), "a"))
    other = asyncio.create_task(batches.submit(("t", 0), "b"))
    await asyncio.sleep(0)
    caller.cancel()
    gate.set()
    assert await other is None
    assert stored == ["a"] or stored == ["a", "b"]
    await asyncio.sleep(0)
    assert "b" in stored
    with pytest.raises(RuntimeError):
        await batches.submit(("t", 0), "boom")


async def test_a_drain_cancelled_at_shutdown_cancels_what_it_holds() -> None:
    async def run(key: Key, items: list[str]) -> dict[str, InputError]:
        await asyncio.sleep(3600)
        return {}

    batches = Batches(run, max_size=10)
    waiting = [asyncio.create_task(batches.submit(("t", 0), x)) for x in "ab"]
    await asyncio.sleep(0)
    for task in list(batches._tasks.values()):
        task.cancel()
    for task in waiting:
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not batches._tasks
