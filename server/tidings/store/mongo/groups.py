"""Groups of aggregated and notification feeds (`feed_groups`).

A group document is `{feed, group, gid, newest_verb, activity_ids, origins, activity_count,
actors, created_at, updated_at, is_seen, is_read, v, joined}`: one per (feed, group key).
`activity_ids` holds the newest MAX_GROUP_ACTIVITIES ids, newest first; `origins` the feeds
that those of them that came through a follow came from (`origin_members`), so that a read
answers each activity's `origin` without reading the entries; `actors` the first
MAX_GROUP_ACTORS distinct actors (sorted). `gid`, the group's id, is its newest activity id:
activity ids sort by time, so group ids sort by `updated_at` (the time of the newest activity)
and a read pages on them as a flat feed pages on activity ids. An activity is in one group of
a feed, so `gid` is unique within the feed.

Groups are derived from the feed's entries (store/mongo/activities.py), which carry their `group`
key (and `actor`) in such feeds, and the token of the insert that wrote them: ActivityStore
calls `join` with the entries it inserted (a repeated insert inserts nothing, so it joins
nothing; each entry is inserted once, so it is counted once) and `recompute` after removing
entries or to recover an insert cut short (a group is recomputed from its entries; an empty
one disappears). `v` counts the writes of the group, so that a recompute is a compare-and-set
that never overwrites a concurrent join or recompute; `joined` holds the tokens of the
pending inserts that the group counts already (store/mongo/group_recompute.py says which entries a
recompute counts, why no interleaving of joins and recomputes loses or doubles one, and the
one window a crash leaves).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from ...config import NOTIFICATION, FeedGroup
from ...domain.aggregation import (
    Joining,
    joinings,
)
from ...domain.errors import FeedConfigError
from ...domain.ids import format_time
from ...domain.merge import Bounds
from . import bulk, scan
from .client import Database, Document
from .group_joins import SHARED_FROM, Shared, join_op, join_shared
from .group_recompute import GroupRecompute, late
from .merged_groups import MarkAll, MergedGroups, origin_members, stored_verb

JOIN_ATTEMPTS = 3  # a join that lost the race to create its group is run again
COUNT_CHUNK = 50  # feeds counted by one aggregate (the embedded store's $in is quadratic)
AGE_OUT_CONCURRENCY = 16  # feeds whose groups are trimmed at once (a fanout batch: up to 500)


@dataclass(frozen=True)
class GroupPage:
    groups: list[Document]  # as stored, newest updated first
    unseen: int
    unread: int
    # Activities merged in at read time from pull feeds, with the pull feed (their origin).
    pulled: Mapping[str, str] = dataclasses.field(default_factory=dict)


class GroupStore:
    def __init__(self, db: Database, feed_groups: Mapping[str, FeedGroup]) -> None:
        self.groups = db["feed_groups"]
        self.merged = MergedGroups(db)  # marks of groups merged in at read time
        self.entries = db["feed_entries"]
        self._recompute = GroupRecompute(db)
        self._feed_groups = {n: g for n, g in feed_groups.items() if g.grouped}

    def group_of_feed(self, feed: str) -> FeedGroup | None:
        """The feed's group when it is an aggregated or notification one."""
        return self._feed_groups.get(feed.partition(":")[0])

    def keys(
        self, feeds_and_ids: Sequence[tuple[str, str]], activities: Mapping[str, Mapping[str, Any]]
    ) -> list[tuple[str, str, str] | None]:
        """For each (feed, activity id): (group key, actor, verb) in a grouped feed, else None. An
        activity the format cannot be rendered for is a group of its own (its id is the key):
        an entry is never refused here, where a fanout batch would retry it for ever."""
        found: list[tuple[str, str, str] | None] = []
        for feed, activity_id in feeds_and_ids:
            group = self.group_of_feed(feed)
            activity = activities.get(activity_id)
            if group is None or group.aggregation is None or activity is None:
                found.append(None)
                continue
            try:
                key = group.aggregation.group_of(activity)
            except FeedConfigError:
                key = activity_id
            found.append((key, str(activity.get("actor", "")), str(activity.get("verb", ""))))
        return found

    async def join(
        self, joined: Iterable[tuple[str, str, Mapping[str, Any], str | None]], token: ObjectId
    ) -> None:
        """(feed, activity id, activity, origin) newly inserted into grouped feeds (by the
        insert of `token`) join their groups: one upsert per (feed, group) (an update pipeline:
        ids, origins, count, actors and the newest verb at once), all in one bulk write, each
        conditional on the group not holding the token yet; a joining that many feeds share (a
        fanout batch's activity) in one insert and a few updates for all of them
        (store/mongo/group_joins.py). A group that holds it already was
        recomputed by the recovery of this very insert (store/mongo/group_recompute.py), which may
        have missed some of its entries: it is recomputed again, as are all of them when the
        insert is so late that recomputes may take it for abandoned. Groups beyond
        `max_length` are trimmed."""
        by_feed: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        origins: dict[tuple[str, str], str] = {}
        for feed, activity_id, activity, origin in joined:
            by_feed.setdefault(feed, []).append((activity_id, activity))
            if origin is not None:
                origins[feed, activity_id] = origin
        shared: dict[tuple[Joining, tuple[str, ...]], list[str]] = {}
        for feed, members in by_feed.items():
            group = self.group_of_feed(feed)
            if group is None or group.aggregation is None:
                continue
            for joining in joinings(members, group.aggregation).values():
                ids = joining.activity_ids
                came = origin_members({i: origins[feed, i] for i in ids if (feed, i) in origins})
                shared.setdefault((joining, tuple(came)), []).append(feed)
        if not shared:
            return
        if late(token):
            pairs = [(f, joining.key) for (joining, _), feeds in shared.items() for f in feeds]
            await self.recompute(pairs, [token], create=True)
            return
        created: set[str] = set()
        ops, pairs = [], []
        for (joining, members_of), feeds in shared.items():
            single = feeds
            if len(feeds) >= SHARED_FROM:  # a fanout batch: a few commands for all its feeds
                batch = Shared(joining, members_of, feeds)
                made, single = await join_shared(self.groups, batch, token)
                created.update(made)
            ops += [join_op(feed, joining, members_of, token) for feed in single]
            pairs += [(feed, joining.key) for feed in single]
        if ops:
            upserted, held = await self._upsert(ops)
            created |= {pairs[index][0] for index in upserted}  # a new group: maybe one too many
            if held:
                created |= await self._recompute.run([pairs[i] for i in held], [token], create=True)
        await self._trim(created)

    async def _trim(self, created: Collection[str]) -> None:
        """Age out the groups of those feeds that got a group and now have too many."""
        over = await self._over_length(created)
        limit = asyncio.Semaphore(AGE_OUT_CONCURRENCY)

        async def age_out(feed: str) -> None:
            async with limit:
                await self._age_out(feed)

        await asyncio.gather(*(age_out(f) for f in over))

    async def _over_length(self, feeds: Collection[str]) -> list[str]:
        """Those of `feeds` with more groups than their `max_length`: one aggregate per
        COUNT_CHUNK feeds of one feed group (an index range per feed), not a count each."""
        by_group: dict[str, list[str]] = {}
        for feed in feeds:
            by_group.setdefault(feed.partition(":")[0], []).append(feed)
        over: list[str] = []
        for name, members in by_group.items():
            group = self._feed_groups.get(name)
            if group is None:
                continue
            for start in range(0, len(members), COUNT_CHUNK):
                cursor = await self.groups.aggregate([
                    {"$match": {"feed": {"$in": members[start : start + COUNT_CHUNK]}}},
                    {"$group": {"_id": "$feed", "n": {"$sum": 1}}},
                    {"$match": {"n": {"$gt": group.max_length}}},
                ])  # fmt: skip
                over += [d["_id"] async for d in cursor]
        return over

    async def _upsert(self, ops: list[UpdateOne]) -> tuple[set[int], list[int]]:
        """Run the joins; answers the indexes of those that created a group, and of those that
        found their group holding their token already. A join that hit the unique (feed,
        group) index either found its token in the group (a no-op) or raced another join
        creating that group: run again (the group exists now), it updates it or is a no-op for
        good."""
        upserted: set[int] = set()
        todo = list(range(len(ops)))
        for _ in range(JOIN_ATTEMPTS):
            try:
                result = await self.groups.bulk_write([ops[i] for i in todo], ordered=False)
                return upserted | {todo[i] for i in (result.upserted_ids or {})}, []
            except BulkWriteError as exc:
                repeated = bulk.duplicates(exc)
                upserted |= {todo[u["index"]] for u in exc.details.get("upserted", [])}
                todo = [todo[i] for i in repeated]
        return upserted, todo

    async def _age_out(self, feed: str) -> None:
        """`max_length`: the least recently updated groups beyond it go."""
        group = self.group_of_feed(feed)
        if group is None:
            return
        kept = await scan.newest_first(
            self.groups, {"feed": feed}, "gid", scan.ACTIVITY_IDS, Bounds(),
            group.max_length + 1, {"gid": 1},
        )  # fmt: skip
        if len(kept) > group.max_length:
            floor = kept[group.max_length - 1]["gid"]
            await self.groups.delete_many({"feed": feed, "gid": {"$lt": floor}})

    async def recompute(
        self,
        pairs: Iterable[tuple[str, str]],
        adopt: Collection[ObjectId] = (),
        create: bool = False,
    ) -> None:
        """(feed, group key) pairs whose entries were removed (or whose join an insert cut
        short left pending: `adopt`, `create`): each group is computed again from its entries
        (store/mongo/group_recompute.py: a compare-and-set on the group's version, so that no
        concurrent join or recompute is overwritten); an empty one disappears. Groups aged
        out stay out, unless `create`."""
        created = await self._recompute.run(pairs, adopt, create)
        await self._trim(created)

    async def entry_origins(self, feed: str, activity_ids: Sequence[str]) -> dict[str, str | None]:
        """The origin (the followed feed it came through, or None) of each of these activities
        that `feed` holds, from its entries: for groups stored before they kept `origins`."""
        found: dict[str, str | None] = {}
        for start in range(0, len(activity_ids), COUNT_CHUNK):
            chunk = list(activity_ids[start : start + COUNT_CHUNK])
            query = {"feed": feed, "activity_id": {"$in": chunk}}
            async for d in self.entries.find(query, {"activity_id": 1, "origin": 1, "_id": 0}):
                found[d["activity_id"]] = d.get("origin")
        return found

    async def read(self, feed: str, bounds: Bounds, offset: int, limit: int) -> GroupPage:
        """A page of the feed's groups, newest updated first, with the unseen/unread counts."""
        docs = await scan.newest_first(
            self.groups, {"feed": feed}, "gid", scan.ACTIVITY_IDS, bounds, offset + limit
        )
        unseen = unread = 0
        group = self.group_of_feed(feed)
        if group is not None and group.type == NOTIFICATION:
            unseen = await self.groups.count_documents({"feed": feed, "is_seen": False})
            unread = await self.groups.count_documents({"feed": feed, "is_read": False})
        return GroupPage(docs[offset:], unseen, unread)

    async def by_keys(self, feed: str, keys: Sequence[str]) -> list[Document]:
        """The feed's stored groups of these keys (one indexed lookup each)."""
        docs = await asyncio.gather(
            *(self.groups.find_one({"feed": feed, "group": key}) for key in keys)
        )
        return [d for d in docs if d is not None]

    async def counts(self, feed: str) -> tuple[int, int]:
        """(unseen, unread) groups of the feed."""
        unseen = await self.groups.count_documents({"feed": feed, "is_seen": False})
        unread = await self.groups.count_documents({"feed": feed, "is_read": False})
        return unseen, unread

    async def counts_many(self, feeds: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(unseen, unread) groups of each feed (the counts of a fanout batch's events): two
        aggregates per COUNT_CHUNK feeds, on the (feed, is_seen) and (feed, is_read) indexes,
        not two counts per feed. (One aggregate of both would read every group of the feeds.)"""
        found = {feed: [0, 0] for feed in feeds}
        for start in range(0, len(feeds), COUNT_CHUNK):
            chunk = list(feeds[start : start + COUNT_CHUNK])
            for index, flag in enumerate(("is_seen", "is_read")):
                cursor = await self.groups.aggregate([
                    {"$match": {"feed": {"$in": chunk}, flag: False}},
                    {"$group": {"_id": "$feed", "n": {"$sum": 1}}},
                ])  # fmt: skip
                async for d in cursor:
                    found[d["_id"]][index] = d["n"]
        return {feed: (unseen, unread) for feed, (unseen, unread) in found.items()}

    async def mark(self, feed: str, seen: MarkAll, read: MarkAll) -> bool:
        """Mark every group (True) or these group ids seen / read (independently, as Stream);
        answers whether anything was asked."""
        asked = False
        for field, which in (("is_seen", seen), ("is_read", read)):
            if which is False or (not isinstance(which, bool) and not which):
                continue
            asked = True
            query: Document = {"feed": feed, field: False}
            if not isinstance(which, bool):
                query["gid"] = {"$in": list(which)}
            await self.groups.update_many(query, {"$set": {field: True}})
        return asked


def public_group(doc: Document, activities: list[dict[str, Any]], notification: bool) -> Document:
    """A group as Stream answers it."""
    found = {
        "id": doc["gid"],
        "group": doc["group"],
        "verb": stored_verb(doc),
        "activities": activities,
        "activity_count": doc["activity_count"],
        "actor_count": len(doc.get("actors", ())),
        "created_at": format_time(doc["created_at"]),
        "updated_at": format_time(doc["updated_at"]),
    }
    if notification:
        found["is_seen"], found["is_read"] = bool(doc["is_seen"]), bool(doc["is_read"])
    return found
