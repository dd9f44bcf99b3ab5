"""Lookups by key gathered per event-loop tick into one query (coalesced lookups).

A reconnect storm or a burst of feed reads asks the store the same kind of question thousands
of times at once (activities by id, feed metadata, follows of pull feeds): each one a query of
its own costs a round trip each and caps everything at the store's query rate. A `Coalescer`
collects the keys asked for by every task that runs in one turn of the event loop and, at the
next turn, asks the store once (`fetch(keys)`, one `$in` query), then answers every waiter
from that one answer.

Cancellation and failure: the shared query runs as a task of its own; a waiter that is
cancelled stops waiting (asyncio.shield) and the others still get their answer. A query that
fails fails every waiter of it, with its exception. A batch is bounded by `max_keys`: past it,
the next keys start a batch of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Fetch = Callable[[list[K]], Awaitable[dict[K, V]]]
MAX_KEYS = 1000  # keys of one query; `$in` of a few thousand ids is still one index walk


class _Batch(Generic[K, V]):
    __slots__ = ("future", "keys", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.keys: dict[K, None] = {}
        self.future: asyncio.Future[dict[K, V]] = loop.create_future()
        self.task: asyncio.Task[None] | None = None


class Coalescer(Generic[K, V]):
    """`await get_many(keys)`: the values found for `keys` (missing ones left out), from one
    `fetch` per tick shared by every caller of that tick."""

    def __init__(self, fetch: Fetch[K, V], max_keys: int = MAX_KEYS) -> None:
        self._fetch = fetch
        self.max_keys = max_keys
        self._open: _Batch[K, V] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.queries = 0  # fetches made (what a benchmark or a test counts)

    async def get_many(self, keys: Iterable[K]) -> dict[K, V]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        batches: list[_Batch[K, V]] = []
        rest = wanted
        while rest:
            batch = self._batch()
            room = self.max_keys - len(batch.keys)
            taking, rest = rest[:room], rest[room:]
            batch.keys.update(dict.fromkeys(taking))
            if len(batch.keys) >= self.max_keys:
                self._open = None  # full: the next keys start another one
            if not batches or batches[-1] is not batch:
                batches.append(batch)
        found: dict[K, V] = {}
        for batch in batches:
            # Shielded: a waiter that is cancelled does not cancel the query of the others.
            found.update(await asyncio.shield(batch.future))
        return {k: found[k] for k in wanted if k in found}

    async def get(self, key: K) -> V | None:
        return (await self.get_many((key,))).get(key)

    def _batch(self) -> _Batch[K, V]:
        batch = self._open
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._open = _Batch(loop)
            loop.call_soon(self._start, batch)
        return batch

    def _start(self, batch: _Batch[K, V]) -> None:
        if self._open is batch:
            self._open = None
        task = asyncio.ensure_future(self._run(batch))
        batch.task = task
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: _Batch[K, V]) -> None:
        self.queries += 1
        try:
            found = await self._fetch(list(batch.keys))
        except BaseException as exc:  # every waiter gets the failure (cancelled: CancelledError)
            fail_waiters(batch.future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        if not batch.future.done():
            batch.future.set_result(found)

    async def close(self) -> None:
        """Cancel the queries in flight (their waiters get CancelledError)."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)


def fail_waiters(future: asyncio.Future[Any], exc: BaseException) -> None:
    """A shared lookup failed: each of its waiters gets `exc` (cancelled: CancelledError),
    and it counts as retrieved, so that waiters that are gone leave no warning behind."""
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)
        future.exception()
