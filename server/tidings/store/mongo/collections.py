"""Collection entries (`collections`): `{_id: "<collection>:<id>", collection, id, data,
user_id, created_at, updated_at}`. The `_id` is the entry's foreign id, so every read (one
entry, a select, the entries an enrichment names) is an `_id` lookup and needs no other index."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ...domain.objects import Entry, EntryKey
from ..memory.coalesce import Coalescer
from ..memory.object_cache import ObjectCache
from . import bulk
from .client import Database, Document, in_chunks


class EntryStore:
    def __init__(self, db: Database, cache: ObjectCache[EntryKey, Entry] | None = None) -> None:
        self.entries = db["collections"]
        # what enriched reads look up (`get_many`); forgotten here once written
        self.cache: ObjectCache[EntryKey, Entry] = cache or ObjectCache(0)
        # what memory lacks, read for every lookup of a tick at once (one `$in`)
        self._read: Coalescer[EntryKey, Entry] = Coalescer(self._get_many)

    async def insert(self, entry: Entry) -> bool:
        try:
            await self.entries.insert_one(_doc(entry))
        except DuplicateKeyError:
            return False
        self.cache.forget([entry.key])
        return True

    async def get(self, key: EntryKey) -> Entry | None:
        doc = await self.entries.find_one({"_id": str(key)})
        return None if doc is None else _entry(doc)

    async def get_many(self, keys: Collection[EntryKey]) -> dict[EntryKey, Entry]:
        return await self.cache.read_through(keys, self._read.get_many)

    def held(self, keys: Collection[EntryKey]) -> dict[EntryKey, Entry] | None:
        """`get_many` from memory alone, when it holds them all; None when not."""
        return self.cache.held(keys)

    async def _get_many(self, keys: Collection[EntryKey]) -> dict[EntryKey, Entry]:
        found: dict[EntryKey, Entry] = {}
        for ids in in_chunks(list({str(k) for k in keys})):
            async for doc in self.entries.find({"_id": {"$in": ids}}):
                entry = _entry(doc)
                found[entry.key] = entry
        return found

    async def scan(self) -> AsyncIterator[Entry]:
        """Every entry, by collection and id (an export's read)."""
        async for doc in self.entries.find({}).sort("_id", 1):
            yield _entry(doc)

    async def update(self, key: EntryKey, data: dict[str, Any], now: datetime) -> Entry | None:
        doc = await self.entries.find_one_and_update(
            {"_id": str(key)},
            {"$set": {"data": data, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        self.cache.forget([key])
        return None if doc is None else _entry(doc)

    async def upsert_many(self, entries: Sequence[Entry]) -> None:
        """Inserted in one unordered bulk insert (fast: an import of new entries is one
        write); those whose key is taken are then updated, in one bulk write."""
        if not entries:
            return
        try:
            await self._upsert_many(entries)
        finally:
            self.cache.forget([e.key for e in entries])

    async def _upsert_many(self, entries: Sequence[Entry]) -> None:
        try:
            await self.entries.insert_many([_doc(e) for e in entries], ordered=False)
        except BulkWriteError as exc:
            taken = [_replace(entries[i]) for i in bulk.duplicates(exc)]
            try:
                await self.entries.bulk_write(taken, ordered=False)
            except BulkWriteError as again:
                # deleted and inserted again meanwhile: its upsert met that insert; now there
                # is an entry to update
                retry = [taken[i] for i in bulk.duplicates(again)]
                await self.entries.bulk_write(retry, ordered=False)

    async def delete(self, key: EntryKey) -> bool:
        result = await self.entries.delete_one({"_id": str(key)})
        self.cache.forget([key])
        return result.deleted_count > 0

    async def delete_many(self, keys: Collection[EntryKey]) -> None:
        for ids in in_chunks([str(k) for k in keys]):
            await self.entries.delete_many({"_id": {"$in": ids}})
        self.cache.forget(keys)


def _replace(entry: Entry) -> UpdateOne:
    """An upsert of a taken key: its data (and owner, when named) replaced, its creation kept
    (an upsert again, should the entry be deleted meanwhile)."""
    changed: Document = {"data": entry.data, "updated_at": entry.updated_at}
    first: Document = {
        "collection": entry.collection,
        "id": entry.id,
        "created_at": entry.created_at,
    }
    (changed if entry.user_id is not None else first)["user_id"] = entry.user_id
    return UpdateOne({"_id": str(entry.key)}, {"$set": changed, "$setOnInsert": first}, upsert=True)


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
