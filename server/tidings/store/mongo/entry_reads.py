"""Reads of the materialised feeds (`feed_entries`) and the activities they hold: pages newest
first, `since` pages oldest first, and the loads of public activities, answered from this
node's feed heads and activity cache where those provably hold the answer, else from the store
in coalesced queries (one `$in` per kind per event-loop tick).

ActivityStore (store/activities.py) is the one class of the port; this is its read half, kept
apart because the writes (ownership, entries, groups) are another subject.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ...domain.activities import public_activity
from ...domain.merge import Bounds
from ..memory.activity_cache import ActivityCache
from ..memory.coalesce import Coalescer
from ..memory.feed_heads import ENTRIES, FeedHeads
from ..memory.feed_heads import Head as FeedHead
from . import scan
from .client import Collection, Document

Item = tuple[str, str | None]  # (activity id, origin): an entry as a read merges it
AFTERS_BATCH = 500  # `since` pages of one coalesced query (ActivityStore._fetch_afters)
AFTERS_PER_KEY = 20  # ... and entries it reads per page on average, before reading each alone
ITEM_FIELDS = {"activity_id": 1, "origin": 1, "_id": 0}


@dataclass(frozen=True)
class Page:
    """Which entries of a feed to read: newest first, bounded by id, then offset and limit."""

    limit: int = 25
    offset: int = 0
    id_lt: str | None = None
    id_lte: str | None = None
    id_gt: str | None = None
    id_gte: str | None = None

    def bounds(self) -> Bounds:
        return Bounds.of(self.id_lt, self.id_lte, self.id_gt, self.id_gte)


class EntryReads:
    """The read half of ActivityStore, which sets these attributes in its `__init__`."""

    activities: Collection
    entries: Collection
    cache: ActivityCache
    heads: FeedHeads
    _fields: Coalescer[str, tuple[dict[str, Any], int]]
    _warming: dict[str, asyncio.Future[list[Item]]]
    _afters: Coalescer[tuple[str, str, int], list[Item]]

    async def read(self, feed: str, page: Page) -> list[dict[str, Any]]:
        """A page of the feed, newest first, as public activities."""
        items = await self.newest(feed, page.bounds(), page.offset + page.limit)
        return await self.load(items[page.offset :])

    async def since(self, feed: str, since_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` activities newer than `since_id`, oldest first."""
        return await self.load(await self.after(feed, since_id, limit))

    async def newest(self, feed: str, bounds: Bounds, want: int) -> list[Item]:
        """The first `want` entries of `feed` within `bounds`, newest first: from its head when
        that holds them (store/feed_heads.py); a first page read from the store becomes its
        head."""
        heads = self.heads
        head = heads.get(feed)
        if head is not None:
            found = head.newest(bounds, want)
            if found is not None:
                heads.hits += 1
                return found
        heads.misses += 1
        fill = None
        if bounds.lower is None and bounds.upper is None and want <= ENTRIES:
            fill = heads.begin(feed)
        reading = ENTRIES if fill is not None else want
        items = None
        try:
            docs = await scan.newest_first(
                self.entries, {"feed": feed}, "activity_id", scan.ACTIVITY_IDS, bounds, reading,
                ITEM_FIELDS,
            )  # fmt: skip
            items = [(d["activity_id"], d.get("origin")) for d in docs]
        finally:
            heads.end(fill, items, items is not None and len(items) < reading)
        return items[:want]

    async def after(self, feed: str, after: str, want: int) -> list[Item]:
        """The first `want` entries of `feed` newer than `after`, oldest first (from its head
        when that holds every entry newer than `after`)."""
        head = self.heads.get(feed)
        if head is not None:
            found = head.after(after, want)
            if found is not None:
                self.heads.hits += 1
                return found
        self.heads.misses += 1
        return (await self._afters.get_many([(feed, after, want)]))[(feed, after, want)]

    async def _fetch_afters(
        self, keys: list[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], list[Item]]:
        """`after` of every (feed, after, want) of a tick (a reconnect storm's `since` pages):
        one `$in` query for the entries of all those feeds above the lowest `after`, at most
        AFTERS_PER_KEY per key on average; past that (feeds with much to catch up on), each is
        read by itself (the windowed index scan)."""
        if len(keys) == 1:
            return {keys[0]: await self._after_of(*keys[0])}
        cap = AFTERS_PER_KEY * len(keys)
        query = {
            "feed": {"$in": list({feed for feed, _, _ in keys})},
            "activity_id": {"$gt": min(after for _, after, _ in keys)},
        }
        docs = await self.entries.find(query, {**ITEM_FIELDS, "feed": 1}).limit(cap + 1).to_list()
        if len(docs) > cap:
            found = await asyncio.gather(*(self._after_of(*key) for key in keys))
            return dict(zip(keys, found, strict=True))
        by_feed: dict[str, list[Item]] = {}
        for d in sorted(docs, key=lambda d: d["activity_id"]):
            by_feed.setdefault(d["feed"], []).append((d["activity_id"], d.get("origin")))
        return {
            (feed, after, want): [i for i in by_feed.get(feed, ()) if i[0] > after][:want]
            for feed, after, want in keys
        }

    async def _after_of(self, feed: str, after: str, want: int) -> list[Item]:
        docs = await scan.oldest_first(
            self.entries, {"feed": feed}, "activity_id", scan.ACTIVITY_IDS, after, want, ITEM_FIELDS
        )
        return [(d["activity_id"], d.get("origin")) for d in docs]

    async def own_newest(self, feed: str, bounds: Bounds, want: int) -> list[str]:
        """Ids of the first `want` activities within `bounds` that `feed` holds directly (added
        to it, or naming it in `to`), newest first."""
        head = await self._warm(feed)
        if head is not None:
            found = head.newest(bounds, want, _own_item)
            if found is not None:
                self.heads.hits += 1
                return [i for i, _ in found]
        docs = await scan.newest_first(
            self.entries, {"feed": feed}, "activity_id", scan.ACTIVITY_IDS, bounds, want,
            ITEM_FIELDS, keep=is_own,
        )  # fmt: skip
        return [d["activity_id"] for d in docs]

    async def own_after(self, feed: str, after: str, want: int) -> list[str]:
        """Ids of the first `want` activities newer than `after` that `feed` holds directly,
        oldest first."""
        head = await self._warm(feed)
        if head is not None:
            found = head.after(after, want, _own_item)
            if found is not None:
                self.heads.hits += 1
                return [i for i, _ in found]
        docs = await scan.oldest_first(
            self.entries, {"feed": feed}, "activity_id", scan.ACTIVITY_IDS, after, want,
            ITEM_FIELDS, keep=is_own,
        )  # fmt: skip
        return [d["activity_id"] for d in docs]

    async def _warm(self, feed: str) -> FeedHead | None:
        """The head of `feed`, read into memory first when it has none: once for all the
        readers that ask at the same time (the pull feed that 10,000 recovering follower feeds
        merge in). None when heads are off or the read failed."""
        head = self.heads.get(feed)
        if head is not None or not self.heads.max_feeds:
            return head
        flight = self._warming.get(feed)
        if flight is None:
            flight = asyncio.ensure_future(self.newest(feed, Bounds(), ENTRIES))
            self._warming[feed] = flight

            def landed(done: asyncio.Future[list[Item]], feed: str = feed) -> None:
                if self._warming.get(feed) is done:
                    del self._warming[feed]
                if not done.cancelled():
                    done.exception()  # seen: its waiters fall back to the store

            flight.add_done_callback(landed)
        try:
            await asyncio.shield(flight)
        except Exception:
            return None
        return self.heads.get(feed)

    async def own_above(self, feed: str, floor: str) -> list[str]:
        """Ids of every activity above `floor` that `feed` holds directly, oldest first."""
        docs = self.entries.find({"feed": feed, "activity_id": {"$gt": floor}}, ITEM_FIELDS)
        return sorted([d["activity_id"] async for d in docs if is_own(d)])

    async def latest_own(self, feed: str, limit: int) -> list[str]:
        """Ids of the newest activities that `feed` holds directly (what a new follower copies)."""
        return await self.own_newest(feed, Bounds(), limit)

    async def as_written(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored activities among `ids` as first written (before any update: what their
        group keys and actors come from), by id."""
        cursor = self.activities.find({"_id": {"$in": list(ids)}}, {"data": 1, "written": 1})
        return {
            d["_id"]: public_activity(d["_id"], json.loads(d.get("written") or d["data"]), None)
            async for d in cursor
            if "data" in d
        }

    async def load(self, entries: Iterable[Item]) -> list[dict[str, Any]]:
        """The public activities of entries, in their order; entries of activities no longer
        stored, or removed (tombstoned) while their removal still runs, are left out."""
        entries = list(entries)
        if not entries:
            return []
        ids = [activity_id for activity_id, _ in entries]
        cache = self.cache
        fields = cache.get_many(ids)
        missing = [i for i in ids if i not in fields]
        if missing:
            generation = cache.generation
            fetched = await self._fields.get_many(missing)
            cache.put_many(((i, d, n) for i, (d, n) in fetched.items()), generation)
            fields.update((i, d) for i, (d, _) in fetched.items())
        return [
            public_activity(activity_id, fields[activity_id], origin)
            for activity_id, origin in entries
            if activity_id in fields
        ]

    async def _fetch_fields(self, ids: list[str]) -> dict[str, tuple[dict[str, Any], int]]:
        """The fields of the stored, not removed activities among `ids` (one `$in` for every
        load of a tick), each with the size of its JSON."""
        cursor = self.activities.find({"_id": {"$in": ids}}, {"data": 1, "removed": 1})
        return {
            d["_id"]: (json.loads(d["data"]), len(d["data"]))
            async for d in cursor
            if "data" in d and not d.get("removed")
        }


def _own_item(item: Item) -> bool:
    return item[1] is None


def is_own(entry: Document) -> bool:
    return entry.get("origin") is None
