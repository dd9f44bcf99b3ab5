"""Activities by id in memory: the fields of stored activities, least recently used first out,
bounded by their measured memory (`measured`: what the Python objects take, about six times
their JSON).

MongoDB stays the source of truth, and the cache may make a lookup late, never later than
`max_staleness` seconds: an activity read from the store (ActivityStore.load) or written by this
node is answered from memory until `max_staleness` after its read began, then read again. Within
that time the nodes keep each other current as fast as Redis carries it: an id is forgotten
whenever its document changes (a replace, an update, a change of targets, a removal), on this
node at once (ActivityStore calls `invalidate` after the write) and on the others through the
bus (a `Forget` message). A lost invalidation costs at most `max_staleness`; after the bus was
down nothing read before it is trusted (`distrust`, on `Subscribed`).

A read that started before an invalidation must not put back what it read (it may be the old
value): each fill names the generation it started at, and is dropped when any invalidation
came since (`generation` counts invalidations and clears).
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from ...bus.base import Bus, LocalBus
from ...bus.messages import Forget, Subscribed

MB = 1 << 20
MAX_STALENESS = 2.0  # seconds (cache.max_staleness_seconds)


def measured(value: Any) -> int:
    """Bytes that a decoded JSON value takes in this process (sys.getsizeof of each object)."""
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        return size + sum(measured(k) + measured(v) for k, v in value.items())
    if isinstance(value, list):
        return size + sum(measured(v) for v in value)
    return size


class ActivityCache:
    def __init__(
        self, max_bytes: int = 64 * MB, max_staleness: float = MAX_STALENESS,
        bus: Bus | None = None,
    ) -> None:  # fmt: skip
        self.max_bytes = max_bytes
        self.max_staleness = max_staleness
        self.bytes = 0
        self.generation = 0
        self.hits = 0
        self.misses = 0
        self._trusted_from = float("-inf")  # reads begun before this are read again
        # id -> (fields, measured bytes, monotonic time its read began)
        self._items: OrderedDict[str, tuple[dict[str, Any], int, float]] = OrderedDict()
        self._refreshing: set[str] = set()  # ids read again in the background (EntryReads)
        self.bus = bus or LocalBus("")  # the other nodes, told what changed here
        self.bus.on(Forget, lambda message: self.forget(message.ids))
        self.bus.on(Subscribed, lambda _: self.distrust())

    def __len__(self) -> int:
        return len(self._items)

    def get_many(
        self, ids: Iterable[str], aging: list[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """The cached fields among `ids` read less than `max_staleness` ago (most recently
        used from now on); older ones are misses, read again by the caller. Those read more
        than half that time ago are added to `aging` (to be read again before they expire)."""
        found: dict[str, dict[str, Any]] = {}
        items = self._items
        now = time.monotonic()
        oldest = max(now - self.max_staleness, self._trusted_from)
        half = now - self.max_staleness / 2
        for activity_id in ids:
            item = items.get(activity_id)
            if item is None or item[2] < oldest:
                self.misses += 1
                continue
            items.move_to_end(activity_id)
            found[activity_id] = item[0]
            self.hits += 1
            if item[2] < half and aging is not None:
                aging.append(activity_id)
        return found

    def refreshing(self, ids: Iterable[str]) -> list[str]:
        """Those of `ids` not being read again already, from now on being read again."""
        fresh = [i for i in dict.fromkeys(ids) if i not in self._refreshing]
        self._refreshing.update(fresh)
        return fresh

    def refreshed(self, ids: Iterable[str]) -> None:
        self._refreshing.difference_update(ids)

    def put_many(
        self, found: Iterable[tuple[str, dict[str, Any], int]], generation: int, read_at: float
    ) -> None:
        """Remember (id, fields, measured size) read (or written) from `read_at` on, since
        `generation`, unless an invalidation came meanwhile (they may be older than what is
        stored now)."""
        if generation != self.generation or not self.max_bytes:
            return
        items = self._items
        for activity_id, data, size in found:
            if size > self.max_bytes // 16:  # one big activity must not empty the cache
                continue
            old = items.pop(activity_id, None)
            if old is not None:
                self.bytes -= old[1]
            items[activity_id] = (data, size, read_at)
            self.bytes += size
        while self.bytes > self.max_bytes and items:
            _, (_, size, _) = items.popitem(last=False)
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
        await self.bus.publish(Forget(ids))

    def distrust(self) -> None:
        """Read again whatever was read until now (invalidations may have been missed: the
        bus was down), as it is used."""
        self.generation += 1
        self._trusted_from = time.monotonic()

    def clear(self) -> None:
        self.generation += 1
        self._items.clear()
        self.bytes = 0
