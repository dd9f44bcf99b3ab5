"""What `tidings export` reads of feeds: every feed's activities as a read of that feed
answers them (with `origin`), and every follow. Users, collection entries and reactions are
read by their own repositories (`scan`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ...domain.activities import public_activity
from .client import Database, in_chunks
from .follow_records import Follow

Line = tuple[str, dict[str, Any]]  # (feed, activity as read from it)
BATCH = 500  # entries read at once, and their activities looked up (`$in`s of IN_CHUNK)


class Dump:
    def __init__(self, db: Database) -> None:
        self.entries = db["feed_entries"]
        self.activities = db["activities"]
        self.follows = db["follows"]

    async def feed_activities(self) -> AsyncIterator[Line]:
        """(feed, activity as Stream answers it in that feed), feed by feed, by the
        (feed, activity_id) index; removed activities left out."""
        cursor = self.entries.find({}, {"feed": 1, "activity_id": 1, "origin": 1, "_id": 0})
        page: list[dict[str, Any]] = []
        async for entry in cursor.sort([("feed", 1), ("activity_id", 1)]).batch_size(BATCH):
            page.append(entry)
            if len(page) >= BATCH:
                async for item in self._joined(page):
                    yield item
                page = []
        async for item in self._joined(page):
            yield item

    async def _joined(
        self, page: list[dict[str, Any]]
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        if not page:
            return
        data: dict[str, str] = {}
        for ids in in_chunks(list({e["activity_id"] for e in page})):
            query = {"_id": {"$in": ids}, "removed": {"$ne": True}}
            data.update(
                {d["_id"]: d["data"] async for d in self.activities.find(query, {"data": 1})}
            )
        for entry in page:
            fields = data.get(entry["activity_id"])
            if fields is not None:
                activity = public_activity(
                    entry["activity_id"], json.loads(fields), entry["origin"]
                )
                yield entry["feed"], activity

    async def follows_all(self) -> AsyncIterator[Follow]:
        """Every follow, oldest first."""
        async for doc in self.follows.find({}).sort("_id", 1):
            yield Follow(doc["source"], doc["target"], doc["created_at"], doc["updated_at"])
