"""Reads of feeds (DESIGN.md "Fanout" step 4): a feed's own entries merged with the activities of
the pull feeds it follows, exactly as if those had been copied into it.

A reader of feed S finds the pull feeds S follows through its follows marked `pull`; for each,
the follow and the pull feed's metadata give the floor above which S holds the pull feed's own
activities (FollowRecord.merged_above). Each stream is read with the page's bounds and at most
`offset + limit` items, then merged (domain/merge.py): what S holds itself wins over a merged
copy of the same activity.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ..config import NOTIFICATION, FeedGroup
from ..domain.aggregation import joinings
from ..domain.merge import Bounds, merge_newest_first, merge_oldest_first
from ..store.activities import ActivityStore, Item, Page
from ..store.follows import FollowStore
from ..store.groups import GroupPage, MarkAll, combined, public_group

PULL_WINDOW = 300  # newest activities of each followed pull feed a grouped read merges in


@dataclass(frozen=True)
class GroupedRead:
    """A read of an aggregated or notification feed, as Stream answers it."""

    groups: list[dict[str, Any]]
    unseen: int | None  # notification feeds only: counts from before the marks
    unread: int | None
    marked: bool  # the read marked some groups seen or read


class Reads:
    def __init__(self, activities: ActivityStore, follows: FollowStore) -> None:
        self.activities, self.follows = activities, follows

    async def merged(self, feed: str) -> list[tuple[str, str]]:
        """The pull feeds `feed` merges in, each with its floor."""
        records = await self.follows.pull_follows(feed)
        if not records:
            return []
        metas = await self.follows.meta.get_many(r.target for r in records)
        found = []
        for record in records:
            floor = record.merged_above(metas[record.target])
            if floor is not None:
                found.append((record.target, floor))
        return found

    async def pull_sources(self, feed: str) -> list[str]:
        """The pull feeds whose updates the subscribers of `feed` get: those it follows, and
        itself when it is one."""
        records = await self.follows.pull_follows(feed)
        metas = await self.follows.meta.get_many([feed, *(r.target for r in records)])
        sources = [r.target for r in records if metas[r.target].pull_rooms]
        if metas[feed].pull_rooms:
            sources.append(feed)
        return sources

    async def read_groups(
        self, feed: str, page: Page, mark_seen: MarkAll = False, mark_read: MarkAll = False
    ) -> GroupedRead:
        """A page of groups, newest updated first, then the marks: the answer shows the state
        from before them, as Stream's does. (Activities of pull feeds a grouped feed follows
        are not merged into its groups: see README.)"""
        groups = self.activities.groups
        group = groups.group_of_feed(feed) if groups is not None else None
        if groups is None or group is None:
            raise ValueError(f"{feed} is not an aggregated or notification feed")
        pulls = await self.merged(feed)
        if pulls:
            found = await self._with_pulled(feed, group, page, pulls)
        else:
            found = await groups.read(feed, page.bounds(), page.offset, page.limit)
        loaded = await self.activities.load(
            (i, None) for doc in found.groups for i in doc["activity_ids"]
        )
        by_id = {a["id"]: a for a in loaded}
        notification = group.type == NOTIFICATION
        public = [
            public_group(doc, [by_id[i] for i in doc["activity_ids"] if i in by_id], notification)
            for doc in found.groups
        ]
        marked = notification and await groups.mark(feed, mark_seen, mark_read)
        return GroupedRead(
            public,
            found.unseen if notification else None,
            found.unread if notification else None,
            marked,
        )

    async def _with_pulled(
        self, feed: str, group: FeedGroup, page: Page, pulls: list[tuple[str, str]]
    ) -> GroupPage:
        """The stored groups combined with the groups of the newest PULL_WINDOW activities of
        each pull feed it follows (merged at read time, never copied): as if they had been
        copied. A group only merged in is unseen and unread (marks are stored per group)."""
        groups = self.activities.groups
        assert groups is not None and group.aggregation is not None
        pulled_ids = await asyncio.gather(*(
            self.activities.own_newest(target, Bounds().above(floor), PULL_WINDOW)
            for target, floor in pulls
        ))  # fmt: skip
        ids = sorted({i for found in pulled_ids for i in found}, reverse=True)
        held = await self.activities.held_of(feed, ids)  # what it holds is in its groups
        ids = [i for i in ids if i not in held]
        loaded = {a["id"]: a for a in await self.activities.load((i, None) for i in ids)}
        pulled = joinings(((i, a) for i, a in loaded.items()), group.aggregation)
        bounds, want = page.bounds(), page.offset + page.limit
        stored = await groups.read(feed, bounds, 0, want)
        by_key = {doc["group"]: doc for doc in stored.groups}
        by_key.update({d["group"]: d for d in await groups.by_keys(feed, list(pulled))})
        unseen, unread = stored.unseen, stored.unread
        for key, joining in pulled.items():
            doc = by_key.get(key)
            if doc is None:
                unseen, unread = unseen + 1, unread + 1
            by_key[key] = combined(doc, joining)
        docs = sorted(
            (d for d in by_key.values() if bounds.admits(d["gid"])),
            key=lambda d: d["gid"], reverse=True,
        )  # fmt: skip
        return GroupPage(docs[page.offset : want], unseen, unread)

    async def read(self, feed: str, page: Page) -> list[dict[str, Any]]:
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
        """Up to `limit` activities newer than `since`, oldest first."""
        pulls = await self.merged(feed)
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
