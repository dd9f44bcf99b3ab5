"""Follows (`follows`, `follower_chunks`): feed `source` follows feed `target`.

- `follows`: one document per follow, the source of truth of the listings:
  `{_id: ObjectId, source, target, chunk, created_at, updated_at, frontier?, period?,
  pull_source?}`. `frontier` and `period` are written once the follow is complete (see
  FollowRecord.merged_above); `pull_source` (= source) marks the follows of pull feeds: what a
  reader of `source` merges in.
- `follower_chunks`: the followers of a feed in chunks of at most CHUNK_SIZE, read by `_id`
  equality: `{_id: "<target>#<n>", target, n, m: [{s: source, f: follow _id}]}`. A fanout reads
  one chunk per batch, so paging the followers costs the same at 5,000 or 5,000,000 of them, on
  any store, and the chunks of a feed live with it when the store is sharded by feed.

Follows are stored in bulk (FollowStore.follow_many, one batch of pairs): the new follows take
chunk slots (store/mongo/feeds.py: holes an unfollow freed first, else new ones) and are counted, in
one write per target; their `follows` documents (unique per source and target) are inserted with
their chunk numbers, then added to those chunks. Every step can be retried: a retried follow
finds its document and adds it to its chunk again (taking no slot), so a crash between the steps
loses no follower. An unfollow (FollowStore.unfollow_many) takes the followers out of their
chunks, deletes the documents, then takes them out again (a concurrent retry of the follow may
have put one back in between), and gives the slots back as holes for the next follows. Chunk
members name their follow document, so taking out an old follow never takes out a newer follow
of the same feeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import datetime

from bson import ObjectId
from pymongo import UpdateOne

from ...domain.merge import Bounds
from . import scan
from .client import Document
from .feeds import FeedMeta
from .follow_records import (
    CHUNK_SIZE,
    IN_BATCH,
    Follow,
    FollowRecord,
    Member,
    Started,
    Survey,
    chunk_id,
    record_of,
)
from .follow_writes import FollowWrites

__all__ = [
    "CHUNK_SIZE",
    "IN_BATCH",
    "Follow",
    "FollowRecord",
    "FollowStore",
    "Member",
    "Started",
    "Survey",
    "record_of",
]


class FollowStore(FollowWrites):
    """Reads of follows (listings, counts, chunks), counter repairs, the mode marks and the
    migration; the bulk writes are FollowWrites'."""

    async def complete(self, record: FollowRecord, frontier: str, period: int, pull: bool) -> None:
        update: Document = {"frontier": frontier, "period": period}
        if pull:  # never unset here: a switch to pull may have set it meanwhile
            update["pull_source"] = record.source
        await self.follows.update_one({"_id": record.id}, {"$set": update})

    async def get(self, source: str, target: str) -> FollowRecord | None:
        doc = await self.follows.find_one({"source": source, "target": target})
        return None if doc is None else record_of(doc)

    async def following_any(self, sources: Sequence[str], targets: Collection[str]) -> set[str]:
        """Those of `sources` that follow any of `targets` (one lookup by the unique (source,
        target) index per pair: for the few feeds that still own an activity that one of its
        owners removed)."""
        pairs = [(s, t) for s in sources for t in targets if s != t]
        found = await asyncio.gather(
            *(self.follows.find_one({"source": s, "target": t}, {"_id": 1}) for s, t in pairs)
        )
        return {s for (s, _), doc in zip(pairs, found, strict=True) if doc is not None}

    async def count_followed(self, source: str, limit: int) -> int:
        """How many feeds `source` follows, counted up to `limit` (an index read of at most
        `limit` follows)."""
        return await self.follows.count_documents({"source": source}, limit=limit)

    async def count_of(self, feed: str, followers: bool, groups: Sequence[str] = ()) -> int:
        """stats/follow/: how many feeds follow `feed` (`followers`) or `feed` follows, only
        those of `groups` when given: index reads ((target, source) or (source, target)), one
        range per group."""
        mine, theirs = ("target", "source") if followers else ("source", "target")
        if not groups:
            return await self.follows.count_documents({mine: feed})
        total = 0
        for group in groups:  # "group:" up to "group;" (";" follows ":")
            span = {"$gte": f"{group}:", "$lt": f"{group};"}
            total += await self.follows.count_documents({mine: feed, theirs: span})
        return total

    async def repair_counters(self, settled: datetime, limit: int = 100) -> int:
        """Recount the follower counters of the feeds whose follows changed before `settled`
        (a follow or unfollow still in flight then is taken as dead): a crash between a
        follow's document and its count leaves the counter off. Answers how many were set."""
        repaired = 0
        for feed, changed_at in await self.meta.changed_before(settled, limit):
            truth = await self.follows.count_documents({"target": feed})
            repaired += await self.meta.settle(feed, changed_at, truth)
        return repaired

    async def recount(self, target: str) -> FeedMeta:
        """Repair `target`'s follower counter from the truth, its follows documents: the counter
        moves apart from them (a crash between the two writes leaves it off by one)."""
        return await self.meta.set_followers(
            target, await self.follows.count_documents({"target": target})
        )

    # --------------------------------------------------------------------------- the fanout

    async def last_chunk(self, target: str) -> int:
        """The highest chunk number `target`'s followers may be in (-1: never followed)."""
        meta = await self.meta.get(target)
        return (meta.slots - 1) // CHUNK_SIZE if meta.slots else -1

    async def chunk(self, target: str, n: int) -> list[Member]:
        """The followers in chunk `n` of `target`, in follow order."""
        doc = await self.chunks.find_one({"_id": chunk_id(target, n)}, {"m": 1})
        return [] if doc is None else [(m["s"], m["f"]) for m in doc.get("m", ())]

    async def chunk_range(self, target: str, first: int, last: int) -> list[list[Member]]:
        """`chunk` of each of `target`'s chunks `first`..`last`, in one query by `_id`."""
        ids = [chunk_id(target, n) for n in range(first, last + 1)]
        found: dict[str, list[Member]] = {}
        async for doc in self.chunks.find({"_id": {"$in": ids}}, {"m": 1}):
            found[doc["_id"]] = [(m["s"], m["f"]) for m in doc.get("m", ())]
        return [found.get(i, []) for i in ids]

    async def records(self, ids: Sequence[ObjectId]) -> dict[ObjectId, FollowRecord]:
        return {
            d["_id"]: record_of(d) async for d in self.follows.find({"_id": {"$in": list(ids)}})
        }

    async def pull_follows(self, source: str) -> list[FollowRecord]:
        """The follows of `source` marked as follows of pull feeds."""
        return [record_of(d) async for d in self.follows.find({"pull_source": source})]

    async def pull_follows_of(self, sources: list[str]) -> dict[str, list[FollowRecord]]:
        """`pull_follows` of many feeds in one query (the coalesced lookups of reads)."""
        found: dict[str, list[FollowRecord]] = {s: [] for s in sources}
        async for d in self.follows.find({"pull_source": {"$in": sources}}):
            found.setdefault(d["pull_source"], []).append(record_of(d))
        return found

    async def mark_pull(self, target: str, pull: bool) -> None:
        """Mark (or unmark) every follow of `target` as a follow of a pull feed."""
        if pull:
            await self.follows.update_many(
                {"target": target}, [{"$set": {"pull_source": "$source"}}]
            )
        else:
            await self.follows.update_many({"target": target}, {"$unset": {"pull_source": ""}})

    # ---------------------------------------------------------------------------- listings

    async def followers(
        self, target: str, limit: int, offset: int, only: Sequence[str] = ()
    ) -> list[Follow]:
        """Who follows `target`, newest follow first; `only` narrows to those feeds."""
        if only:
            # `source` first: the embedded store then looks the feeds up in the (source,
            # target) index instead of reading every follower of the target.
            query = {"source": {"$in": list(only)}, "target": target}
            return await self._filtered(query, limit, offset)
        return await self._newest({"target": target}, limit, offset)

    async def followed_by(
        self, source: str, limit: int, offset: int, only: Sequence[str] = ()
    ) -> list[Follow]:
        """The feeds `source` follows, newest follow first; `only` narrows to those feeds. An
        index range read of `offset + limit` follows (the (source, _id) index), whatever the
        number of feeds it follows."""
        if only:
            query = {"source": source, "target": {"$in": list(only)}}
            return await self._filtered(query, limit, offset)
        return await self._newest({"source": source}, limit, offset)

    async def _newest(self, query: Document, limit: int, offset: int) -> list[Follow]:
        docs = await scan.newest_first(
            self.follows, query, "_id", scan.OBJECT_IDS, Bounds(), offset + limit
        )
        return [_public(d) for d in docs[offset:]]

    async def _filtered(self, query: Document, limit: int, offset: int) -> list[Follow]:
        docs = await self.follows.find(query).to_list()
        docs.sort(key=lambda d: d["_id"], reverse=True)
        return [_public(d) for d in docs[offset : offset + limit]]

    # --------------------------------------------------------------------------- migration

    async def adopt_unchunked(self) -> int:
        """Migration: follows stored before follower chunks existed (no `chunk`) are not in
        any chunk, so no fanout reaches them. Give each a chunk slot, a membership and a
        frontier, as a follow made now would get, and count them as followers of their
        target. Several nodes may run it at once: a follow is adopted by one of them only, and
        the memberships are added idempotently. Answers how many follows this call adopted."""
        adopted = 0
        unchunked = {"chunk": {"$exists": False}}
        for target in await self.follows.distinct("target", unchunked):
            ids = [d["_id"] async for d in self.follows.find({"target": target, **unchunked})]
            if not ids:
                continue
            first = await self.meta.take_slots(target, len(ids))
            meta = await self.meta.get(target)
            # Push feeds only had push fanout: the follower holds everything it followed. A
            # frontier of "" in the current period merges nothing extra if it ever switches.
            adopt = [
                UpdateOne(
                    {"_id": follow, **unchunked},
                    {
                        "$set": {
                            "chunk": (first + i) // CHUNK_SIZE,
                            "frontier": "",
                            "period": meta.period,
                        }
                    },
                )
                for i, follow in enumerate(ids)
            ]
            result = await self.follows.bulk_write(adopt, ordered=False)
            records = [record_of(d) async for d in self.follows.find({"_id": {"$in": ids}})]
            await self.enlist_many(target, records)
            if result.modified_count:
                await self.meta.count(target, result.modified_count)
            adopted += result.modified_count
        return adopted


def _public(doc: Document) -> Follow:
    return Follow(doc["source"], doc["target"], doc["created_at"], doc["updated_at"])
