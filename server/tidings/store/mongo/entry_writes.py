"""The materialised feeds' writes (`feed_entries`): entries inserted and removed, the groups of
aggregated and notification feeds kept in step with them, and the caches told.

An entry is `{feed, activity_id, origin}`: the feed holds the activity, which reached it directly
(`origin` None: added to it, or named in its `to`) or through a follow (`origin` = followed feed).
Entry inserts are idempotent: the unique (feed, activity_id) index turns a repeat into a no-op,
so a fanout batch can be re-run after a crash without doubling anything.

`groups` (store/mongo/groups.py) keeps the groups of aggregated and notification feeds: every
entry goes through insert_entries and every removal through remove_entries, remove_copies or
remove_from_origin, whatever its path (an add, `to`, a fanout batch, a follow's copy, a
switch's backfill), so these are the one place groups are kept in step with entries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import DeleteMany, DeleteOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from ...runtime.faults import fault_pause, fault_point
from . import bulk
from .client import Document
from .entry_reads import ITEM_FIELDS, EntryReads, Item
from .groups import GroupStore


@dataclass(frozen=True)
class Entry:
    feed: str
    activity_id: str
    origin: str | None = None
    # On an activity's entry in a pull feed it was merged (not copied) into the followers of:
    # the feed's pull period then. Removing it then needs no pass over the followers.
    pulled: int | None = None


def _entry_doc(entry: Entry) -> Document:
    doc: Document = {"feed": entry.feed, "activity_id": entry.activity_id, "origin": entry.origin}
    if entry.pulled is not None:
        doc["pulled"] = entry.pulled
    return doc


class EntryWrites(EntryReads):
    """The entry writes of ActivityStore (store/mongo/activities.py), which sets these up."""

    joins: AsyncCollection[Document]  # inserts of grouped entries not joined yet (_join)
    groups: GroupStore | None

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
