"""The group commit of single follows (fanout/following.py Batches)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tidings.domain.errors import InputError
from tidings.feeds.following import Batches, Key
from tidings.runtime.background import TaskSet


async def test_items_arriving_during_a_batch_go_together_into_the_next() -> None:
    seen: list[list[str]] = []
    gate = asyncio.Event()

    async def run(key: Key, items: list[str]) -> dict[str, InputError]:
        seen.append(items)
        if len(seen) == 1:
            await gate.wait()
        return {"bad": InputError("no", {})} if "bad" in items else {}

    batches = Batches(run, max_size=3, spawn=TaskSet().spawn)
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

    batches = Batches(run, max_size=10, spawn=TaskSet().spawn)
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

    batches = Batches(run, max_size=10, spawn=TaskSet().spawn)
    waiting = [asyncio.create_task(batches.submit(("t", 0), x)) for x in "ab"]
    await asyncio.sleep(0)
    for task in list(batches._tasks.values()):
        task.cancel()
    for task in waiting:
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not batches._tasks


async def test_a_failure_that_no_caller_hears_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The caller left (its request was cancelled) before its batch failed: the failure is
    logged, with its exception, instead of being dropped with the future."""
    gate = asyncio.Event()

    async def run(key: Key, items: list[str]) -> dict[str, InputError]:
        await gate.wait()
        raise RuntimeError("store down")

    tasks = TaskSet("follow batch")
    batches = Batches(run, max_size=10, spawn=tasks.spawn)
    caller = asyncio.create_task(batches.submit(("user:t", 0), "timeline:a"))
    await asyncio.sleep(0)
    caller.cancel()
    with caplog.at_level(logging.ERROR):
        gate.set()
        assert await tasks.drain(grace=5) == 0
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None and str(record.exc_info[1]) == "store down"
    assert "timeline:a" in record.getMessage() and "user:t" in record.getMessage()


async def test_a_drain_that_fails_itself_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def run(key: Key, items: list[str]) -> dict[str, InputError]:
        return None  # type: ignore[return-value]  # a bug: the drain itself raises

    tasks = TaskSet("follow batch")
    batches = Batches(run, max_size=10, spawn=tasks.spawn)
    with caplog.at_level(logging.ERROR, logger="tidings.runtime.background"):
        with pytest.raises(asyncio.CancelledError):  # its callers are not left waiting
            await batches.submit(("t", 0), "a")
        await asyncio.sleep(0)
    [record] = [r for r in caplog.records if r.name == "tidings.runtime.background"]
    assert "follow batch failed" in record.getMessage()
    assert isinstance(record.exc_info and record.exc_info[1], AttributeError)


async def test_shutdown_drains_the_batches_in_flight() -> None:
    """The drains are tasks of the set that shutdown drains: a batch under way is waited for
    (its follow stored and answered), one still running after the grace is cancelled."""
    stored: list[str] = []

    async def run(key: Key, items: list[str]) -> dict[str, InputError]:
        await asyncio.sleep(0.05 if key[0] == "quick" else 3600)
        stored.extend(items)
        return {}

    tasks = TaskSet("follow batch")
    batches = Batches(run, max_size=10, spawn=tasks.spawn)
    quick = asyncio.create_task(batches.submit(("quick", 0), "a"))
    stuck = asyncio.create_task(batches.submit(("stuck", 0), "b"))
    await asyncio.sleep(0)
    assert len(tasks) == 2
    assert await tasks.drain(grace=1) == 1  # the stuck one, cancelled
    assert await quick is None and stored == ["a"]
    with pytest.raises(asyncio.CancelledError):
        await stuck
    assert len(tasks) == 0 and not batches._tasks
