"""Activities and the materialised feeds (`activities`, `feed_entries`).

An entry is `{feed, activity_id, origin}`: the feed holds the activity, which reached it directly
(`origin` None: added to it, or named in its `to`) or through a follow (`origin` = followed feed).
Entry inserts are idempotent: the unique (feed, activity_id) index turns a repeat into a no-op,
so a fanout batch can be re-run after a crash without doubling anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReplaceOne
from pymongo.errors import BulkWriteError

from ..domain.activities import Activity, public_activity
from .mongo import Database, Document

DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class Entry:
    feed: str
    activity_id: str
    origin: str | None = None


@dataclass(frozen=True)
class StoredActivity:
    id: str
    feed: str
    to: tuple[str, ...]
    foreign_id: str | None
    data: dict[str, Any]
    removed: bool = False

    def public(self, origin: str | None = None) -> dict[str, Any]:
        return public_activity(self.id, self.data, origin)


@dataclass(frozen=True)
class Page:
    """Which entries of a feed to read: newest first, bounded by id, then offset and limit."""

    limit: int = 25
    offset: int = 0
    id_lt: str | None = None
    id_lte: str | None = None
    id_gt: str | None = None
    id_gte: str | None = None

    def id_filter(self) -> dict[str, str]:
        ops = {"$lt": self.id_lt, "$lte": self.id_lte, "$gt": self.id_gt, "$gte": self.id_gte}
        return {op: value for op, value in ops.items() if value is not None}


class ActivityStore:
    def __init__(self, db: Database) -> None:
        self.activities = db["activities"]
        self.entries = db["feed_entries"]

    async def save(self, activities: Sequence[Activity], feed: str) -> None:
        """Store activities added to `feed`; the same id again replaces the stored one."""
        await self.activities.bulk_write(
            [ReplaceOne({"_id": a.id}, _activity_doc(a, feed), upsert=True) for a in activities],
            ordered=True,
        )

    async def insert_entries(self, entries: Sequence[Entry]) -> list[Entry]:
        """Insert entries in one unordered bulk write; answer those that were not there yet."""
        if not entries:
            return []
        docs = [{"feed": e.feed, "activity_id": e.activity_id, "origin": e.origin} for e in entries]
        try:
            await self.entries.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(err.get("code") != DUPLICATE_KEY for err in errors):
                raise
            skipped = {err["index"] for err in errors}
            return [e for i, e in enumerate(entries) if i not in skipped]
        return list(entries)

    async def remove_entries(self, feeds: Sequence[str], activity_id: str) -> int:
        result = await self.entries.delete_many(
            {"feed": {"$in": list(feeds)}, "activity_id": activity_id}
        )
        return result.deleted_count

    async def remove_from_origin(self, feed: str, origin: str) -> int:
        """Unfollow: drop what `feed` got through its follow of `origin`."""
        result = await self.entries.delete_many({"feed": feed, "origin": origin})
        return result.deleted_count

    async def mark_removed(self, activity_id: str) -> None:
        """Tombstone an activity removed from its own feed, so that a fanout still running or
        resumed later never puts it back (see FanoutRunner._add_batch)."""
        await self.activities.update_one({"_id": activity_id}, {"$set": {"removed": True}})

    async def is_removed(self, activity_id: str) -> bool:
        doc = await self.activities.find_one({"_id": activity_id}, {"removed": 1})
        return doc is None or bool(doc.get("removed"))

    async def get(self, activity_id: str) -> StoredActivity | None:
        doc = await self.activities.find_one({"_id": activity_id})
        return None if doc is None else _stored(doc)

    async def find_by_foreign_id(self, feed: str, foreign_id: str) -> list[StoredActivity]:
        """Activities with this foreign id that `feed` holds directly."""
        docs = await self.activities.find({"foreign_id": foreign_id}).to_list()
        if not docs:
            return []
        held = await self.entries.find(
            {"feed": feed, "activity_id": {"$in": [d["_id"] for d in docs]}, "origin": None},
            {"activity_id": 1},
        ).to_list()
        ids = {e["activity_id"] for e in held}
        return [_stored(d) for d in docs if d["_id"] in ids]

    async def holds(self, feed: str, activity_id: str) -> Entry | None:
        doc = await self.entries.find_one({"feed": feed, "activity_id": activity_id})
        return None if doc is None else Entry(feed, activity_id, doc.get("origin"))

    async def read(self, feed: str, page: Page) -> list[dict[str, Any]]:
        """A page of the feed, newest first, as public activities."""
        query: Document = {"feed": feed}
        if bounds := page.id_filter():
            query["activity_id"] = bounds
        cursor = self.entries.find(query, {"activity_id": 1, "origin": 1, "_id": 0})
        cursor = cursor.sort("activity_id", DESCENDING).skip(page.offset).limit(page.limit)
        return await self._load(await cursor.to_list())

    async def since(self, feed: str, since_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` activities newer than `since_id`, oldest first."""
        cursor = (
            self.entries.find(
                {"feed": feed, "activity_id": {"$gt": since_id}}, {"activity_id": 1, "origin": 1}
            )
            .sort("activity_id", ASCENDING)
            .limit(limit)
        )
        return await self._load(await cursor.to_list())

    async def latest_own(self, feed: str, limit: int) -> list[str]:
        """Ids of the newest activities that `feed` holds directly (what a new follower copies)."""
        if limit <= 0:
            return []
        cursor = self.entries.find({"feed": feed, "origin": None}, {"activity_id": 1})
        cursor = cursor.sort("activity_id", DESCENDING).limit(limit)
        return [e["activity_id"] async for e in cursor]

    async def _load(self, entries: Iterable[Document]) -> list[dict[str, Any]]:
        entries = list(entries)
        if not entries:
            return []
        ids = [e["activity_id"] for e in entries]
        docs = {d["_id"]: d async for d in self.activities.find({"_id": {"$in": ids}})}
        return [
            public_activity(
                e["activity_id"], json.loads(docs[e["activity_id"]]["data"]), e.get("origin")
            )
            for e in entries
            if e["activity_id"] in docs
        ]


def _activity_doc(activity: Activity, feed: str) -> Document:
    doc: Document = {
        "_id": activity.id,
        "feed": feed,
        "to": list(activity.to),
        "time": activity.time,
        # Custom fields are the client's: kept as JSON text so that no field name of theirs
        # ($-prefixed, dotted) can clash with MongoDB's rules.
        "data": json.dumps(activity.data, separators=(",", ":")),
    }
    if activity.foreign_id is not None:
        doc["foreign_id"] = activity.foreign_id
    return doc


def _stored(doc: Document) -> StoredActivity:
    return StoredActivity(
        id=doc["_id"],
        feed=doc["feed"],
        to=tuple(doc.get("to", ())),
        foreign_id=doc.get("foreign_id"),
        data=json.loads(doc["data"]),
        removed=bool(doc.get("removed")),
    )
