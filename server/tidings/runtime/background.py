"""Fire-and-forget tasks: kept referenced until done (asyncio keeps only weak refs), their
failures logged, and tracked in a `TaskSet` so that a shutdown can wait for them.

This is the one way of spawning background work: `spawn` puts a task in the process-wide set;
a component that must drain its own tasks on shutdown (the fanout runner) owns a `TaskSet`.

Writes are work that must end whatever happens to whoever asked for them: a method marked
`@completes` (the feed service's write entry points) runs as a task of its owner's `writes`
set, which its caller awaits through `asyncio.shield`. A socket that closes, or a request that
aiohttp cancels, stops waiting; the write goes on to its end, and a shutdown drains it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from ..metrics import WRITES_IN_FLIGHT

log = logging.getLogger(__name__)
CANCEL_GRACE = 5.0  # seconds a drained task has to end once cancelled
P = ParamSpec("P")
T = TypeVar("T")


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

    async def complete(self, work: Awaitable[T]) -> T:
        """Run `work` as a task of this set and await it. Cancelling the caller cancels its
        wait only: the work runs to its end (a drain waits for it). Its outcome is the
        caller's; once the caller is gone, a failure is logged."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._done)
            raise

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
        if pending:  # a task that holds on after its cancel (a cleanup awaiting a dead peer)
            # is left behind, logged, rather than holding the shutdown for ever
            _, stuck = await asyncio.wait(pending, timeout=CANCEL_GRACE)
            for task in stuck:
                log.warning("%s: task %s did not end when cancelled", self.name, task.get_name())
        return len(pending)


_process = TaskSet()
_writing: contextvars.ContextVar[bool] = contextvars.ContextVar("writing", default=False)


class Writer(Protocol):
    writes: TaskSet


W = TypeVar("W", bound=Writer)


def completes(
    method: Callable[Concatenate[W, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[W, P], Coroutine[Any, Any, T]]:
    """Mark a write entry point: a call runs as a task of `self.writes` to its end, whatever
    happens to the caller (see the module's docstring). A write called from within another
    one is part of it: it runs in the same task."""

    async def write(self: W, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if _writing.get():
            return await method(self, *args, **kwargs)
        return await self.writes.complete(_write(method(self, *args, **kwargs)))

    functools.update_wrapper(write, method)
    return write


async def _write(work: Awaitable[T]) -> T:
    _writing.set(True)  # in the write's own task (a copy of its caller's context)
    with WRITES_IN_FLIGHT.track_inprogress():
        return await work


def spawn(work: Awaitable[Any]) -> asyncio.Task[Any]:
    """Run `work` in the background of the process (failures are logged)."""
    return _process.spawn(work)


@contextlib.asynccontextmanager
async def ahead(work: Coroutine[Any, Any, T]) -> AsyncIterator[asyncio.Task[T]]:
    """Start `work` now, beside the block (which awaits the task for its result when it needs
    it): a read that a write will want once it is stored, started while it is written. The
    task never outlives the block: if the block ends without its result (a failure, a
    cancellation), it is cancelled and waited for, and its own failure, if any, is dropped."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(_retrieved)
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait([task])


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Mark a task's failure as seen (the block that wanted it has its own outcome)."""
    if not task.cancelled():
        task.exception()
