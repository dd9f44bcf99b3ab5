"""Reads of feeds (hybrid fanout: pull feeds): a feed's own entries merged with the activities of
the pull feeds it follows, exactly as if those had been copied into it.

A reader of feed S finds the pull feeds S follows through its follows marked `pull`; for each,
the follow and the pull feed's metadata give the floor above which S holds the pull feed's own
activities (FollowRecord.merged_above). Each stream is read with the page's bounds and at most
`offset + limit` items, then merged (domain/merge.py): what S holds itself wins over a merged
copy of the same activity.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..bus.base import Bus
from ..bus.messages import FollowChanged, Subscribed
from ..config import NOTIFICATION, FeedGroup
from ..domain.aggregation import joinings
from ..domain.merge import Bounds, merge_newest_first, merge_oldest_first
from ..store.memory.coalesce import Coalescer
from ..store.memory.recent_reads import RecentReads
from ..store.mongo.activities import ActivityStore
from ..store.mongo.entry_reads import Item, Page
from ..store.mongo.feeds import FeedMeta
from ..store.mongo.follow_records import FollowRecord
from ..store.mongo.follows import FollowStore
from ..store.mongo.groups import GroupPage, GroupStore, public_group
from ..store.mongo.merged_groups import MarkAll, combined, group_origins

PULL_WINDOW = 300  # newest activities of each followed pull feed a grouped read merges in
KNOWN_PULLS_FEEDS = 50_000  # feeds remembered so


class KnownPulls:
    """What a feed merges in at read time (the pull feeds it follows, each with its floor), per
    node, so that a page of a feed needs no store query to find it: the common case is nothing
    (a feed that follows no pull feed), the other a few pull feeds. A follow gets marked as a
    follow of a pull feed (or unmarked) only by a follow or unfollow of a pull feed or by a switch
    to pull, and each publishes `FollowChanged` for its follower, to every node
    (feeds/following.py, fanout/switches.py): that forgets the feed. A lookup that raced a change
    is not remembered (`generation`); after the bus was down everything is forgotten
    (`Subscribed`), and entries expire after `ttl` (`cache.max_staleness_seconds`: a lost
    message, or a floor moved by a switch back to push, costs a page that long; a `since` does
    not ask, Reads.merged)."""

    def __init__(self, ttl: float, bus: Bus) -> None:
        self.ttl = ttl
        self.generation = 0
        self._known: OrderedDict[str, tuple[float, list[tuple[str, str]]]] = OrderedDict()
        bus.on(FollowChanged, lambda message: self.changed(message.source))
        bus.on(Subscribed, lambda _: self.clear())

    def get(self, feed: str) -> list[tuple[str, str]] | None:
        found = self._known.get(feed)
        if found is None:
            return None
        if found[0] < time.monotonic():
            del self._known[feed]
            return None
        return found[1]

    def remember(self, feed: str, merged: list[tuple[str, str]], generation: int) -> None:
        if generation != self.generation:
            return
        self._known[feed] = (time.monotonic() + self.ttl, merged)
        self._known.move_to_end(feed)
        while len(self._known) > KNOWN_PULLS_FEEDS:
            self._known.popitem(last=False)

    def changed(self, feed: str) -> None:
        self.generation += 1
        self._known.pop(feed, None)

    def clear(self) -> None:
        self.generation += 1
        self._known.clear()


@dataclass(frozen=True)
class GroupedRead:
    """A read of an aggregated or notification feed, as Stream answers it."""

    groups: list[dict[str, Any]]
    unseen: int | None  # notification feeds only: counts from before the marks
    unread: int | None
    marked: bool  # the read marked some groups seen or read


class Reads:
    def __init__(
        self, activities: ActivityStore, follows: FollowStore, bus: Bus,
        recent: RecentReads | None = None,
    ) -> None:  # fmt: skip
        self.activities, self.follows = activities, follows
        # The feeds read lately: a fanout writes them first (fanout/runner.py).
        self.recent = recent if recent is not None else RecentReads(0)
        # What concurrent reads and subscribes ask of the store, one `$in` query per tick.
        self._pull_follows: Coalescer[str, list[FollowRecord]] = Coalescer(follows.pull_follows_of)
        self._metas: Coalescer[str, FeedMeta] = Coalescer(follows.meta.get_many)
        self.known_pulls = KnownPulls(activities.heads.max_staleness, bus)

    async def _pull_follows_of(self, feed: str) -> list[FollowRecord]:
        return (await self._pull_follows.get_many((feed,))).get(feed, [])

    async def merged(self, feed: str, exact: bool = False) -> list[tuple[str, str]]:
        """The pull feeds `feed` merges in, each with its floor: as the store says now when
        `exact`, else perhaps as it said `known_pulls.ttl` ago."""
        if not exact and (known := self.known_pulls.get(feed)) is not None:
            return known
        generation = self.known_pulls.generation
        records = await self._pull_follows_of(feed)
        found = []
        if records:
            metas = await self._metas.get_many(r.target for r in records)
            for record in records:
                floor = record.merged_above(metas[record.target])
                if floor is not None:
                    found.append((record.target, floor))
        self.known_pulls.remember(feed, found, generation)
        return found

    async def pull_sources(self, feed: str) -> list[str]:
        """The pull feeds whose updates the subscribers of `feed` get: those it follows, and
        itself when it is one."""
        records = await self._pull_follows_of(feed)
        metas = await self._metas.get_many([feed, *(r.target for r in records)])
        sources = [r.target for r in records if metas[r.target].pull_rooms]
        if metas[feed].pull_rooms:
            sources.append(feed)
        return sources

    async def pull_sources_of(self, feeds: list[str]) -> dict[str, list[str]]:
        """`pull_sources` of many feeds (a connect storm's subscribes, batched by
        realtime/events/pull_sources.py): their pull follows and their own metadata in one
        query each, side by side, then the metadata of the feeds they follow (as
        `pull_sources` reads it: after the follows)."""
        records, own = await asyncio.gather(
            self.follows.pull_follows_of(feeds), self.follows.meta.get_many(feeds)
        )
        targets = {r.target for found in records.values() for r in found}
        metas = await self._metas.get_many(targets) if targets else {}
        answer: dict[str, list[str]] = {}
        for feed in feeds:
            sources = [r.target for r in records.get(feed, ()) if metas[r.target].pull_rooms]
            if own[feed].pull_rooms:
                sources.append(feed)
            answer[feed] = sources
        return answer

    async def read_groups(
        self, feed: str, page: Page, mark_seen: MarkAll = False, mark_read: MarkAll = False
    ) -> GroupedRead:
        """A page of groups, newest updated first, then the marks: the answer shows the state
        from before them, as Stream's does. Activities of the pull feeds it follows are merged
        into its groups (`_with_pulled`), and marks of such groups stick (GroupStore
        .mark_merged)."""
        groups, group = self._grouped(feed)
        self.recent.saw(feed)
        pulls = await self.merged(feed)
        merged: list[dict[str, Any]] = []
        if pulls:
            found, merged = await self._with_pulled(feed, group, page, pulls)
        else:
            found = await groups.read(feed, page.bounds(), page.offset, page.limit)
        loaded = await self.activities.load(await self._group_items(feed, found))
        by_id = {a["id"]: a for a in loaded}
        notification = group.type == NOTIFICATION
        public = [
            public_group(doc, [by_id[i] for i in doc["activity_ids"] if i in by_id], notification)
            for doc in found.groups
        ]
        marked = False
        if notification:
            marked = await groups.mark(feed, mark_seen, mark_read)
            if merged:
                await groups.merged.mark_merged(feed, merged, mark_seen, mark_read)
        return GroupedRead(
            public,
            found.unseen if notification else None,
            found.unread if notification else None,
            marked,
        )

    async def _group_items(self, feed: str, found: GroupPage) -> list[Item]:
        """The activities of a page of groups with their origins: the followed feed that the
        feed got each through (its entry's), or the pull feed it is merged in from."""
        groups, _ = self._grouped(feed)
        origins: dict[str, str | None] = dict(found.pulled)
        unknown: list[str] = []
        for doc in found.groups:
            stored = group_origins(doc)
            if stored is None:
                unknown += [i for i in doc["activity_ids"] if i not in found.pulled]
            else:
                origins.update(stored)
        if unknown:
            origins.update(await groups.entry_origins(feed, unknown))
        return [(i, origins.get(i)) for doc in found.groups for i in doc["activity_ids"]]

    def _grouped(self, feed: str) -> tuple[GroupStore, FeedGroup]:
        groups = self.activities.groups
        group = groups.group_of_feed(feed) if groups is not None else None
        if groups is None or group is None:
            raise ValueError(f"{feed} is not an aggregated or notification feed")
        return groups, group

    async def counts(self, feed: str) -> tuple[int, int]:
        """(unseen, unread) groups of a notification feed, merged groups of the pull feeds it
        follows counted as a read counts them (the live counts of its events)."""
        groups, group = self._grouped(feed)
        pulls = await self.merged(feed)
        if not pulls:
            return await groups.counts(feed)
        found, _ = await self._with_pulled(feed, group, Page(limit=1), pulls)
        return found.unseen, found.unread

    async def counts_many(self, feeds: Sequence[str]) -> dict[str, tuple[int, int]]:
        """`counts` of many notification feeds (one fanout batch's events): a few queries per
        100 feeds, and a merged read only for the feeds that follow pull feeds."""
        groups = self.activities.groups
        if groups is None or not feeds:
            return {}
        pulling = await groups.merged.following_pull(feeds)
        found = await groups.counts_many([f for f in feeds if f not in pulling])
        for feed in pulling:
            found[feed] = await self.counts(feed)
        return found

    async def _with_pulled(
        self, feed: str, group: FeedGroup, page: Page, pulls: list[tuple[str, str]]
    ) -> tuple[GroupPage, list[dict[str, Any]]]:
        """The stored groups combined with the groups of the newest PULL_WINDOW activities of
        each pull feed it follows (merged at read time, never copied): as if they had been
        copied, with the marks of merged groups (store/mongo/groups.py). Answers the page (its
        counts count every group, merged ones too) and every group that holds merged activities."""
        groups = self.activities.groups
        assert groups is not None and group.aggregation is not None
        pulled_ids = await asyncio.gather(*(
            self.activities.own_newest(target, Bounds().above(floor), PULL_WINDOW)
            for target, floor in pulls
        ))  # fmt: skip
        sources = {
            i: target for (target, _), found in zip(pulls, pulled_ids, strict=True) for i in found
        }
        ids = sorted(sources, reverse=True)
        held = await self.activities.held_of(feed, ids)  # what it holds is in its groups
        ids = [i for i in ids if i not in held]
        written = await self.activities.as_written(ids)  # grouped as first written
        pulled = joinings(((i, written[i]) for i in ids if i in written), group.aggregation)
        bounds, want = page.bounds(), page.offset + page.limit
        stored = await groups.read(feed, bounds, 0, want)
        by_key = {doc["group"]: doc for doc in stored.groups}
        own = {d["group"]: d for d in await groups.by_keys(feed, list(pulled))}
        by_key.update(own)
        marks = await groups.merged.merge_marks(feed, list(pulled))
        unseen, unread = stored.unseen, stored.unread
        merged = []
        for key, joining in pulled.items():
            doc = own.get(key)
            mixed = combined(doc, joining, marks.get(key))
            for flag in ("is_seen", "is_read"):  # the stored counts counted the stored part
                change = int(not mixed[flag]) - int(doc is not None and not doc[flag])
                if flag == "is_seen":
                    unseen += change
                else:
                    unread += change
            by_key[key] = mixed
            merged.append(mixed)
        docs = sorted(
            (d for d in by_key.values() if bounds.admits(d["gid"])),
            key=lambda d: d["gid"], reverse=True,
        )  # fmt: skip
        origins = {i: sources[i] for i in ids}
        return GroupPage(docs[page.offset : want], unseen, unread, origins), merged

    async def read(self, feed: str, page: Page) -> list[dict[str, Any]]:
        self.recent.saw(feed)
        pulls = await self.merged(feed)
        if not pulls:
            return await self.activities.read(feed, page)
        bounds, want = page.bounds(), page.offset + page.limit

        async def pulled(target: str, floor: str) -> list[Item]:
            ids = await self.activities.own_newest(target, bounds.above(floor), want)
            return [(activity_id, target) for activity_id in ids]

        streams = await asyncio.gather(
            self.activities.newest(feed, bounds, want),
            *(pulled(target, floor) for target, floor in pulls),
        )
        return await self.activities.load(
            merge_newest_first(streams, bounds, page.offset, page.limit)
        )

    async def since(self, feed: str, since: str, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` activities newer than `since`, oldest first: every one the feed held
        when asked."""
        pulls = await self.merged(feed, exact=True)
        if not pulls:
            return await self.activities.since(feed, since, limit)

        async def pulled(target: str, floor: str) -> list[Item]:
            ids = await self.activities.own_after(target, max(since, floor), limit)
            return [(activity_id, target) for activity_id in ids]

        streams = await asyncio.gather(
            self.activities.after(feed, since, limit),
            *(pulled(target, floor) for target, floor in pulls),
        )
        return await self.activities.load(merge_oldest_first(streams, since, limit))
