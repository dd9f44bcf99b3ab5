"""Reads of the materialised feeds (`feed_entries`) and the activities they hold: pages newest
first, `since` pages oldest first, and the loads of public activities, answered from this
node's feed heads and activity cache where those provably hold the answer, else from the store
in coalesced queries (one `$in` per kind per event-loop tick).

What memory may answer is bounded by when it was read, never by what the other nodes said:
- a `since` (and a follow's copy) holds every entry the store held when it was asked: its
  entries are read from the store, or from a head whose read began after the question
  (`_warm`: one read of a pull feed for all the followers merging it in at that moment);
- a page or an activity may come from memory read less than `cache.max_staleness_seconds` ago.

ActivityStore (store/activities.py) is the one class of the port; this is its read half, kept
apart because the writes (ownership, entries, groups) are another subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ...domain.activities import public_activity
from ...domain.merge import Bounds
from ...runtime.background import spawn
from ...runtime.faults import fault_pause
from ..memory.activity_cache import ActivityCache, measured
from ..memory.coalesce import Coalescer
from ..memory.feed_heads import ENTRIES, FeedHeads
from ..memory.feed_heads import Head as FeedHead
from . import scan
from .client import Collection, Document

Item = tuple[str, str | None]  # (activity id, origin): an entry as a read merges it
AFTERS_BATCH = 500  # `since` pages of one coalesced query (ActivityStore._fetch_afters)
AFTERS_PER_KEY = 20  # ... and entries it reads per page on average, before reading each alone
ITEM_FIELDS = {"activity_id": 1, "origin": 1, "_id": 0}


@dataclass
class Flight:
    """A read of a feed's head that readers share (EntryReads._warm); `started` once it went to
    the store, after `after` (the previous read of the same feed) ended."""

    after: Flight | None
    started: float | None = None
    task: asyncio.Future[FeedHead | None] | None = None


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
    _warming: dict[str, Flight]
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
        that holds them (store/feed_heads.py); a first page of a feed with no head (or one too
        old) reads its head from the store first. A head past half its time is read again in
        the background, so that readers seldom wait for it."""
        heads = self.heads
        head = heads.get(feed)
        if head is None and bounds.lower is None and bounds.upper is None and want <= ENTRIES:
            heads.misses += 1
            head = await self._warm(feed, time.monotonic() - heads.max_staleness)
        elif head is not None:
            heads.hits += 1
            if time.monotonic() - head.filled > heads.max_staleness / 2:
                self._flight(feed, time.monotonic() - heads.max_staleness / 2)
        if head is not None:
            found = head.newest(bounds, want)
            if found is not None:
                return found
        docs = await scan.newest_first(
            self.entries, {"feed": feed}, "activity_id", scan.ACTIVITY_IDS, bounds, want,
            ITEM_FIELDS,
        )  # fmt: skip
        return [(d["activity_id"], d.get("origin")) for d in docs]

    async def after(self, feed: str, after: str, want: int) -> list[Item]:
        """The first `want` entries of `feed` newer than `after`, oldest first, as the store
        holds them now (a coalesced read: it begins after this call)."""
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

    async def own_newest(
        self, feed: str, bounds: Bounds, want: int, exact: bool = False
    ) -> list[str]:
        """Ids of the first `want` activities within `bounds` that `feed` holds directly (added
        to it, or naming it in `to`), newest first: as the store holds them now when `exact`,
        else as it held them at most `max_staleness` ago."""
        asked = time.monotonic()
        head = await self._warm(feed, asked if exact else asked - self.heads.max_staleness)
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
        oldest first, as the store holds them now."""
        head = await self._warm(feed, time.monotonic())
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

    async def _warm(self, feed: str, since: float) -> FeedHead | None:
        """The head of `feed` as read from the store at `since` or later; read once for all the
        readers that ask at the same time (the pull feed that 10,000 recovering follower feeds
        merge in): a reader joins the read under way if it began after `since`, else the next
        one, which begins once that one ends. None when heads are off or the read failed."""
        head = self.heads.fresh(feed, since)
        if head is not None or not self.heads.max_bytes:
            return head
        try:
            return await asyncio.shield(self._flight(feed, since))
        except Exception:
            return None

    def _flight(self, feed: str, since: float) -> asyncio.Future[FeedHead | None]:
        """The read of `feed`'s head to wait for (`_warm`), started if need be."""
        flight = self._warming.get(feed)
        if flight is None or (flight.started is not None and flight.started < since):
            flight = Flight(after=flight)
            flight.task = asyncio.ensure_future(self._read_head(feed, flight))
            self._warming[feed] = flight

            def landed(done: asyncio.Future[FeedHead | None], flight: Flight = flight) -> None:
                if self._warming.get(feed) is flight:
                    del self._warming[feed]
                if not done.cancelled():
                    done.exception()  # seen: its waiters fall back to the store

            flight.task.add_done_callback(landed)
        assert flight.task is not None
        return flight.task

    async def _read_head(self, feed: str, flight: Flight) -> FeedHead | None:
        before, flight.after = flight.after, None
        if before is not None and before.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(before.task)
        fill = self.heads.begin(feed)
        flight.started = fill.started if fill is not None else time.monotonic()
        items = None
        try:
            if self.heads.was_whole(feed):  # short: one query costs what the windows would
                cursor = self.entries.find({"feed": feed}, ITEM_FIELDS).sort("activity_id", -1)
                docs = await cursor.limit(ENTRIES).to_list()
            else:
                docs = await scan.newest_first(
                    self.entries, {"feed": feed}, "activity_id", scan.ACTIVITY_IDS, Bounds(),
                    ENTRIES, ITEM_FIELDS,
                )  # fmt: skip
            items = [(d["activity_id"], d.get("origin")) for d in docs]
            await fault_pause("heads.read")  # a reader delayed between its read and its keep
        finally:
            head = self.heads.end(fill, items, items is not None and len(items) < ENTRIES)
        return head

    async def own_above(self, feed: str, floor: str) -> list[str]:
        """Ids of every activity above `floor` that `feed` holds directly, oldest first."""
        docs = self.entries.find({"feed": feed, "activity_id": {"$gt": floor}}, ITEM_FIELDS)
        return sorted([d["activity_id"] async for d in docs if is_own(d)])

    async def latest_own(self, feed: str, limit: int) -> list[str]:
        """Ids of the newest activities that `feed` holds directly (what a new follower copies),
        as the store holds them now."""
        return await self.own_newest(feed, Bounds(), limit, exact=True)

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
        aging: list[str] = []
        fields = cache.get_many(ids, aging)
        if aging:  # past half their time: read again in the background
            spawn(self._fetch_into_cache(cache.refreshing(aging)))
        missing = [i for i in ids if i not in fields]
        if missing:
            fields.update(await self._fetch_into_cache(missing))
        return [
            public_activity(activity_id, fields[activity_id], origin)
            for activity_id, origin in entries
            if activity_id in fields
        ]

    async def _fetch_into_cache(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The fields of the stored activities among `ids`, kept in the cache."""
        if not ids:
            return {}
        cache = self.cache
        generation, read_at = cache.generation, time.monotonic()
        try:
            fetched = await self._fields.get_many(ids)
        finally:
            cache.refreshed(ids)
        cache.put_many(((i, d, n) for i, (d, n) in fetched.items()), generation, read_at)
        return {i: d for i, (d, _) in fetched.items()}

    async def _fetch_fields(self, ids: list[str]) -> dict[str, tuple[dict[str, Any], int]]:
        """The fields of the stored, not removed activities among `ids` (one `$in` for every
        load of a tick), each with its measured memory."""
        cursor = self.activities.find({"_id": {"$in": ids}}, {"data": 1, "removed": 1})
        found: dict[str, tuple[dict[str, Any], int]] = {}
        async for d in cursor:
            if "data" in d and not d.get("removed"):
                data = json.loads(d["data"])
                found[d["_id"]] = (data, measured(data))
        return found


def _own_item(item: Item) -> bool:
    return item[1] is None


def is_own(entry: Document) -> bool:
    return entry.get("origin") is None
