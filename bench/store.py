"""Straight to the store: the raw bulk-insert rate, follows written directly, entries counted,
a feed's fanout mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.errors import BulkWriteError, PyMongoError

FOLLOW_INSERT_BATCH = 1000
DUPLICATE_KEY = 11000


async def raw_insert_rate(db: Any, run: str, docs: int, batch: int, concurrency: int) -> float:
    """Docs/s of unordered bulk inserts of feed-entry-shaped docs into a scratch collection with
    the same unique index: what one fanout batch does, with the same batch size and number of
    batches in flight. The collection is dropped afterwards."""
    scratch = db[f"bench_raw_{run}"]
    await scratch.create_indexes(
        [IndexModel([("feed", ASCENDING), ("activity_id", ASCENDING)], unique=True)]
    )
    try:
        # As the fanout writes them: each "activity" goes to `batch` distinct follower feeds.
        batches = [
            [
                {
                    "feed": f"timeline:raw-{run}-{i % batch}",
                    "activity_id": f"raw-{run}-{i // batch:08d}",
                    "origin": f"user:raw-{run}",
                }
                for i in range(start, min(start + batch, docs))
            ]
            for start in range(0, docs, batch)
        ]
        slots = asyncio.Semaphore(concurrency)

        async def one(chunk: list[dict[str, Any]]) -> None:
            async with slots:
                try:
                    await scratch.insert_many(chunk, ordered=False)
                except BulkWriteError as exc:  # a repeat would be ignored, as in the fanout
                    if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                        raise

        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one(b) for b in batches)), 300)
        seconds = time.perf_counter() - started
        stored = await scratch.count_documents({})
        if stored != docs:
            raise RuntimeError(f"raw insert stored {stored} of {docs} documents")
        return docs / seconds
    finally:
        await scratch.drop()


async def store_version(db: Any) -> str | None:
    try:
        info = await db.client.admin.command("buildInfo")
    except PyMongoError:
        return None
    return str(info.get("version")) if info.get("version") is not None else None


async def insert_follows(db: Any, target_feed: str, feeds: Sequence[str]) -> None:
    """`feeds` follow `target_feed`, written straight into the store as the API stores them
    (follows, follower chunks, counts; no activities copied): fast, for thousands of followers."""
    await add_followers_bulk(db, target_feed, list(feeds))


async def add_followers_bulk(db: Any, target: str, sources: Sequence[str]) -> int:
    """Set-up for tests and benchmarks: `sources` follow `target`, in this order, as follows
    with `activity_copy_limit` 0 would (no activity is copied), in a few bulk writes. Feeds
    already following are left as they are. Answers how many follows were added. The target's
    fanout mode is not re-evaluated here: the next follow or unfollow through the API does that.
    """
    from tidings.store.mongo.activities import ActivityStore
    from tidings.store.mongo.follows import CHUNK_SIZE, FollowStore, record_of

    follows = FollowStore(db)
    sources = list(dict.fromkeys(sources))
    if not sources:
        return 0
    first = await follows.meta.take_slots(target, len(sources))
    meta = await follows.meta.get(target)
    newest = await ActivityStore(db).latest_own(target, 1)
    frontier = newest[0] if newest else ""
    if frontier:  # as a follow does: what a later switch to pull starts from
        await follows.meta.raise_max(target, frontier)
    now = datetime.now(UTC)
    docs: list[dict[str, Any]] = [
        {
            "_id": ObjectId(), "source": source, "target": target,
            "chunk": (first + i) // CHUNK_SIZE, "created_at": now, "updated_at": now,
            "frontier": frontier, "period": meta.period,
            **({"pull_source": source} if meta.pull_rooms else {}),
        }
        for i, source in enumerate(sources)
    ]  # fmt: skip
    skipped: set[int] = set()
    for start in range(0, len(docs), FOLLOW_INSERT_BATCH):
        try:
            await follows.follows.insert_many(
                docs[start : start + FOLLOW_INSERT_BATCH], ordered=False
            )
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(err.get("code") != DUPLICATE_KEY for err in errors):
                raise
            skipped |= {start + err["index"] for err in errors}
    added = [d for i, d in enumerate(docs) if i not in skipped]
    # New follows only: nothing to dedupe.
    await follows.enlist_many(target, [record_of(d) for d in added], dedupe=False)
    if added:
        await follows.meta.count(target, len(added))
    return len(added)


async def count_entries(db: Any, origin: str, activity_ids: Iterable[str]) -> int:
    """Follower entries of these activities in `feed_entries` (`origin` = the followed feed)."""
    return int(
        await db["feed_entries"].count_documents(
            {"activity_id": {"$in": sorted(activity_ids)}, "origin": origin}
        )
    )


async def fanout_mode(db: Any, feed: str) -> str | None:
    """`feed`'s fanout mode as its `feeds` document says (push, pull, draining; "switching" on
    the way from push to pull); None when it has none (never followed)."""
    doc = await db["feeds"].find_one({"_id": feed}, {"mode": 1, "switching": 1})
    if doc is None:
        return None
    mode = str(doc.get("mode", "push"))
    return "switching" if mode == "push" and doc.get("switching") else mode
