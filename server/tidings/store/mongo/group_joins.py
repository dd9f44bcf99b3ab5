"""The writes of a join (store/mongo/groups.py): one group update per (feed, group), or a few
commands for a whole fanout batch.

A fanout batch brings one activity, from one origin, to hundreds of grouped feeds: the same
joining (aggregation.Joining) for every one of them. Such a shared joining is written in two
steps instead of one upsert per feed (an update costs this store about three inserts, and each
statement of a bulk write is a transaction of its own):

1. one unordered insert of the group as it is when the joining creates it, for every feed; the
   unique (feed, group) index refuses it where the group exists;
2. for those, one `update_many` per FEEDS_PER_UPDATE feeds, with the same update pipeline as a
   single join and the same condition (the group does not hold the insert's token yet).

Either step leaves each group as the single join would: the insert writes what the upsert of a
missing group writes, and the update is that upsert's update. When step 2 updates fewer groups
than step 1 found, a group held the token already (this insert's recovery recomputed it) or
went in between (aged out, emptied): those feeds run the single joins again, which tells them
apart (store/mongo/groups.py: a held group is recomputed from its entries, which counts each
entry once whatever the update did, and a missing one is created).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from ...domain.aggregation import MAX_GROUP_ACTIVITIES, MAX_GROUP_ACTORS, Joining
from ...domain.ids import id_time
from . import bulk
from .client import Collection, Document
from .group_recompute import MAX_JOINED

SHARED_FROM = 4  # feeds sharing a joining from which the two-step write is used
FEEDS_PER_UPDATE = 50  # feeds named by one update_many (the embedded store's $in is quadratic)


@dataclass(frozen=True)
class Shared:
    """One joining, with its `origins` members, brought to many feeds by one insert."""

    joining: Joining
    came: tuple[str, ...]
    feeds: list[str]


async def join_shared(
    groups: Collection, shared: Shared, token: ObjectId
) -> tuple[list[str], list[str]]:
    """Write `shared` to each of its feeds' groups; answers the feeds whose group it created,
    and those left to the single joins (see the module's docstring)."""
    joining, came, feeds = shared.joining, list(shared.came), shared.feeds
    existing: list[str] = []
    try:
        await groups.insert_many([fresh(f, joining, came, token) for f in feeds], ordered=False)
    except BulkWriteError as exc:
        existing = [feeds[i] for i in bulk.duplicates(exc)]
    taken = set(existing)
    created = [f for f in feeds if f not in taken]
    updated = 0
    pipeline = join_pipeline(joining, came, token)
    for start in range(0, len(existing), FEEDS_PER_UPDATE):
        chunk = existing[start : start + FEEDS_PER_UPDATE]
        query = {"feed": {"$in": chunk}, "group": joining.key, "joined": {"$ne": token}}
        result = await groups.update_many(query, pipeline)
        updated += result.modified_count
    return created, (existing if updated < len(existing) else [])


def join_op(feed: str, joining: Joining, came: Sequence[str], token: ObjectId) -> UpdateOne:
    """One upsert of a group, conditional on its not holding the insert's token yet (a repeat
    is then a no-op: no match, and the upsert's insert hits the unique index)."""
    return UpdateOne(
        {"feed": feed, "group": joining.key, "joined": {"$ne": token}},
        join_pipeline(joining, came, token),
        upsert=True,
    )


def join_pipeline(joining: Joining, came: Sequence[str], token: ObjectId) -> list[Document]:
    """The update of a group that `joining` joins: an update pipeline, so that the ids and the
    actors are merged, sorted and bounded in the same op; the version goes up (a recompute that
    read the group before writes nothing) and the group records the token (the newest
    MAX_JOINED of them: see store/mongo/group_recompute.py). `came`: origin_members of the
    joining's ids; a group stored before groups kept origins keeps none (None: reads look its
    origins up in the entries) until it is recomputed."""
    ids, newest = list(joining.activity_ids), joining.newest
    known = {"$or": [{"$isArray": "$origins"}, {"$eq": [{"$ifNull": ["$gid", None]}, None]}]}

    def merged(field: str, new: list[str], order: int, bound: int) -> Document:
        union = {"$setUnion": [{"$ifNull": [f"${field}", []]}, {"$literal": new}]}
        return {"$slice": [{"$sortArray": {"input": union, "sortBy": order}}, bound]}

    return [{"$set": {
        "activity_ids": merged("activity_ids", ids, -1, MAX_GROUP_ACTIVITIES),
        "origins": {"$cond": [
            known, merged("origins", list(came), -1, MAX_GROUP_ACTIVITIES), None,
        ]},
        "activity_count": {"$add": [{"$ifNull": ["$activity_count", 0]}, joining.count]},
        "actors": merged("actors", list(joining.actors), 1, MAX_GROUP_ACTORS),
        "gid": {"$max": ["$gid", newest]},
        "updated_at": {"$max": ["$updated_at", id_time(newest)]},
        # "<newest id> <verb>": its $max is the newest activity's verb
        "newest_verb": {"$max": ["$newest_verb", f"{newest} {joining.verb}"]},
        "created_at": {"$min": ["$created_at", id_time(joining.oldest)]},
        "is_seen": {"$literal": False},
        "is_read": {"$literal": False},
        "v": {"$add": [{"$ifNull": ["$v", 0]}, 1]},
        "joined": {"$slice": [
            {"$concatArrays": [{"$ifNull": ["$joined", []]}, {"$literal": [token]}]},
            -MAX_JOINED,
        ]},
    }}]  # fmt: skip


def fresh(feed: str, joining: Joining, came: Sequence[str], token: ObjectId) -> Document:
    """The group that `join_pipeline` makes of no group (the upsert of a missing one)."""
    newest = joining.newest
    return {
        "feed": feed,
        "group": joining.key,
        "activity_ids": sorted(set(joining.activity_ids), reverse=True)[:MAX_GROUP_ACTIVITIES],
        "origins": sorted(set(came), reverse=True)[:MAX_GROUP_ACTIVITIES],
        "activity_count": joining.count,
        "actors": sorted(set(joining.actors))[:MAX_GROUP_ACTORS],
        "gid": newest,
        "updated_at": id_time(newest),
        "newest_verb": f"{newest} {joining.verb}",
        "created_at": id_time(joining.oldest),
        "is_seen": False,
        "is_read": False,
        "v": 1,
        "joined": [token],
    }
