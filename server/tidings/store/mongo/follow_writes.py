"""The bulk writes of follows (store/mongo/follows.py describes the documents and the steps):
a batch of follows, of unfollows, their completion and their chunk memberships, in a few bulk writes
whatever their number."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from bson import ObjectId
from pymongo import DeleteOne, UpdateOne
from pymongo.errors import BulkWriteError

from . import bulk
from .client import Database, Document
from .feeds import FeedMeta, FeedMetaStore
from .follow_records import (
    CHUNK_SIZE,
    IN_BATCH,
    SURVEY_SOURCES,
    SURVEY_TARGETS,
    FollowRecord,
    Started,
    Survey,
    chunk_id,
    record_of,
)

TAKE_CONCURRENCY = 16  # targets whose slots are taken at once (a follow_many names 2,500)


class FollowWrites:
    def __init__(self, db: Database) -> None:
        self.follows = db["follows"]
        self.chunks = db["follower_chunks"]
        self.meta = FeedMetaStore(db)

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
        slots = asyncio.Semaphore(TAKE_CONCURRENCY)

        async def take(target: str, count: int) -> tuple[list[int], FeedMeta]:
            async with slots:
                return await self.meta.take_many(target, count, CHUNK_SIZE)

        taken = await asyncio.gather(*(take(t, len(s)) for t, s in wanted.items()))
        for (target, sources), (chunks, metas[target]) in zip(wanted.items(), taken, strict=True):
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
                lost = set(bulk.duplicates(exc))
        if lost:  # concurrent first follows won: their slots are not used
            back: dict[str, list[int]] = {}
            for i in lost:
                back.setdefault(docs[i]["target"], []).append(docs[i]["chunk"])
            for target, chunks in back.items():
                await self.meta.give_back(target, chunks)
            won = await self.existing([(docs[i]["source"], docs[i]["target"]) for i in lost])
            todo += [(r, False) for r in won.values() if r.frontier is None]
        todo += [(record_of(d), True) for i, d in enumerate(docs) if i not in lost]
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
        return {(d["source"], d["target"]): record_of(d) for part in docs for d in part}

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
        return {(d["source"], d["target"]): record_of(d) for docs in found for d in docs}

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
            by_chunk.setdefault(chunk_id(record.target, record.chunk), []).append(member)
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

    async def _delist(self, record: FollowRecord) -> None:
        await self.chunks.update_one(
            {"_id": chunk_id(record.target, record.chunk)}, {"$pull": {"m": {"f": record.id}}}
        )

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
                    {"_id": chunk_id(target, n)},
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
                        {"_id": chunk_id(target, n)},
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
