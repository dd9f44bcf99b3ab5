"""Follows (`follows`): feed `source` follows feed `target`, and gets its new activities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from ..domain.ids import format_time
from .mongo import Database, Document


@dataclass(frozen=True)
class Follow:
    source: str
    target: str
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        """Stream's row: `feed_id` follows `target_id`."""
        return {
            "feed_id": self.source,
            "target_id": self.target,
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
        }


class FollowStore:
    def __init__(self, db: Database) -> None:
        self.follows = db["follows"]

    async def follow(self, source: str, target: str) -> bool:
        """Record the follow; answer False when it was there already (nothing changes)."""
        now = datetime.now(UTC)
        try:
            await self.follows.insert_one(
                {"source": source, "target": target, "created_at": now, "updated_at": now}
            )
        except DuplicateKeyError:
            return False
        return True

    async def unfollow(self, source: str, target: str) -> bool:
        result = await self.follows.delete_one({"source": source, "target": target})
        return result.deleted_count == 1

    async def followers(
        self, target: str, limit: int, offset: int, only: Sequence[str] = ()
    ) -> list[Follow]:
        """Who follows `target`, newest follow first; `only` narrows to those feeds."""
        query: Document = {"target": target}
        if only:
            query["source"] = {"$in": list(only)}
        return await self._list(query, limit, offset)

    async def following(
        self, source: str, limit: int, offset: int, only: Sequence[str] = ()
    ) -> list[Follow]:
        """What `source` follows, newest follow first; `only` narrows to those feeds."""
        query: Document = {"source": source}
        if only:
            query["target"] = {"$in": list(only)}
        return await self._list(query, limit, offset)

    async def has_followers(self, targets: Sequence[str]) -> bool:
        return (
            await self.follows.find_one({"target": {"$in": list(targets)}}, {"_id": 1}) is not None
        )

    async def follower_batch(
        self, target: str, after: ObjectId | None, size: int
    ) -> list[tuple[ObjectId, str]]:
        """The next `size` followers of `target` after the cursor `after`, in follow order:
        what a fanout job pages through. A follow made meanwhile lands at the end."""
        query: Document = {"target": target}
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self.follows.find(query, {"source": 1}).sort("_id", ASCENDING).limit(size)
        return [(doc["_id"], doc["source"]) async for doc in cursor]

    async def _list(self, query: Document, limit: int, offset: int) -> list[Follow]:
        cursor = self.follows.find(query).sort("_id", DESCENDING).skip(offset).limit(limit)
        return [
            Follow(d["source"], d["target"], d["created_at"], d["updated_at"]) async for d in cursor
        ]
