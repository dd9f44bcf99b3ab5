"""Set-up writes straight into the store, for thousands of followers in a few bulk writes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError

FOLLOW_INSERT_BATCH = 1000
DUPLICATE_KEY = 11000


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
