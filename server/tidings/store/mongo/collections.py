"""Collection entries (`collections`): `{_id: "<collection>:<id>", collection, id, data,
user_id, created_at, updated_at}`. The `_id` is the entry's foreign id, so every read (one
entry, a select, the entries an enrichment names) is an `_id` lookup and needs no other index."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ...domain.objects import Entry, EntryKey
from . import bulk
from .client import Database, Document


class EntryStore:
    def __init__(self, db: Database) -> None:
        self.entries = db["collections"]

    async def insert(self, entry: Entry) -> bool:
        try:
            await self.entries.insert_one(_doc(entry))
        except DuplicateKeyError:
            return False
        return True

    async def get(self, key: EntryKey) -> Entry | None:
        doc = await self.entries.find_one({"_id": str(key)})
        return None if doc is None else _entry(doc)

    async def get_many(self, keys: Collection[EntryKey]) -> dict[EntryKey, Entry]:
        if not keys:
            return {}
        found = self.entries.find({"_id": {"$in": list({str(k) for k in keys})}})
        entries = [_entry(doc) async for doc in found]
        return {entry.key: entry for entry in entries}

    async def update(self, key: EntryKey, data: dict[str, Any], now: datetime) -> Entry | None:
        doc = await self.entries.find_one_and_update(
            {"_id": str(key)},
            {"$set": {"data": data, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _entry(doc)

    async def upsert_many(self, entries: Sequence[Entry]) -> None:
        writes = []
        for entry in entries:
            changed: Document = {"data": entry.data, "updated_at": entry.updated_at}
            first: Document = {
                "collection": entry.collection,
                "id": entry.id,
                "created_at": entry.created_at,
            }
            (changed if entry.user_id is not None else first)["user_id"] = entry.user_id
            writes.append(
                UpdateOne(
                    {"_id": str(entry.key)}, {"$set": changed, "$setOnInsert": first}, upsert=True
                )
            )
        if not writes:
            return
        try:
            await self.entries.bulk_write(writes, ordered=False)
        except BulkWriteError as exc:
            # Two upserts of one new key at once: one inserts, the other's insert fails as a
            # duplicate; running it again updates what the first inserted.
            again = [writes[i] for i in bulk.duplicates(exc)]
            if again:
                await self.entries.bulk_write(again, ordered=False)

    async def delete(self, key: EntryKey) -> bool:
        result = await self.entries.delete_one({"_id": str(key)})
        return result.deleted_count > 0

    async def delete_many(self, keys: Collection[EntryKey]) -> None:
        if keys:
            await self.entries.delete_many({"_id": {"$in": [str(k) for k in keys]}})


def _doc(entry: Entry) -> Document:
    return {
        "_id": str(entry.key),
        "collection": entry.collection,
        "id": entry.id,
        "data": entry.data,
        "user_id": entry.user_id,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
    }


def _entry(doc: Document) -> Entry:
    return Entry(
        doc["collection"], doc["id"], doc["data"], doc.get("user_id"),
        doc["created_at"], doc["updated_at"],
    )  # fmt: skip
