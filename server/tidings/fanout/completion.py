"""Read-your-writes for small fanouts: an add or a removal whose follower feeds are few answers
only once its fanout jobs are done, so that a read that follows the answer sees the follower
feeds changed, as with Stream's service (its SDKs' tests and apps read at once). "Few" is at
most `fanout.sync_max_feeds` follower feeds to write, all the write's jobs told (a batch add of
ten activities to a feed with 100 followers writes 1,000), waited for at most
`fanout.sync_budget_ms`; a bigger fanout, or one past the budget, goes on in the background and
the write answers at once, as every write did before.

Nothing changes in how a job runs: it is written first (durable), then run by the runner as a
task of its own; the write only waits for that task. A waiter that is cancelled (the client went
away) leaves the job running. The jobs a write starts are collected through a context variable
that the runner reports each job to (`started`), so the code between a write's entry point and
the runner's `start` need not pass them along.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from ..metrics import FANOUT_AWAITED
from ..store.mongo.jobs import Job

Started = list[tuple[Job, "asyncio.Task[Any]"]]
FollowerCounts = Callable[[Collection[str]], Awaitable[dict[str, int]]]  # followers by feed

_STARTED: ContextVar[Started | None] = ContextVar("fanout_jobs_started", default=None)


def started(job: Job, task: asyncio.Task[Any]) -> None:
    """The runner started `job` as `task`: the write being handled (if any) may wait for it."""
    collected = _STARTED.get()
    if collected is not None:
        collected.append((job, task))


class Completion:
    def __init__(self, followers: FollowerCounts, max_feeds: int, budget_ms: float) -> None:
        self.followers = followers
        self.max_feeds = max_feeds
        self.budget = budget_ms / 1000

    @asynccontextmanager
    async def awaited(self) -> AsyncIterator[None]:
        """Around a write: on leaving it (without an error), wait for the fanout jobs that
        the write started if they are small, within the budget."""
        collected: Started = []
        token = _STARTED.set(collected)
        try:
            yield
        finally:
            _STARTED.reset(token)
        if collected:
            await self.wait(collected)

    async def wait(self, collected: Started) -> None:
        if self.max_feeds <= 0 or self.budget <= 0:
            return
        begun = time.perf_counter()
        pending = [task for _, task in collected if not task.done()]
        if not pending:
            FANOUT_AWAITED.labels("done").inc()
            return
        # Follower feeds to write, all jobs told (a batch add is a job per activity).
        counts = await self.followers({source for job, _ in collected for source in job.sources})
        if sum(counts.get(s, 0) for job, _ in collected for s in job.sources) > self.max_feeds:
            FANOUT_AWAITED.labels("large").inc()
            return
        left = self.budget - (time.perf_counter() - begun)
        # asyncio.wait neither cancels the tasks on timeout nor when this waiter is cancelled.
        _, late = await asyncio.wait(pending, timeout=max(left, 0.0))
        FANOUT_AWAITED.labels("budget" if late else "done").inc()
