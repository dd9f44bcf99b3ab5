"""Users (`users`): `{_id: user id, data, created_at, updated_at}`, read by `_id` only."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ...domain.objects import User
from ..memory.object_cache import ObjectCache
from .client import Database, Document, in_chunks


class UserStore:
    def __init__(self, db: Database, cache: ObjectCache[str, User] | None = None) -> None:
        self.users = db["users"]
        # what enriched reads look up (`get_many`); forgotten here once written
        self.cache: ObjectCache[str, User] = cache or ObjectCache(0)

    async def insert(self, user: User) -> bool:
        doc = {
            "_id": user.id,
            "data": user.data,
            "created_at": user.created_at,
            "updated_at": user.updated_at,
        }
        try:
            await self.users.insert_one(doc)
        except DuplicateKeyError:
            return False
        self.cache.forget([user.id])
        return True

    async def get(self, user_id: str) -> User | None:
        doc = await self.users.find_one({"_id": user_id})
        return None if doc is None else _user(doc)

    async def get_many(self, user_ids: Collection[str]) -> dict[str, User]:
        return await self.cache.read_through(user_ids, self._get_many)

    async def _get_many(self, user_ids: Collection[str]) -> dict[str, User]:
        found: dict[str, User] = {}
        for ids in in_chunks(list(set(user_ids))):
            async for doc in self.users.find({"_id": {"$in": ids}}):
                found[doc["_id"]] = _user(doc)
        return found

    async def update(self, user_id: str, data: dict[str, Any], now: datetime) -> User | None:
        doc = await self.users.find_one_and_update(
            {"_id": user_id},
            {"$set": {"data": data, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        self.cache.forget([user_id])
        return None if doc is None else _user(doc)

    async def delete(self, user_id: str) -> bool:
        result = await self.users.delete_one({"_id": user_id})
        self.cache.forget([user_id])
        return result.deleted_count > 0


def _user(doc: Document) -> User:
    return User(doc["_id"], doc["data"], doc["created_at"], doc["updated_at"])
