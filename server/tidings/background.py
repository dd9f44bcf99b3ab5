"""Fire-and-forget tasks: kept referenced until done (asyncio keeps only weak refs), their
failures logged, and tracked in a `TaskSet` so that a shutdown can wait for them.

This is the one way of spawning background work: `spawn` puts a task in the process-wide set;
a component that must drain its own tasks on shutdown (the fanout runner) owns a `TaskSet`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    """Background tasks that are logged when they fail and can be drained together."""

    def __init__(self, name: str = "background task") -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", self.name, exc_info=task.exception())

    async def drain(self, grace: float) -> int:
        """Give the tasks `grace` seconds, then cancel the rest and wait for them to end.
        Answers how many were cancelled."""
        pending = set(self._tasks)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return len(pending)


_process = TaskSet()


def spawn(work: Awaitable[Any]) -> asyncio.Task[Any]:
    """Run `work` in the background of the process (failures are logged)."""
    return _process.spawn(work)
