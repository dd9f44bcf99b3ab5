"""Activities by id in memory (issue 12, "an activity cache"): the fields of stored activities,
least recently used first out, bounded by the bytes of their JSON.

MongoDB stays the source of truth. The cache is filled on reads (ActivityStore.load) and on
inserts, and an id is forgotten whenever its document changes (a replace, an update, a change
of targets, a removal): on this node at once (ActivityStore calls `invalidate` after the write)
and on every other node through the Redis link (`on_invalidate`, published by the broadcaster
as `{"k": "inval", "ids": [...]}`). After a Redis outage invalidations may have been missed:
the broadcaster's `resync` clears the cache.

A read that started before an invalidation must not put back what it read (it may be the old
value): each fill names the generation it started at, and is dropped when any invalidation
came since (`generation` counts invalidations and clears).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

MAX_BYTES = 64 << 20  # default bound: JSON bytes of the cached activities' fields

OnInvalidate = Callable[[list[str]], Awaitable[None]]


class ActivityCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.generation = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self.on_invalidate: OnInvalidate | None = None  # tells the other nodes (broadcaster)

    def __len__(self) -> int:
        return len(self._items)

    def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The cached fields among `ids` (most recently used from now on)."""
        found: dict[str, dict[str, Any]] = {}
        items = self._items
        for activity_id in ids:
            item = items.get(activity_id)
            if item is None:
                self.misses += 1
                continue
            items.move_to_end(activity_id)
            found[activity_id] = item[0]
            self.hits += 1
        return found

    def put_many(self, found: Iterable[tuple[str, dict[str, Any], int]], generation: int) -> None:
        """Remember (id, fields, size) read or written since `generation`, unless an
        invalidation came meanwhile (they may be older than what is stored now)."""
        if generation != self.generation:
            return
        items = self._items
        for activity_id, data, size in found:
            if size > self.max_bytes // 16:  # one big activity must not empty the cache
                continue
            old = items.pop(activity_id, None)
            if old is not None:
                self.bytes -= old[1]
            items[activity_id] = (data, size)
            self.bytes += size
        while self.bytes > self.max_bytes and items:
            _, (_, size) = items.popitem(last=False)
            self.bytes -= size

    def forget(self, ids: Iterable[str]) -> None:
        """Drop `ids` here (an invalidation heard from another node)."""
        self.generation += 1
        for activity_id in ids:
            item = self._items.pop(activity_id, None)
            if item is not None:
                self.bytes -= item[1]

    async def invalidate(self, ids: Sequence[str]) -> None:
        """The documents of `ids` changed in the store: drop them here and on every node."""
        ids = list(ids)
        if not ids:
            return
        self.forget(ids)
        if self.on_invalidate is not None:
            await self.on_invalidate(ids)

    def clear(self) -> None:
        """Forget everything (after a Redis outage: invalidations may have been missed)."""
        self.generation += 1
        self._items.clear()
        self.bytes = 0
