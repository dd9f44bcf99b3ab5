"""Activities (`activities`): their documents, owners and fields, and the store of feeds.

An activity document is `{_id, owners: [{feed, to}], by, v, time, data, foreign_id?,
removed?}`. Its id is a function of its time and foreign id (domain/ids.py), so two feeds may
add the same activity: each is an owner, with the `to` feeds it named; the fields are the last
writer's (`by`; as in Stream, the same id replaces), and only a token that may write `by` may
change them. `v` counts the changes of the document: every write of the
owners is conditional on the `v` it read (optimistic concurrency), so concurrent adds and
removals never lose an owner. Documents written before ownership was a set have `{feed, to}`
and no `v`: they read as one owner, and their first write here converts them.

The feeds' entries are written by EntryWrites (entry_writes.py) and read by EntryReads
(entry_reads.py), of which ActivityStore is the last layer.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ReadPreference
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ...domain.activities import Activity, public_activity
from ...runtime.faults import fault_point
from ..memory.activity_cache import ActivityCache, measured
from ..memory.coalesce import Coalescer
from ..memory.feed_heads import FeedHeads
from . import bulk
from .client import Database, Document, in_chunks
from .entry_reads import AFTERS_BATCH, ITEM_FIELDS, Flight, Item, is_own
from .entry_writes import EntryWrites
from .groups import GroupStore
from .owners import (
    LEGACY,
    LEGACY_AND_TOMBSTONE,
    OWNERSHIP,
    Owners,
    activity_doc,
    author,
    check_owners,
    owner_list,
    owners_of,
    unchanged,
)

RETRIES = 20  # conditional writes of one document that lost a race, before giving up
# Ids of one `$in` read of removed_among: the embedded store matches each document found
# against the whole list, so 4 reads of 25 ids cost it 2/3 of one read of 100.
REMOVED_PART = 25


@dataclass(frozen=True)
class StoredActivity:
    id: str
    owners: Owners
    foreign_id: str | None
    data: dict[str, Any]
    removed: bool = False

    def public(self, origin: str | None = None) -> dict[str, Any]:
        return public_activity(self.id, self.data, origin)

    def reach(self, owners: Iterable[str]) -> set[str]:
        """The feeds that `owners` put this activity in directly: themselves and their `to`."""
        return {f for owner in owners for f in (owner, *self.owners.get(owner, ()))}


class ConcurrentUpdateError(Exception):
    """An activity document kept changing under a conditional write (RETRIES times)."""


class ActivityStore(EntryWrites):
    """The activity documents, on top of the feeds' entries (EntryWrites, EntryReads)."""

    def __init__(
        self,
        db: Database,
        groups: GroupStore | None = None,
        cache: ActivityCache | None = None,
        heads: FeedHeads | None = None,
    ) -> None:
        # From the primary whatever the URL's readPreference: what is read here fills caches
        # and decides writes, and a lagging secondary's answer would be kept as current.
        self.activities = db.get_collection("activities", read_preference=ReadPreference.PRIMARY)
        self.entries = db.get_collection("feed_entries", read_preference=ReadPreference.PRIMARY)
        self.joins = db["group_joins"]  # inserts of grouped entries not joined yet (_join)
        self.groups = groups
        # Activities by id (store/activity_cache.py), and their loads of one tick in one `$in`.
        self.cache = cache if cache is not None else ActivityCache(0)
        self._fields: Coalescer[str, tuple[dict[str, Any], int]] = Coalescer(self._fetch_fields)
        # The newest entries of recently read feeds (store/feed_heads.py).
        self.heads = heads if heads is not None else FeedHeads(0)
        self._warming: dict[str, Flight] = {}
        self._afters: Coalescer[tuple[str, str, int], list[Item]] = Coalescer(
            self._fetch_afters, max_keys=AFTERS_BATCH
        )

    async def _changed(self, ids: Sequence[str]) -> None:
        """The documents of `ids` were written: no node may answer them from its cache."""
        await self.cache.invalidate(ids)

    @contextlib.asynccontextmanager
    async def _writing(self, ids: Sequence[str]) -> AsyncIterator[None]:
        """A write of the documents of `ids`. When it raises, the store may have applied it
        all the same (an answer lost with its connection, a write-concern error), so they are
        `_changed` as after a write that succeeded: a retry that finds them written changes
        nothing, and would leave every node's cache stale."""
        try:
            yield
        except BaseException:
            await self._changed(ids)
            raise

    async def save(
        self, activities: Sequence[Activity], feed: str, may_change: Callable[[str], bool]
    ) -> None:
        """Store activities added to `feed`, which becomes an owner of each, with its `to`
        feeds (added to those it named before). The same id again replaces the stored fields.
        `may_change(owner)` says whether the caller may change what another feed `owner`
        published: when not, NotAllowedError, and (checked for all first) nothing is stored."""
        found = await self._snapshots([a.id for a in activities])
        for activity in activities:
            check_owners(activity, found.get(activity.id), feed, may_change)
        new = [a for a in activities if a.id not in found]
        retry = [a for a in activities if a.id in found]
        generation, written_at = self.cache.generation, time.monotonic()
        async with self._writing([a.id for a in activities]):
            await self._insert_or_replace(new, retry, feed, found, may_change)
        await self._changed([a.id for a in retry])
        self.cache.put_many((_written(a) for a in new), generation, written_at)

    async def _insert_or_replace(
        self,
        new: list[Activity],
        retry: list[Activity],
        feed: str,
        found: dict[str, Document],
        may_change: Callable[[str], bool],
    ) -> None:
        if new:
            try:
                await self.activities.insert_many(
                    [activity_doc(a, {feed: a.to}, feed) for a in new], ordered=False
                )
                fault_point("activities.inserted")
            except BulkWriteError as exc:  # added meanwhile by another request: replace it
                retry += [new[i] for i in bulk.duplicates(exc)]
        for activity in retry:
            await self._replace(activity, feed, found.get(activity.id), may_change)

    async def save_to_many(self, activity: Activity, feeds: Sequence[str]) -> None:
        """add_to_many: store one activity owned by each of `feeds` (each naming the
        activity's `to`), in one conditional write whatever the feed count. The caller may
        write every feed (a server token), so the fields are replaced, `by` the first feed."""
        for _ in range(RETRIES):
            doc = await self.activities.find_one({"_id": activity.id}, OWNERSHIP)
            if doc is None:
                try:
                    owners = {f: activity.to for f in feeds}
                    async with self._writing([activity.id]):
                        await self.activities.insert_one(activity_doc(activity, owners, feeds[0]))
                        fault_point("activities.changed")
                    await self._changed([activity.id])
                    return
                except DuplicateKeyError:
                    continue
            owners = {} if doc.get("removed") else owners_of(doc)
            for feed in feeds:
                owners[feed] = tuple(dict.fromkeys((*owners.get(feed, ()), *activity.to)))
            new = activity_doc(activity, owners, feeds[0])
            del new["_id"], new["v"]
            async with self._writing([activity.id]):
                result = await self.activities.update_one(
                    unchanged(doc),
                    {"$set": new, "$unset": LEGACY_AND_TOMBSTONE, "$inc": {"v": 1}},
                )
                fault_point("activities.changed")
            if result.matched_count:
                await self._changed([activity.id])
                return
        raise ConcurrentUpdateError(activity.id)

    async def save_unowned(self, activity: Activity) -> bool:
        """Store an activity that no feed holds: what a full update of an activity not stored
        yet does, as in Stream (found by id or foreign_id and time, in no feed). It has no
        owner: a later add of it makes its feed the owner, whose fields replace these. A
        tombstone of it is overwritten. False when a live document of it is stored (written
        meanwhile): the caller changes that one instead."""
        for _ in range(RETRIES):
            doc = await self.activities.find_one({"_id": activity.id}, OWNERSHIP)
            if doc is not None and not doc.get("removed"):
                return False
            fresh = activity_doc(activity, {}, "")
            try:
                if doc is None:
                    await self.activities.insert_one(fresh)
                else:
                    del fresh["_id"], fresh["v"]
                    result = await self.activities.update_one(
                        unchanged(doc),
                        {"$set": fresh, "$unset": LEGACY_AND_TOMBSTONE, "$inc": {"v": 1}},
                    )
                    if not result.matched_count:
                        continue
            except DuplicateKeyError:
                continue
            finally:
                await self._changed([activity.id])
            return True
        raise ConcurrentUpdateError(activity.id)

    async def _replace(
        self,
        activity: Activity,
        feed: str,
        doc: Document | None,
        may_change: Callable[[str], bool],
    ) -> None:
        for _ in range(RETRIES):
            if doc is None:
                doc = await self.activities.find_one({"_id": activity.id}, OWNERSHIP)
                if doc is None:  # removed from the store meanwhile: write it anew
                    try:
                        fresh = activity_doc(activity, {feed: activity.to}, feed)
                        await self.activities.insert_one(fresh)
                        return
                    except DuplicateKeyError:
                        continue
            replace = check_owners(activity, doc, feed, may_change)
            owners = {} if doc.get("removed") else owners_of(doc)
            named = owners.get(feed, ())
            owners[feed] = tuple(dict.fromkeys((*named, *activity.to)))
            new = activity_doc(activity, owners, feed)
            del new["_id"], new["v"]
            if not replace:  # the same content: `feed` joins its owners, the fields stay
                new = {"owners": new["owners"], "by": author(doc)}
            result = await self.activities.update_one(
                unchanged(doc),
                {"$set": new, "$unset": LEGACY_AND_TOMBSTONE, "$inc": {"v": 1}},
            )
            if result.matched_count:
                return
            doc = None  # changed since it was read: read it again
        raise ConcurrentUpdateError(activity.id)

    async def _snapshots(self, ids: Sequence[str]) -> dict[str, Document]:
        cursor = self.activities.find({"_id": {"$in": list(ids)}}, OWNERSHIP)
        return {d["_id"]: d async for d in cursor}

    async def documents(self, ids: Sequence[str]) -> dict[str, Document]:
        """The ownership and fields of the stored (not removed) activities among `ids`."""
        found = await self._snapshots(ids)
        return {i: d for i, d in found.items() if not d.get("removed") and "data" in d}

    async def change_data(
        self, activity_id: str, doc: Document, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> tuple[dict[str, Any], int] | None:
        """Write `change(fields)` of the activity as its new fields, conditional on the
        document being as read (`doc`; re-read and re-applied when it changed meanwhile).
        Answers the new fields and the version written (the document's `v`), or None when the
        activity is gone."""
        for _ in range(RETRIES):
            data = change(json.loads(doc["data"]))
            text = json.dumps(data, separators=(",", ":"))
            # `written`: the fields as first written, what groups are formed from (Stream
            # applies aggregation formats at write time only: an update moves no activity
            # between groups, neither copied nor merged at read time from a pull feed).
            async with self._writing([activity_id]):
                result = await self.activities.update_one(
                    {**unchanged(doc), "removed": {"$ne": True}},
                    [{"$set": {
                        "data": {"$literal": text},
                        "written": {"$ifNull": ["$written", "$data"]},
                        "v": {"$add": [{"$ifNull": ["$v", 0]}, 1]},
                    }}],
                )  # fmt: skip
                fault_point("activities.changed")
            if result.matched_count:
                await self._changed([activity_id])
                return data, int(doc.get("v") or 0) + 1
            fresh = await self.activities.find_one({"_id": activity_id}, OWNERSHIP)
            if fresh is None or fresh.get("removed"):
                return None
            doc = fresh
        raise ConcurrentUpdateError(activity_id)

    async def set_targets(self, activity_id: str, feed: str, to: Sequence[str]) -> bool:
        """`feed`, an owner, now names `to` (activity_to_targets); the fields' `to` follows
        when `feed` set them. False when the activity or that owner is gone."""
        for _ in range(RETRIES):
            doc = await self.activities.find_one({"_id": activity_id}, OWNERSHIP)
            if doc is None or doc.get("removed"):
                return False
            owners = owners_of(doc)
            if feed not in owners:
                return False
            owners[feed] = tuple(to)
            update: Document = {"owners": owner_list(owners)}
            if author(doc) == feed:
                data = json.loads(doc["data"])
                if to:
                    data["to"] = list(to)
                else:
                    data.pop("to", None)
                update["data"] = json.dumps(data, separators=(",", ":"))
            async with self._writing([activity_id]):
                result = await self.activities.update_one(
                    unchanged(doc), {"$set": update, "$unset": LEGACY, "$inc": {"v": 1}}
                )
                fault_point("activities.changed")
            if result.matched_count:
                await self._changed([activity_id])
                return True
        raise ConcurrentUpdateError(activity_id)

    async def remove_owner(self, activity_id: str, feed: str) -> None:
        """`feed` no longer owns the activity (its removal through `feed` is done)."""
        for _ in range(RETRIES):
            doc = await self.activities.find_one({"_id": activity_id}, OWNERSHIP)
            if doc is None:
                return
            owners = owners_of(doc)
            if feed not in owners:
                return
            del owners[feed]
            result = await self.activities.update_one(
                unchanged(doc),
                {"$set": {"owners": owner_list(owners)}, "$unset": LEGACY, "$inc": {"v": 1}},
            )
            if result.matched_count:
                return
        raise ConcurrentUpdateError(activity_id)

    async def reaches(self, activity_id: str, feed: str) -> bool:
        """Whether the activity is still put in `feed` directly by one of its owners (it is
        an owner, or named in an owner's `to`): what a fanout from `feed` checks after each
        batch, since a removal through one owner leaves the others' fanouts running."""
        doc = await self.activities.find_one({"_id": activity_id}, OWNERSHIP)
        if doc is None or doc.get("removed"):
            return False
        return any(feed == owner or feed in to for owner, to in owners_of(doc).items())

    async def mark_removed(self, activity_id: str) -> None:
        """Tombstone an activity removed from its own feed, so that a fanout still running or
        resumed later never puts it back (see FanoutRunner._add_batch)."""
        async with self._writing([activity_id]):
            await self.activities.update_one(
                {"_id": activity_id}, {"$set": {"removed": True}, "$inc": {"v": 1}}
            )
        await self._changed([activity_id])

    async def is_removed(self, activity_id: str) -> bool:
        doc = await self.activities.find_one({"_id": activity_id}, {"removed": 1})
        return doc is None or bool(doc.get("removed"))

    async def removed_among(self, ids: Sequence[str]) -> set[str]:
        """`is_removed` of many, in one `$in` read per REMOVED_PART ids (a bulk follow's copies:
        a million ids in an import)."""
        live: set[str] = set()
        for part in in_chunks(list(ids), REMOVED_PART):
            live.update([d["_id"] async for d in self.activities.find(
                {"_id": {"$in": part}, "removed": {"$ne": True}}, {"_id": 1})])  # fmt: skip
        return set(ids) - live

    async def get(self, activity_id: str) -> StoredActivity | None:
        doc = await self.activities.find_one({"_id": activity_id})
        return None if doc is None else _stored(doc)

    async def find_by_foreign_id(self, feed: str, foreign_id: str) -> list[StoredActivity]:
        """Activities with this foreign id that `feed` holds directly."""
        docs = await self.activities.find({"foreign_id": foreign_id}).to_list()
        if not docs:
            return []
        held = await self.entries.find(
            {"feed": feed, "activity_id": {"$in": [d["_id"] for d in docs]}}, ITEM_FIELDS
        ).to_list()
        ids = {e["activity_id"] for e in held if is_own(e)}
        return [_stored(d) for d in docs if d["_id"] in ids]


def _written(activity: Activity) -> tuple[str, dict[str, Any], int]:
    """(id, fields, measured size) of an activity as stored (a copy: the caller's dict is its
    own)."""
    data = json.loads(json.dumps(activity.data, separators=(",", ":")))
    return activity.id, data, measured(data)


def _stored(doc: Document) -> StoredActivity:
    return StoredActivity(
        id=doc["_id"],
        owners=owners_of(doc),
        foreign_id=doc.get("foreign_id"),
        data=json.loads(doc["data"]),
        removed=bool(doc.get("removed")),
    )
