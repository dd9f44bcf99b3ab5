"""Data migrations, run at start after the indexes: each runs to the end once per database.

`migrations` holds one document per migration done (`{_id: name, done_at}`). A migration must be
safe to run again and to run on several nodes at once: a node that stops half-way leaves it
undone, and the next start runs it again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from .client import Database
from .follows import FollowStore

log = logging.getLogger(__name__)


async def _follower_chunks(db: Database) -> int:
    return await FollowStore(db).adopt_unchunked()


MIGRATIONS: dict[str, Callable[[Database], Awaitable[int]]] = {
    "follower_chunks": _follower_chunks,  # follows stored before follower chunks existed
}


async def migrate(db: Database) -> None:
    done = {d["_id"] async for d in db["migrations"].find({}, {"_id": 1})}
    for name, step in MIGRATIONS.items():
        if name in done:
            continue
        changed = await step(db)
        await db["migrations"].update_one(
            {"_id": name}, {"$set": {"done_at": datetime.now(UTC)}}, upsert=True
        )
        log.info("migration %s done (%d documents changed)", name, changed)
