"""Read-your-writes for small fanouts (tidings.fanout.completion): a write waits for the fanout
jobs it started when they reach few follower feeds, within a budget, and never stops a job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import Any

import pytest

from tidings.fanout.completion import Completion, started
from tidings.store.mongo.jobs import Job

FOLLOWERS = {"user:a": 3, "user:b": 4, "user:big": 5000}


async def followers(feeds: Collection[str]) -> dict[str, int]:
    return {f: FOLLOWERS.get(f, 0) for f in feeds}


def job(*sources: str) -> Job:
    return Job("j-" + "-".join(sources), "add", "activity", list(sources))


class Fanout:
    """A job's task that runs until the test lets it finish."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.task: asyncio.Task[Any] = asyncio.create_task(self.go.wait())


async def test_a_write_waits_for_its_small_fanouts() -> None:
    completion = Completion(followers, max_feeds=10, budget_ms=10_000)
    first, second = Fanout(), Fanout()
    asyncio.get_running_loop().call_later(0.05, first.go.set)
    asyncio.get_running_loop().call_later(0.1, second.go.set)
    async with completion.awaited():
        started(job("user:a"), first.task)
        started(job("user:b"), second.task)  # 3 + 4 follower feeds: at most 10
    assert first.task.done() and second.task.done()


async def test_a_write_past_max_feeds_answers_at_once() -> None:
    completion = Completion(followers, max_feeds=6, budget_ms=10_000)
    fanouts = [Fanout(), Fanout()]
    async with completion.awaited():
        started(job("user:a"), fanouts[0].task)
        started(job("user:b"), fanouts[1].task)  # 7 follower feeds in all: more than 6
    assert not any(f.task.done() for f in fanouts)
    for fanout in fanouts:
        fanout.go.set()
        await fanout.task


async def test_every_job_counts_its_follower_feeds() -> None:
    """Two activities of one batch add to a feed with 4 followers write 8 follower feeds."""
    completion = Completion(followers, max_feeds=7, budget_ms=10_000)
    fanouts = [Fanout(), Fanout()]
    async with completion.awaited():
        for fanout in fanouts:
            started(job("user:b"), fanout.task)
    assert not any(f.task.done() for f in fanouts)
    for fanout in fanouts:
        fanout.go.set()
        await fanout.task


async def test_the_budget_bounds_the_wait_and_the_job_goes_on() -> None:
    completion = Completion(followers, max_feeds=10, budget_ms=30)
    fanout = Fanout()
    begun = time.perf_counter()
    async with completion.awaited():
        started(job("user:a"), fanout.task)
    assert 0.025 <= time.perf_counter() - begun < 1.0
    assert not fanout.task.done()
    fanout.go.set()
    await fanout.task


@pytest.mark.parametrize(("max_feeds", "budget_ms"), [(0, 50.0), (1000, 0.0)])
async def test_zero_turns_the_wait_off(max_feeds: int, budget_ms: float) -> None:
    completion = Completion(followers, max_feeds=max_feeds, budget_ms=budget_ms)
    fanout = Fanout()
    async with completion.awaited():
        started(job("user:a"), fanout.task)
    assert not fanout.task.done()
    fanout.go.set()
    await fanout.task


async def test_a_cancelled_writer_leaves_its_fanout_running() -> None:
    completion = Completion(followers, max_feeds=10, budget_ms=10_000)
    fanout = Fanout()
    waiting = asyncio.Event()

    async def write() -> None:
        async with completion.awaited():
            started(job("user:a"), fanout.task)
            waiting.set()

    writer = asyncio.create_task(write())
    await waiting.wait()
    await asyncio.sleep(0.01)  # the writer is in its wait now
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    assert not fanout.task.cancelled() and not fanout.task.done()
    fanout.go.set()
    await fanout.task


async def test_a_failed_write_does_not_wait_and_jobs_outside_writes_are_not_collected() -> None:
    completion = Completion(followers, max_feeds=10, budget_ms=10_000)
    fanout = Fanout()
    started(job("user:a"), fanout.task)  # no write being handled: nothing collects it
    with pytest.raises(RuntimeError):
        async with completion.awaited():
            started(job("user:a"), fanout.task)
            raise RuntimeError("refused")
    assert not fanout.task.done()
    fanout.go.set()
    await fanout.task
