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
chunk slots (store/feeds.py: holes an unfollow freed first, else new ones) and are counted, in
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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import DeleteOne, UpdateOne
from pymongo.errors import BulkWriteError

from ..domain.ids import format_time
from ..domain.merge import Bounds
from . import scan
from .feeds import FeedMeta, FeedMetaStore
from .mongo import Database, Document

CHUNK_SIZE = 500
DUPLICATE_KEY = 11000
# Values per `$in` of a bulk read: the embedded store matches each candidate against the whole
# list (2,500 ids in one `$in` took 4 s, in 25 reads of 100 a few ms each).
IN_BATCH = 100
# Sources per aggregation of FollowStore.survey (the embedded store ran parts of 50 faster per
# source than parts of 100), and the most targets it looks the pairs up among in one.
SURVEY_SOURCES = 50
SURVEY_TARGETS = 50
Member = tuple[str, ObjectId]  # (follower feed, its follow's _id)


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


@dataclass(frozen=True)
class FollowRecord:
    id: ObjectId
    source: str
    target: str
    chunk: int
    frontier: str | None = None  # None until the follow is complete
    period: int = 0
    pull: bool = False  # marked as a follow of a pull feed

    def merged_above(self, meta: FeedMeta) -> str | None:
        """The ids of `target`'s own activities above which a reader of `source` merges them
        in (None: it merges nothing in). A follow made in the target's current pull period
        merges what it would have copied and got (its own frontier: the (copy limit + 1)-th
        newest activity of the target when it followed); an older follow holds everything
        up to the start of the period (copied, or backfilled at its end), and merges the rest."""
        if not meta.merged or self.frontier is None:
            return None
        return self.frontier if self.period == meta.period else meta.pull_since


@dataclass(frozen=True)
class Survey:
    counts: dict[str, int]  # source → how many feeds it follows (absent: none)
    found: dict[tuple[str, str], ObjectId]  # (source, target) → its follow, those that exist


@dataclass(frozen=True)
class Started:
    """What FollowStore.follow_many stored: the follows still to complete (with whether each
    is new), per target with new follows its metadata after they were counted, and how many
    feeds each of their sources follows afterwards."""

    follows: list[tuple[FollowRecord, bool]]
    metas: dict[str, FeedMeta]
    counts: dict[str, int]


def _record(doc: Document) -> FollowRecord:
    return FollowRecord(
        id=doc["_id"],
        source=doc["source"],
        target=doc["target"],
        chunk=int(doc.get("chunk", 0)),
        frontier=doc.get("frontier"),
        period=int(doc.get("period", 0)),
        pull="pull_source" in doc,
    )


def _chunk_id(target: str, n: int) -> str:
    return f"{target}#{n}"


