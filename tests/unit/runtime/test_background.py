"""The one way of spawning background work (tidings.runtime.background): failures are logged by the
task's own done callback, and a TaskSet drains its tasks on shutdown."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tidings.runtime.background import TaskSet, ahead, spawn


async def test_a_failed_task_is_logged_with_its_exception(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="tidings.runtime.background"):
        task = spawn(fails())
        await asyncio.wait([task])
        await asyncio.sleep(0)  # the done callback runs on the next loop iteration
    [record] = [r for r in caplog.records if r.name == "tidings.runtime.background"]
    assert record.exc_info is not None and str(record.exc_info[1]) == "boom"


async def test_a_cancelled_task_is_not_logged_as_failed(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskSet()
    task = tasks.spawn(asyncio.sleep(10))
    await asyncio.sleep(0)
    task.cancel()
    with caplog.at_level(logging.ERROR, logger="tidings.runtime.background"):
        await asyncio.wait([task])
        await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.name == "tidings.runtime.background"]
    assert len(tasks) == 0


async def test_drain_waits_for_the_grace_then_cancels_the_rest() -> None:
    tasks = TaskSet()
    quick_done = asyncio.Event()

    async def quick() -> None:
        await asyncio.sleep(0.05)
        quick_done.set()

    tasks.spawn(quick())
    slow = tasks.spawn(asyncio.sleep(30))
    assert await tasks.drain(grace=0.5) == 1
    assert quick_done.is_set() and slow.cancelled() and len(tasks) == 0


async def test_work_started_ahead_never_outlives_its_block() -> None:
    async def slow() -> int:
        await asyncio.sleep(10)
        return 1

    async def fails() -> int:
        raise RuntimeError("the lookup failed")

    async with ahead(asyncio.sleep(0, "read")) as read:
        assert await read == "read"  # awaited in the block: its result
    with pytest.raises(ValueError):
        async with ahead(slow()) as lookup:
            raise ValueError("the write failed")  # the block's failure, not the lookup's
    assert lookup.cancelled()
    async with ahead(fails()) as failing:
        await asyncio.sleep(0)  # it fails unawaited: dropped, never logged as unretrieved
    assert failing.done() and isinstance(failing.exception(), RuntimeError)
