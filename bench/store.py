"""Straight to the store: the raw bulk-insert rate, follows written directly, entries counted,
a feed's fanout mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import BulkWriteError, PyMongoError

from harness.follows import add_followers_bulk


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