class FollowStore:
    def __init__(self, db: Database) -> None:
        self.follows = db["follows"]
        self.chunks = db["follower_chunks"]
        self.meta = FeedMetaStore(db)

    # ------------------------------------------------------------------------ follow, unfollow

    async def follow_many(
        self,
        pairs: Sequence[tuple[str, str]],
        complete: dict[str, tuple[str, int, bool]] | None = None,
        existing: dict[tuple[str, str], FollowRecord] | None = None,
    ) -> Started:
        """`follow` of many (source, target) pairs in a few bulk writes, whatever their number:
        per target one write of its `feeds` document (take_many: slots, counter), one insert of
        the new follows, one write of their chunk memberships, then one survey (an
        aggregation per SURVEY_SOURCES sources) that both sees none was undone meanwhile and
        recounts the sources' follows (the caller's `max_following` check). Same guarantees as
        `follow` (every step can be retried; a crash leaves at most a counter to repair).
        `existing`: the follows of `pairs` that exist, when the caller read them (else read
        here). `complete` (target → frontier, period, pull): new follows of those targets are
        inserted complete (nothing to copy; the caller checks the mode did not change
        meanwhile)."""
        complete = complete or {}
        if existing is None:
            existing = await self.records_of((await self.survey(pairs)).found)
        todo: list[tuple[FollowRecord, bool]] = [
            (r, False) for r in existing.values() if r.frontier is None
        ]
        wanted: dict[str, list[str]] = {}
        for source, target in dict.fromkeys(pairs):
            if (source, target) not in existing:
                wanted.setdefault(target, []).append(source)
        metas: dict[str, FeedMeta] = {}
        docs: list[Document] = []
        now = datetime.now(UTC)
        for target, sources in wanted.items():
            chunks, metas[target] = await self.meta.take_many(target, len(sources), CHUNK_SIZE)
            done: Document = {}
            if target in complete:
                frontier, period, pull = complete[target]
                done = {"frontier": frontier, "period": period}
            docs += [
                {
                    "_id": ObjectId(),
                    "source": source,
                    "target": target,
                    "chunk": chunk,
                    "created_at": now,
                    "updated_at": now,
                    **done,
                    **({"pull_source": source} if done and pull else {}),
                }
                for source, chunk in zip(sources, chunks, strict=True)
            ]
        lost: set[int] = set()
        if docs:
            try:
                await self.follows.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                lost = {int(e["index"]) for e in errors}
        if lost:  # concurrent first follows won: their slots are not used
            back: dict[str, list[int]] = {}
            for i in lost:
                back.setdefault(docs[i]["target"], []).append(docs[i]["chunk"])
            for target, chunks in back.items():
                await self.meta.give_back(target, chunks)
            won = await self.existing([(docs[i]["source"], docs[i]["target"]) for i in lost])
            todo += [(r, False) for r in won.values() if r.frontier is None]
        todo += [(_record(d), True) for i, d in enumerate(docs) if i not in lost]
        await self.enlist_all([r for r, new in todo if not new], dedupe=True)
        await self.enlist_all([r for r, new in todo if new], dedupe=False)
        if not todo:
            return Started([], metas, {})
        after = await self.survey([(r.source, r.target) for r, _ in todo])
        alive = set(after.found.values())
        for record, _ in todo:
            if record.id not in alive:
                await self._delist(record)  # unfollowed meanwhile
        return Started([(r, new) for r, new in todo if r.id in alive], metas, after.counts)

    async def survey(self, pairs: Collection[tuple[str, str]]) -> Survey:
        """How many feeds each source of `pairs` follows, and which of the pairs are follows
        that exist: one pass over the sources' follows, an aggregation per SURVEY_SOURCES
        sources (cheaper on the embedded store than a read of the pairs and a count apart: its
        `$in` compares each candidate with the whole list). Sources of many targets at once
        (more than SURVEY_TARGETS in one part) have their pairs looked up by target instead."""
        by_source: dict[str, set[str]] = {}
        for source, target in pairs:
            by_source.setdefault(source, set()).add(target)
        sources = sorted(by_source)
        parts = [sources[i : i + SURVEY_SOURCES] for i in range(0, len(sources), SURVEY_SOURCES)]

        async def one(part: list[str]) -> tuple[list[Document], bool]:
            targets = sorted(set().union(*(by_source[s] for s in part)))
            group: Document = {"_id": "$source", "n": {"$sum": 1}}
            listed = len(targets) <= SURVEY_TARGETS
            if listed:
                hit = {"t": "$target", "f": "$_id"}
                group["f"] = {"$push": {"$cond": [{"$in": ["$target", targets]}, hit, "$$REMOVE"]}}
            rows = await self.follows.aggregate([
                {"$match": {"source": {"$in": part}}}, {"$group": group},
            ])  # fmt: skip
            return await rows.to_list(), listed

        counts: dict[str, int] = {}
        found: dict[tuple[str, str], ObjectId] = {}
        rest: list[tuple[str, str]] = []
        results = await asyncio.gather(*(one(part) for part in parts))
        for part, (rows, listed) in zip(parts, results, strict=True):
            for row in rows:
                source = row["_id"]
                counts[source] = int(row["n"])
                for hit in row.get("f", ()):
                    if hit["t"] in by_source[source]:
                        found[(source, hit["t"])] = hit["f"]
            if not listed:
                rest += [(s, t) for s in part for t in by_source[s]]
        if rest:
            found.update({pair: r.id for pair, r in (await self.existing(rest)).items()})
        return Survey(counts, found)

    async def records_of(
        self, found: dict[tuple[str, str], ObjectId]
    ) -> dict[tuple[str, str], FollowRecord]:
        """The records of follows a survey found (none: no read)."""
        ids = list(found.values())
        docs = await asyncio.gather(
            *(
                self.follows.find({"_id": {"$in": ids[i : i + IN_BATCH]}}).to_list()
                for i in range(0, len(ids), IN_BATCH)
            )
        )
        return {(d["source"], d["target"]): _record(d) for part in docs for d in part}

    async def existing(
        self, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], FollowRecord]:
        """The follows of these (source, target) pairs that exist (a read per target and
        IN_BATCH sources)."""
        if not pairs:
            return {}
        wanted = set(pairs)
        by_target: dict[str, list[str]] = {}
        for source, target in sorted(wanted):
            by_target.setdefault(target, []).append(source)
        queries = [
            {"source": {"$in": sources[i : i + IN_BATCH]}, "target": target}
            for target, sources in by_target.items()
            for i in range(0, len(sources), IN_BATCH)
        ]
        found = await asyncio.gather(*(self.follows.find(q).to_list() for q in queries))
        return {(d["source"], d["target"]): _record(d) for docs in found for d in docs}

    async def unfollow_many(self, records: Sequence[FollowRecord]) -> dict[str, FeedMeta]:
        """`unfollow` of many follows in bulk: per target one mark (changing), one bulk pull
        of the members out of their chunks, one bulk delete of the follows, the pull again (a
        retried follow may have put one back), and ONE write of the target's `feeds` document
        (holes for the slots freed, the counter). When fewer were deleted than asked (a
        concurrent unfollow took some), no hole is given back (which slots are free is not
        known; a lost hole only wastes its slot). Answers, per target that lost followers, its
        metadata after."""
        by_target: dict[str, list[FollowRecord]] = {}
        for record in records:
            by_target.setdefault(record.target, []).append(record)
        if not by_target:
            return {}
        await asyncio.gather(*(self.meta.mark_changing(t) for t in by_target))
        await self.delist_all(records)

        async def delete(group: list[FollowRecord]) -> int:
            # DeleteOne by _id: the embedded store's `$in` compares each candidate with the list
            result = await self.follows.bulk_write(
                [DeleteOne({"_id": r.id}) for r in group], ordered=False
            )
            return int(result.deleted_count)

        targets = list(by_target)
        counts = await asyncio.gather(*(delete(by_target[t]) for t in targets))
        await self.delist_all(records)
        deleted = dict(zip(targets, counts, strict=True))
        metas: dict[str, FeedMeta] = {}
        for target, n in deleted.items():
            if n:
                group = by_target[target]
                holes = [r.chunk for r in group] if n == len(group) else []
                metas[target] = await self.meta.release(target, holes, n)
        return metas

    async def delist_all(self, records: Sequence[FollowRecord]) -> None:
        """Take follows out of their chunks: one bulk write, one `$pullAll` of the exact members
        per chunk (on the embedded store 25 times faster than a `$pull` of `f` `$in` the ids,
        which compares each member with the whole list)."""
        by_chunk: dict[str, list[Document]] = {}
        for record in records:
            member = {"s": record.source, "f": record.id}  # as enlisted: same fields, same order
            by_chunk.setdefault(_chunk_id(record.target, record.chunk), []).append(member)
        if by_chunk:
            await self.chunks.bulk_write(
                [
                    UpdateOne({"_id": chunk}, {"$pullAll": {"m": members}})
                    for chunk, members in by_chunk.items()
                ],
                ordered=False,
            )

    async def complete_many(self, done: Sequence[tuple[FollowRecord, str, int, bool]]) -> None:
        """`complete` of many follows: (record, frontier, period, pull), one update of IN_BATCH
        follows per same frontier, period and mark (cheaper on the embedded store than one
        update per follow)."""
        groups: dict[tuple[str, int, bool], list[ObjectId]] = {}
        for record, frontier, period, pull in done:
            groups.setdefault((frontier, period, pull), []).append(record.id)
        writes = []
        for (frontier, period, pull), ids in groups.items():
            update: list[Document] = [{"$set": {"frontier": frontier, "period": period}}]
            if pull:  # never unset here: a switch to pull may have set it meanwhile
                update[0]["$set"]["pull_source"] = "$source"
            writes += [
                self.follows.update_many({"_id": {"$in": ids[i : i + IN_BATCH]}}, update)
                for i in range(0, len(ids), IN_BATCH)
            ]
        await asyncio.gather(*writes)

    async def complete(self, record: FollowRecord, frontier: str, period: int, pull: bool) -> None:
        update: Document = {"frontier": frontier, "period": period}
        if pull:  # never unset here: a switch to pull may have set it meanwhile
            update["pull_source"] = record.source
        await self.follows.update_one({"_id": record.id}, {"$set": update})

    async def get(self, source: str, target: str) -> FollowRecord | None:
        doc = await self.follows.find_one({"source": source, "target": target})
        return None if doc is None else _record(doc)

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

    async def _delist(self, record: FollowRecord) -> None:
        await self.chunks.update_one(
            {"_id": _chunk_id(record.target, record.chunk)}, {"$pull": {"m": {"f": record.id}}}
        )

    # --------------------------------------------------------------------------- the fanout

    async def last_chunk(self, target: str) -> int:
        """The highest chunk number `target`'s followers may be in (-1: never followed)."""
        meta = await self.meta.get(target)
        return (meta.slots - 1) // CHUNK_SIZE if meta.slots else -1

    async def chunk(self, target: str, n: int) -> list[Member]:
        """The followers in chunk `n` of `target`, in follow order."""
        doc = await self.chunks.find_one({"_id": _chunk_id(target, n)}, {"m": 1})
        return [] if doc is None else [(m["s"], m["f"]) for m in doc.get("m", ())]

    async def records(self, ids: Sequence[ObjectId]) -> dict[ObjectId, FollowRecord]:
        return {d["_id"]: _record(d) async for d in self.follows.find({"_id": {"$in": list(ids)}})}

    async def pull_follows(self, source: str) -> list[FollowRecord]:
        """The follows of `source` marked as follows of pull feeds."""
        return [_record(d) async for d in self.follows.find({"pull_source": source})]

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
            records = [_record(d) async for d in self.follows.find({"_id": {"$in": ids}})]
            await self.enlist_many(target, records)
            if result.modified_count:
                await self.meta.count(target, result.modified_count)
            adopted += result.modified_count
        return adopted

    async def enlist_all(self, records: Sequence[FollowRecord], dedupe: bool) -> None:
        """Add follows of several targets to their chunks in one bulk write (`dedupe`: some
        may be there already: $addToSet, which costs the chunk's size per member on the
        embedded store; new follows are $push-ed)."""
        by_target: dict[str, list[FollowRecord]] = {}
        for record in records:
            by_target.setdefault(record.target, []).append(record)
        add = "$addToSet" if dedupe else "$push"
        writes = []
        for target, records in by_target.items():
            by_chunk: dict[int, list[Document]] = {}
            for record in records:
                by_chunk.setdefault(record.chunk, []).append({"s": record.source, "f": record.id})
            writes += [
                UpdateOne(
                    {"_id": _chunk_id(target, n)},
                    {
                        add: {"m": {"$each": members}},
                        "$setOnInsert": {"target": target, "n": n},
                    },
                    upsert=True,
                )
                for n, members in by_chunk.items()
            ]
        if writes:
            await self.chunks.bulk_write(writes, ordered=False)

    async def enlist_many(
        self, target: str, records: Sequence[FollowRecord], dedupe: bool = True
    ) -> None:
        """Add the follows of `target` to their chunks in one bulk write (`dedupe`: some may be
        there already)."""
        by_chunk: dict[int, list[Document]] = {}
        for record in records:
            by_chunk.setdefault(record.chunk, []).append({"s": record.source, "f": record.id})
        add = "$addToSet" if dedupe else "$push"
        if by_chunk:
            await self.chunks.bulk_write(
                [
                    UpdateOne(
                        {"_id": _chunk_id(target, n)},
                        {
                            add: {"m": {"$each": members}},
                            "$setOnInsert": {"target": target, "n": n},
                        },
                        upsert=True,
                    )
                    for n, members in by_chunk.items()
                ],
                ordered=False,
            )


def record_of(doc: Document) -> FollowRecord:
    """The record of a `follows` document."""
    return _record(doc)


def _public(doc: Document) -> Follow:
    return Follow(doc["source"], doc["target"], doc["created_at"], doc["updated_at"])
