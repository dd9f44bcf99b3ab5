"""Groups of aggregated and notification feeds (`feed_groups`).

A group document is `{feed, group, gid, newest_verb, activity_ids, activity_count, actors,
created_at, updated_at, is_seen, is_read}`: one per (feed, group key). `activity_ids` holds the
newest MAX_GROUP_ACTIVITIES ids, newest first; `actors` the first MAX_GROUP_ACTORS distinct
actors (sorted). `gid`, the group's id, is its newest activity id: activity ids sort by time,
so group ids sort by `updated_at` (the time of the newest activity) and a read pages on them as
a flat feed pages on activity ids. An activity is in one group of a feed, so `gid` is unique
within the feed.

Groups are derived from the feed's entries (store/activities.py), which carry their `group`
key (and `actor`) in such feeds: ActivityStore calls `join` with the entries it inserted (a
repeated insert inserts nothing, so it joins nothing) and `recompute` after removing entries
(a group is recomputed from its entries; an empty one disappears). Joins are conditional on
the group not holding the ids yet, so two racing inserts of one entry count it once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from ..config import NOTIFICATION, FeedGroup
from ..domain.aggregation import (
    MAX_GROUP_ACTIVITIES,
    MAX_GROUP_ACTORS,
    Joining,
    joinings,
    regroup,
)
from ..domain.errors import FeedConfigError
from ..domain.ids import format_time, id_time
from ..faults import fault_hold
from ..domain.merge import Bounds
from . import scan
from .merged_groups import MarkAll, MergedGroups, stored_verb
from .mongo import DUPLICATE_KEY, Database, Document

JOIN_ATTEMPTS = 3  # a join that lost the race to create its group is run again
COUNT_CHUNK = 100  # feeds counted by one aggregate (the embedded store's $in is quadratic)
AGE_OUT_CONCURRENCY = 16  # feeds whose groups are trimmed at once (a fanout batch: up to 500)


@dataclass(frozen=True)
class GroupPage:
    groups: list[Document]  # as stored, newest updated first
    unseen: int
    unread: int


class GroupStore:
    def __init__(self, db: Database, feed_groups: Mapping[str, FeedGroup]) -> None:
        self.groups = db["feed_groups"]
        self.merged = MergedGroups(db)  # marks of groups merged in at read time
        self.entries = db["feed_entries"]
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

    async def join(self, joined: Iterable[tuple[str, str, Mapping[str, Any]]]) -> list[str]:
        """(feed, activity id, activity) newly inserted into grouped feeds join their groups:
        one conditional upsert per (feed, group) (an update pipeline: ids, count, actors and
        the newest verb at once), all in one bulk write, then one count per 100 feeds that got
        a new group (age-out). Answers the feeds whose groups changed."""
        by_feed: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        for feed, activity_id, activity in joined:
            by_feed.setdefault(feed, []).append((activity_id, activity))
        ops, op_feeds = [], []
        for feed, members in by_feed.items():
            group = self.group_of_feed(feed)
            if group is None or group.aggregation is None:
                continue
            for joining in joinings(members, group.aggregation).values():
                ops.append(_join_op(feed, joining))
                op_feeds.append(feed)
        if not ops:
            return []
        upserted = await self._upsert(ops)
        created = {op_feeds[index] for index in upserted}  # a new group: maybe one too many
        over = await self._over_length(created)
        limit = asyncio.Semaphore(AGE_OUT_CONCURRENCY)

        async def age_out(feed: str) -> None:
            async with limit:
                await self._age_out(feed)

        await asyncio.gather(*(age_out(f) for f in over))
        return list(by_feed)

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

    async def _upsert(self, ops: list[UpdateOne]) -> set[int]:
        """Run the joins; answers the indexes of those that created a group. A join that hit
        the unique (feed, group) index either found its ids in the group already (a no-op) or
        raced another join creating that group: run again (the group exists now), it updates
        it or is a no-op for good."""
        upserted: set[int] = set()
        todo = list(range(len(ops)))
        for _ in range(JOIN_ATTEMPTS):
            try:
                result = await self.groups.bulk_write([ops[i] for i in todo], ordered=False)
                return upserted | {todo[i] for i in (result.upserted_ids or {})}
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                upserted |= {todo[u["index"]] for u in exc.details.get("upserted", [])}
                todo = [todo[e["index"]] for e in errors]
        return upserted

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

    async def recompute(self, pairs: Iterable[tuple[str, str]]) -> None:
        """(feed, group key) pairs whose entries were removed: each group is computed again
        from its entries (domain/aggregation.regroup: ids, counts, actors, times and the newest
        activity's verb); an empty one disappears. Groups aged out stay out."""
        for feed, key in set(pairs):
            docs = await self.entries.find(
                {"feed": feed, "group": key},
                {"activity_id": 1, "actor": 1, "verb": 1, "_id": 0},
            ).to_list()
            members = {d["activity_id"]: (str(d.get("actor", "")), d.get("verb")) for d in docs}
            newest = max(members, default=None)
            if newest is not None and members[newest][1] is None:  # an entry from before verbs
                doc = await self.entries.database["activities"].find_one({"_id": newest})
                verb = json.loads(doc["data"]).get("verb", "") if doc and "data" in doc else ""
                members[newest] = (members[newest][0], str(verb))
            group = regroup(key, {i: (a, str(v or "")) for i, (a, v) in members.items()})
            await fault_hold("groups.recompute_read")
            if group is None:
                await self.groups.delete_one({"feed": feed, "group": key})
                continue
            await self.groups.update_one(
                {"feed": feed, "group": key},
                {"$set": {
                    "activity_ids": list(group.activity_ids),
                    "activity_count": group.activity_count,
                    "actors": list(group.actors), "gid": group.newest,
                    "newest_verb": f"{group.newest} {group.verb}",
                    "updated_at": id_time(group.newest), "created_at": id_time(group.oldest),
                }},
            )  # fmt: skip

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
        not two counts per feed."""
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


def _join_op(feed: str, joining: Joining) -> UpdateOne:
    """One upsert of a group, conditional on its not holding any of the ids yet (a repeat is
    then a no-op: no match, and the upsert's insert hits the unique index). An update
    pipeline, so that the ids and the actors are merged, sorted and bounded in the same op."""
    ids, newest = list(joining.activity_ids), joining.newest

    def merged(field: str, new: list[str], order: int, bound: int) -> Document:
        union = {"$setUnion": [{"$ifNull": [f"${field}", []]}, {"$literal": new}]}
        return {"$slice": [{"$sortArray": {"input": union, "sortBy": order}}, bound]}

    return UpdateOne(
        {"feed": feed, "group": joining.key, "activity_ids": {"$nin": ids}},
        [{"$set": {
            "activity_ids": merged("activity_ids", ids, -1, MAX_GROUP_ACTIVITIES),
            "activity_count": {"$add": [{"$ifNull": ["$activity_count", 0]}, joining.count]},
            "actors": merged("actors", list(joining.actors), 1, MAX_GROUP_ACTORS),
            "gid": {"$max": ["$gid", newest]},
            "updated_at": {"$max": ["$updated_at", id_time(newest)]},
            # "<newest id> <verb>": its $max is the newest activity's verb
            "newest_verb": {"$max": ["$newest_verb", f"{newest} {joining.verb}"]},
            "created_at": {"$min": ["$created_at", id_time(joining.oldest)]},
            "is_seen": {"$literal": False},
            "is_read": {"$literal": False},
        }}],
        upsert=True,
    )  # fmt: skip


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
