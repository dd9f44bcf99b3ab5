"""Objects by key (users, collection entries, reaction summaries), kept in memory for enriched
reads, within the bound every page read of this node keeps: what it answers was read from the
store less than `max_staleness` seconds ago (`[memory] max_staleness_seconds`). Absence is
kept too (a reference to nothing is looked up once per bound).

The repositories that hold one (store/mongo/users.py, collections.py, reactions.py) forget a
key once they have written it, so this node reads its own writes at once; another node's
write is seen once the entry is older than the bound. An entry is kept only when its read
began after the last forget of its key (`put_many(..., since)`), so a read that raced a write
never keeps what the write replaced.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
MAX_ENTRIES = 50_000


class ObjectCache(Generic[K, V]):
    def __init__(self, max_staleness: float, max_entries: int = MAX_ENTRIES) -> None:
        self.max_staleness, self.max_entries = max_staleness, max_entries
        self._items: OrderedDict[K, tuple[float, V | None]] = OrderedDict()
        self._forgotten: dict[K, float] = {}  # when each key was last forgotten (bounded)
        self.hits = self.misses = 0

    def get_many(self, keys: Iterable[K]) -> tuple[dict[K, V | None], list[K]]:
        """(what memory holds of `keys`, None for known absence; the keys to read)."""
        oldest = time.monotonic() - self.max_staleness
        found: dict[K, V | None] = {}
        missing: list[K] = []
        for key in keys:
            item = self._items.get(key)
            if item is None or item[0] < oldest:
                missing.append(key)
                continue
            self._items.move_to_end(key)
            found[key] = item[1]
        self.hits += len(found)
        self.misses += len(missing)
        return found, missing

    def held(self, keys: Iterable[K]) -> dict[K, V] | None:
        """The values of `keys` that exist, when memory holds every one of them (an enriched
        read then needs no await at all); None when any is to be read."""
        oldest = time.monotonic() - self.max_staleness
        found: dict[K, V] = {}
        count = 0
        for key in keys:
            item = self._items.get(key)
            if item is None or item[0] < oldest:
                return None
            count += 1
            if item[1] is not None:
                found[key] = item[1]
        self.hits += count
        return found

    def put_many(self, keys: Collection[K], found: dict[K, V], since: float) -> None:
        """Keep what a read begun at `since` (time.monotonic()) found of `keys`."""
        if self.max_staleness <= 0:
            return
        for key in keys:
            if self._forgotten.get(key, float("-inf")) >= since:
                continue  # written while it was read: maybe older than the write
            self._items[key] = (since, found.get(key))
            self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    async def read_through(
        self, keys: Iterable[K], fetch: Callable[[list[K]], Awaitable[dict[K, V]]]
    ) -> dict[K, V]:
        """The values of `keys` that exist: from memory, and one `fetch` for the rest."""
        found, missing = self.get_many(dict.fromkeys(keys))
        if missing:
            since = time.monotonic()
            read = await fetch(missing)
            self.put_many(missing, read, since)
            found.update(read)
        return {k: v for k, v in found.items() if v is not None}

    def forget(self, keys: Iterable[K]) -> None:
        now = time.monotonic()
        for key in keys:
            self._items.pop(key, None)
            self._forgotten[key] = now
        if len(self._forgotten) > self.max_entries:  # older marks no longer matter
            cutoff = now - self.max_staleness
            self._forgotten = {k: t for k, t in self._forgotten.items() if t >= cutoff}
