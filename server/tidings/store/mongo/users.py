"""Users (`users`): `{_id: user id, data, created_at, updated_at}`, read by `_id` only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ...domain.objects import User
from ..memory.coalesce import Coalescer
from ..memory.object_cache import ObjectCache
from . import bulk
from .client import Database, Document, in_chunks


class UserStore:
    def __init__(self, db: Database, cache: ObjectCache[str, User] | None = None) -> None:
        self.users = db["users"]
        # what enriched reads look up (`get_many`); forgotten here once written
        self.cache: ObjectCache[str, User] = cache or ObjectCache(0)
        # what memory lacks, read for every lookup of a tick at once (one `$in`)
        self._read: Coalescer[str, User] = Coalescer(self._get_many)

    async def insert(self, user: User) -> bool:
        try:
            await self.users.insert_one(_doc(user))
        except DuplicateKeyError:
            return False
        self.cache.forget([user.id])
        return True

    async def get(self, user_id: str) -> User | None:
        doc = await self.users.find_one({"_id": user_id})
        return None if doc is None else _user(doc)

    async def get_many(self, user_ids: Collection[str]) -> dict[str, User]:
        return await self.cache.read_through(user_ids, self._read.get_many)

    def held(self, user_ids: Collection[str]) -> dict[str, User] | None:
        """`get_many` from memory alone, when it holds them all; None when not."""
        return self.cache.held(user_ids)

    async def _get_many(self, user_ids: Collection[str]) -> dict[str, User]:
        found: dict[str, User] = {}
        for ids in in_chunks(list(set(user_ids))):
            async for doc in self.users.find({"_id": {"$in": ids}}):
                found[doc["_id"]] = _user(doc)
        return found

    async def scan(self) -> AsyncIterator[User]:
        """Every user, by id (an export's read)."""
        async for doc in self.users.find({}).sort("_id", 1):
            yield _user(doc)

    async def update(self, user_id: str, data: dict[str, Any], now: datetime) -> User | None:
        doc = await self.users.find_one_and_update(
            {"_id": user_id},
            {"$set": {"data": data, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        self.cache.forget([user_id])
        return None if doc is None else _user(doc)

    async def insert_many(self, users: Sequence[User], override: bool) -> list[str]:
        """Store new users in one unordered bulk insert; those whose id is taken keep theirs,
        or, with `override`, get the new data (their creation kept) in one bulk write. The
        ids written, in the order given."""
        if not users:
            return []
        taken: list[int] = []
        try:
            await self.users.insert_many([_doc(u) for u in users], ordered=False)
        except BulkWriteError as exc:
            taken = bulk.duplicates(exc)
        try:
            if override and taken:
                # an upsert: a user deleted meanwhile is created again
                await self.users.bulk_write([_replace(users[i]) for i in taken], ordered=False)
        finally:  # whatever the store applied, no cached copy answers for it
            self.cache.forget([u.id for u in users])
        skipped = set() if override else set(taken)
        return [u.id for i, u in enumerate(users) if i not in skipped]

    async def delete_many(self, user_ids: Collection[str]) -> None:
        try:
            for ids in in_chunks(list(set(user_ids))):
                await self.users.delete_many({"_id": {"$in": ids}})
        finally:
            self.cache.forget(list(user_ids))

    async def delete(self, user_id: str) -> bool:
        result = await self.users.delete_one({"_id": user_id})
        self.cache.forget([user_id])
        return result.deleted_count > 0


def _doc(user: User) -> Document:
    return {
        "_id": user.id,
        "data": user.data,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def _replace(user: User) -> UpdateOne:
    changed: Document = {"data": user.data, "updated_at": user.updated_at}
    return UpdateOne(
        {"_id": user.id},
        {"$set": changed, "$setOnInsert": {"created_at": user.created_at}},
        upsert=True,
    )


def _user(doc: Document) -> User:
    return User(doc["_id"], doc["data"], doc["created_at"], doc["updated_at"])
