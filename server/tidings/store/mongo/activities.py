"""Activities and the materialised feeds (`activities`, `feed_entries`).

An activity document is `{_id, owners: [{feed, to}], by, v, time, data, foreign_id?,
removed?}`. Its id is a function of its time and foreign id (domain/ids.py), so two feeds may
add the same activity: each is an owner, with the `to` feeds it named; the fields are the last
writer's (`by`; as in Stream, the same id replaces), and only a token that may write `by` may
change them. `v` counts the changes of the document: every write of the
owners is conditional on the `v` it read (optimistic concurrency), so concurrent adds and
removals never lose an owner. Documents written before ownership was a set have `{feed, to}`
and no `v`: they read as one owner, and their first write here converts them.

An entry is `{feed, activity_id, origin}`: the feed holds the activity, which reached it directly
(`origin` None: added to it, or named in its `to`) or through a follow (`origin` = followed feed).
Entry inserts are idempotent: the unique (feed, activity_id) index turns a repeat into a no-op,
so a fanout batch can be re-run after a crash without doubling anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import DeleteMany, DeleteOne, ReadPreference
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ...domain.activities import Activity, public_activity
from ...runtime.faults import fault_pause, fault_point
from ..memory.activity_cache import ActivityCache, measured
from ..memory.coalesce import Coalescer
from ..memory.feed_heads import FeedHeads
from . import bulk
from .client import Database, Document
from .entry_reads import AFTERS_BATCH, ITEM_FIELDS, EntryReads, Flight, Item, is_own
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


@dataclass(frozen=True)
class Entry:
    feed: str
    activity_id: str
    origin: str | None = None
    # On an activity's entry in a pull feed it was merged (not copied) into the followers of:
    # the feed's pull period then. Removing it then needs no pass over the followers.
    pulled: int | None = None


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


class ActivityStore(EntryReads):
    """`groups` (store/groups.py) keeps the groups of aggregated and notification feeds: every
    entry goes through insert_entries and every removal through remove_entries, remove_copies
    or remove_from_origin, whatever its path (an add, `to`, a fanout batch, a follow's copy, a
    switch's backfill), so these are the one place groups are kept in step with entries."""

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

    async def holders(self, activity_id: str, batch: int = 500) -> AsyncIterator[list[Entry]]:
        """Every entry of the activity (each feed that holds it), `batch` at a time, by the
        activity_id index (store/mongo.py)."""
        cursor = self.entries.find(
            {"activity_id": activity_id}, {"feed": 1, "origin": 1, "pulled": 1, "_id": 0}
        ).batch_size(batch)
        page: list[Entry] = []
        async for d in cursor:
            page.append(Entry(d["feed"], activity_id, d.get("origin"), d.get("pulled")))
            if len(page) >= batch:
                yield page
                page = []
        if page:
            yield page

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

    async def insert_entries(self, entries: Sequence[Entry]) -> list[Entry]:
        """Insert entries in one unordered bulk write; answer those that were not there yet."""
        if not entries:
            return []
        docs = [_entry_doc(e) for e in entries]
        token = ObjectId()
        grouped = await self._group_keys(entries, docs, token)
        if grouped:
            await self.joins.insert_one({"_id": token})  # until they joined (see _join)
        skipped: set[int] = set()
        failed: BulkWriteError | None = None
        try:
            await self.entries.insert_many(docs, ordered=False)
            fault_point("entries.inserted")
        except BulkWriteError as exc:  # it says which were written: kept as after a success
            skipped, failed = set(bulk.unwritten(exc)), exc
        except BaseException:
            await self._entries_unknown(entries)
            raise
        await fault_pause("entries.inserted")
        inserted = [e for i, e in enumerate(entries) if i not in skipped]
        self.heads.added((e.feed, (e.activity_id, e.origin)) for e in inserted)
        # Repeats too: a batch run again after a crash between its insert and this publish
        # (a takeover, a client's retry) tells the other nodes what the first run did not.
        await self.heads.publish(e.feed for e in entries)
        if grouped:
            await self._join(inserted, [entries[i] for i in sorted(skipped)], grouped, token)
        if failed is not None:
            bulk.duplicates(failed)  # raises unless they were all duplicates
        return inserted

    async def _entries_unknown(self, entries: Sequence[Entry]) -> None:
        """An insert of `entries` failed without saying which it wrote (a lost answer): the
        heads of their feeds are dropped here and on the other nodes, so reads go to the store.
        Their join token stays: the retry that the failure invites joins what this one wrote."""
        feeds = list(dict.fromkeys(e.feed for e in entries))
        self.heads.drop(feeds)
        await self.heads.publish(feeds)

    async def _join(
        self,
        inserted: Sequence[Entry],
        repeated: Sequence[Entry],
        found: dict[str, Any],
        token: ObjectId,
    ) -> None:
        """New entries of grouped feeds join their groups, then the insert's token goes.
        Entries of grouped feeds name the insert that wrote them (`join`: a token in
        `group_joins` from before the entries until after their join, so no write per entry
        marks them joined). A repeated entry whose token is still there belongs to an insert
        that was cut short (a crash: its join may or may not have happened, for some of its
        groups) or is still running: its groups are recomputed from their entries, adopting
        that token (store/group_recompute.py), which counts them exactly once either way.
        (`pending: true`: entries written before the tokens.)"""
        groups = self.groups
        if groups is None:
            return
        inserted = [e for e in inserted if e.activity_id in found and groups.group_of_feed(e.feed)]
        repeated = [e for e in repeated if e.activity_id in found and groups.group_of_feed(e.feed)]
        stored = await asyncio.gather(*(
            self.entries.find_one({"feed": e.feed, "activity_id": e.activity_id},
                                  {"_id": 0, "group": 1, "join": 1, "pending": 1})
            for e in repeated
        ))  # fmt: skip
        tokens = list({d["join"] for d in stored if d and "join" in d})
        live = set()
        if tokens:
            live = {d["_id"] async for d in self.joins.find({"_id": {"$in": tokens}}, {"_id": 1})}
        recovering = [
            (e.feed, d) for e, d in zip(repeated, stored, strict=True)
            if d and "group" in d and (d.get("pending") is True or d.get("join") in live)
        ]  # fmt: skip
        fault_point("groups.before_join")
        joining = ((e.feed, e.activity_id, found[e.activity_id], e.origin) for e in inserted)
        await groups.join(joining, token)
        if recovering:
            adopt = {d["join"] for _, d in recovering if "join" in d}
            pairs = {(feed, d["group"]) for feed, d in recovering}
            await groups.recompute(pairs, adopt, create=True)
        fault_point("groups.after_join")
        await self.joins.delete_one({"_id": token})

    async def _group_keys(
        self, entries: Sequence[Entry], docs: list[Document], token: ObjectId
    ) -> dict[str, dict[str, Any]]:
        """Entries of aggregated and notification feeds carry their group key, actor and verb
        (what a removal recomputes their group from) and the token of their insert: answers
        those entries' activities, by id."""
        groups = self.groups
        if groups is None or not any(groups.group_of_feed(e.feed) for e in entries):
            return {}
        ids = list({e.activity_id for e in entries if groups.group_of_feed(e.feed)})
        found = await self.as_written(ids)
        keys = groups.keys([(e.feed, e.activity_id) for e in entries], found)
        for doc, key in zip(docs, keys, strict=True):
            if key is not None:
                doc["group"], doc["actor"], doc["verb"] = key
                doc["join"] = token
        return found

    async def _grouped_entries(
        self, feeds: Sequence[str], activity_id: str, origin: str | None = None
    ) -> list[tuple[str, str]]:
        """(feed, group key) of the activity's entries in those of `feeds` that are grouped."""
        groups = self.groups
        if groups is None:
            return []
        query: Document = {"activity_id": activity_id}
        if origin is not None:
            query["origin"] = origin
        grouped = [f for f in feeds if groups.group_of_feed(f)]
        docs = await asyncio.gather(
            *(self.entries.find_one({**query, "feed": f}, {"group": 1}) for f in grouped)
        )
        return [(f, d["group"]) for f, d in zip(grouped, docs, strict=True) if d and "group" in d]

    async def remove_entries(self, feeds: Sequence[str], activity_id: str) -> int:
        """Remove the activity from `feeds`: one delete per feed, each by the (feed,
        activity_id) index, in one unordered bulk write. (`{feed: {$in: feeds}}` would make the
        embedded store read every entry of those feeds: 22 s for 500 feeds of 100 entries.)"""
        if not feeds:
            return 0
        grouped = await self._grouped_entries(feeds, activity_id)
        try:
            result = await self.entries.bulk_write(
                [DeleteOne({"feed": feed, "activity_id": activity_id}) for feed in feeds],
                ordered=False,
            )
        finally:
            await self._entries_removed(feeds, lambda i: i[0] != activity_id)
        if grouped and self.groups is not None:
            await self.groups.recompute(grouped)
        return result.deleted_count

    async def remove_copies(self, feeds: Sequence[str], activity_id: str, origin: str) -> int:
        """Remove from `feeds` the copies of the activity that came through `origin` (a
        follow), not those that reached them otherwise: one delete per feed, by index."""
        if not feeds:
            return 0
        grouped = await self._grouped_entries(feeds, activity_id, origin)
        try:
            result = await self.entries.bulk_write(
                [DeleteOne({"feed": f, "activity_id": activity_id, "origin": origin})
                 for f in feeds],
                ordered=False,
            )  # fmt: skip
        finally:
            await self._entries_removed(feeds, lambda i: i != (activity_id, origin))
        if grouped and self.groups is not None:
            await self.groups.recompute(grouped)
        return result.deleted_count

    async def reaches(self, activity_id: str, feed: str) -> bool:
        """Whether the activity is still put in `feed` directly by one of its owners (it is
        an owner, or named in an owner's `to`): what a fanout from `feed` checks after each
        batch, since a removal through one owner leaves the others' fanouts running."""
        doc = await self.activities.find_one({"_id": activity_id}, OWNERSHIP)
        if doc is None or doc.get("removed"):
            return False
        return any(feed == owner or feed in to for owner, to in owners_of(doc).items())

    async def remove_from_origin(self, feed: str, origin: str) -> int:
        """Unfollow: drop what `feed` got through its follow of `origin`. An index read on
        (feed, origin, activity_id) (store/mongo.py): it costs what it deletes, not the feed."""
        keys: set[str] = set()
        if self.groups is not None and self.groups.group_of_feed(feed):
            found = self.entries.find({"feed": feed, "origin": origin}, {"group": 1})
            keys = {d["group"] async for d in found if "group" in d}
        try:
            result = await self.entries.delete_many({"feed": feed, "origin": origin})
        finally:
            await self._entries_removed([feed], lambda i: i[1] != origin)
        if keys and self.groups is not None:
            await self.groups.recompute((feed, key) for key in keys)
        return result.deleted_count

    async def remove_from_origins(self, pairs: Sequence[tuple[str, str]]) -> int:
        """`remove_from_origin` of many (feed, origin) pairs (unfollow_many/): the flat feeds'
        in one bulk write (an index range delete each); feeds that group one by one, their
        groups recomputed."""
        flat: list[DeleteMany] = []
        removed = 0
        for feed, origin in dict.fromkeys(pairs):
            if self.groups is not None and self.groups.group_of_feed(feed):
                removed += await self.remove_from_origin(feed, origin)
            else:
                flat.append(DeleteMany({"feed": feed, "origin": origin}))
        if flat:
            try:
                result = await self.entries.bulk_write(flat, ordered=False)
            finally:
                for feed, origin in dict.fromkeys(pairs):
                    self.heads.removed(feed, lambda i, origin=origin: i[1] != origin)  # type: ignore[misc]
                await self.heads.publish(feed for feed, _ in pairs)
            removed += result.deleted_count
        return removed

    async def _entries_removed(self, feeds: Sequence[str], keep: Callable[[Item], bool]) -> None:
        """Entries of `feeds` not kept by `keep` were deleted (or may have been: the write
        failed): this node's heads lose them, the other nodes' are dropped."""
        for feed in feeds:
            self.heads.removed(feed, keep)
        await self.heads.publish(feeds)

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

    async def holds(self, feed: str, activity_id: str) -> Entry | None:
        doc = await self.entries.find_one({"feed": feed, "activity_id": activity_id})
        return None if doc is None else Entry(feed, activity_id, doc.get("origin"))

    async def held_of(self, feed: str, activity_ids: Sequence[str]) -> set[str]:
        """Which of these activities `feed` holds (one index range read)."""
        if not activity_ids:
            return set()
        query = {"feed": feed, "activity_id": {"$in": list(activity_ids)}}
        return {d["activity_id"] async for d in self.entries.find(query, ITEM_FIELDS)}

    async def entries_of(self, feeds: Sequence[str], activity_id: str) -> dict[str, Entry]:
        """The entries of `activity_id` in `feeds`, by feed (one indexed lookup each)."""
        docs = await asyncio.gather(
            *(self.entries.find_one({"feed": f, "activity_id": activity_id}) for f in feeds)
        )
        return {
            d["feed"]: Entry(d["feed"], activity_id, d.get("origin"), d.get("pulled"))
            for d in docs
            if d is not None
        }

    async def unmark_pulled(self, feed: str, activity_id: str) -> None:
        """The activity was copied into `feed`'s followers after all."""
        await self.entries.update_one(
            {"feed": feed, "activity_id": activity_id}, {"$unset": {"pulled": ""}}
        )


def _written(activity: Activity) -> tuple[str, dict[str, Any], int]:
    """(id, fields, measured size) of an activity as stored (a copy: the caller's dict is its
    own)."""
    data = json.loads(json.dumps(activity.data, separators=(",", ":")))
    return activity.id, data, measured(data)


def _entry_doc(entry: Entry) -> Document:
    doc: Document = {"feed": entry.feed, "activity_id": entry.activity_id, "origin": entry.origin}
    if entry.pulled is not None:
        doc["pulled"] = entry.pulled
    return doc


def _stored(doc: Document) -> StoredActivity:
    return StoredActivity(
        id=doc["_id"],
        owners=owners_of(doc),
        foreign_id=doc.get("foreign_id"),
        data=json.loads(doc["data"]),
        removed=bool(doc.get("removed")),
    )
