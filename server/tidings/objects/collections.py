"""Collection entries: add, read, update and delete one; the server-side batch calls (upsert,
select, delete many); and the many-by-key read that reference enrichment (`SO:<collection>:<id>`)
uses. A batch is validated whole before anything is stored."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from ..auth import Grant
from ..config import ObjectSettings
from ..domain.errors import ConflictError, DoesNotExistError, InputError
from ..domain.objects import (
    Entry,
    EntryKey,
    check_data,
    check_id,
    new_entry_id,
    now,
    parse_foreign_id,
)
from ..domain.ports import EntryStore
from .permissions import owner_of_new_entry, require_entry, require_server_side


class Collections:
    def __init__(self, store: EntryStore, limits: ObjectSettings) -> None:
        self.store, self.limits = store, limits

    async def add(self, collection: str, body: object, grant: Grant) -> dict[str, Any]:
        """A new entry (`{id?, data, user_id?}`; an id is made when none is given); its id
        taken: a conflict (409)."""
        collection = check_id(collection, "collection")
        body = _object(body)
        entry_id = new_entry_id() if body.get("id") is None else check_id(body["id"], "id")
        data = check_data(body.get("data"), "data", self.limits.max_bytes, allow_empty=False)
        requested = body.get("user_id")
        requested = None if requested is None else check_id(requested, "user_id")
        owner = owner_of_new_entry(grant, requested)
        when = now()
        entry = Entry(collection, entry_id, data, owner, when, when)
        if not await self.store.insert(entry):
            raise ConflictError(
                f"collection entry {entry.key} already exists", {"id": ["already exists"]}
            )
        return entry.public()

    async def get(self, collection: str, entry_id: str, grant: Grant) -> dict[str, Any]:
        key = _key(collection, entry_id)
        require_entry(grant, "read", str(key), None)
        return (await self._stored(key)).public()

    async def update(
        self, collection: str, entry_id: str, body: object, grant: Grant
    ) -> dict[str, Any]:
        """Replace the entry's `data`; its id cannot change (400)."""
        key = _key(collection, entry_id)
        body = _object(body)
        if body.get("id") is not None and str(body["id"]) != key.id:
            raise InputError("the id of an entry cannot change", {"id": ["cannot change"]})
        data = check_data(body.get("data"), "data", self.limits.max_bytes)
        if not grant.app_wide("collections", "write"):
            require_entry(grant, "write", str(key), (await self._stored(key)).user_id)
        updated = await self.store.update(key, data, now())
        if updated is None:
            raise DoesNotExistError(f"collection entry {key} does not exist")
        return updated.public()

    async def delete(self, collection: str, entry_id: str, grant: Grant) -> None:
        key = _key(collection, entry_id)
        if not grant.app_wide("collections", "delete"):
            require_entry(grant, "delete", str(key), (await self._stored(key)).user_id)
        if not await self.store.delete(key):
            raise DoesNotExistError(f"collection entry {key} does not exist")

    async def upsert(self, body: object, grant: Grant) -> dict[str, Any]:
        """`{data: {collection: [{id?, user_id?, ...data}]}}`: each entry inserted, or its data
        replaced. Answers the entries as stored, ids included, by collection."""
        require_server_side(grant, "write")
        data = _object(body).get("data")
        if not isinstance(data, dict) or not data:
            raise InputError("data must map collection names to entries", {"data": ["required"]})
        entries: dict[EntryKey, Entry] = {}
        answer: dict[str, list[dict[str, Any]]] = {}
        when, count = now(), 0
        for name, items in data.items():
            collection = check_id(name, "data")
            if isinstance(items, dict):
                items = [items]
            if not isinstance(items, list):
                raise InputError(f"data.{name} must be a list of entries", {f"data.{name}": []})
            count += len(items)
            if count > self.limits.max_batch:
                raise InputError(
                    f"at most {self.limits.max_batch} entries in one upsert",
                    {"data": [f"at most {self.limits.max_batch} entries"]},
                )
            answer[collection] = []
            for index, item in enumerate(items):
                entry = self._upserted(collection, item, f"data.{name}[{index}]", when)
                entries[entry.key] = entry  # the last of one key wins
                shown = {**entry.data, "id": entry.id}
                if entry.user_id is not None:
                    shown["user_id"] = entry.user_id
                answer[collection].append(shown)
        await self.store.upsert_many(list(entries.values()))
        return {"data": answer}

    def _upserted(self, collection: str, item: object, field: str, when: datetime) -> Entry:
        if not isinstance(item, dict):
            raise InputError(f"{field} must be an object", {field: ["not an object"]})
        fields = dict(item)
        raw_id, owner = fields.pop("id", None), fields.pop("user_id", None)
        entry_id = new_entry_id() if raw_id is None else check_id(raw_id, f"{field}.id")
        owner = None if owner is None else check_id(owner, f"{field}.user_id")
        data = check_data(fields, field, self.limits.max_bytes)
        return Entry(collection, entry_id, data, owner, when, when)

    async def select(self, foreign_ids: Sequence[str], grant: Grant) -> list[dict[str, Any]]:
        """The entries of `collection:id` names that exist, in the order asked."""
        require_server_side(grant, "read")
        keys = self._bounded([_foreign(value) for value in foreign_ids], "foreign_ids")
        found = await self.store.get_many(keys)
        return [found[key].public() for key in dict.fromkeys(keys) if key in found]

    async def delete_many(self, collection: str, ids: Sequence[str], grant: Grant) -> None:
        require_server_side(grant, "delete")
        collection = check_id(collection, "collection_name")
        keys = self._bounded([EntryKey(collection, check_id(i, "ids")) for i in ids], "ids")
        await self.store.delete_many(keys)

    async def many(self, keys: Collection[EntryKey]) -> dict[EntryKey, Entry]:
        """The entries of `keys` that exist, in one store query (for enrichment)."""
        return await self.store.get_many(keys)

    def _bounded(self, keys: list[EntryKey], field: str) -> list[EntryKey]:
        most = self.limits.max_batch
        if not keys or len(keys) > most:
            raise InputError(f"{field} must name 1 to {most} entries", {field: [f"1 to {most}"]})
        return keys

    async def _stored(self, key: EntryKey) -> Entry:
        found = await self.store.get(key)
        if found is None:
            raise DoesNotExistError(f"collection entry {key} does not exist")
        return found


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InputError("the body must be an object", {"body": ["not an object"]})
    return body


def _key(collection: str, entry_id: str) -> EntryKey:
    return EntryKey(check_id(collection, "collection"), check_id(entry_id, "id"))


def _foreign(value: str) -> EntryKey:
    key = parse_foreign_id(value)
    if key is None:
        raise InputError(
            f"{value!r} is not collection:id", {"foreign_ids": [f"{value!r}: not collection:id"]}
        )
    return key
