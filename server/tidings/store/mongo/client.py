"""The MongoDB connection and the indexes every repository relies on."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from ...config import MongoSettings

Document = dict[str, Any]
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]
DUPLICATE_KEY = 11000

INDEXES: dict[str, list[IndexModel]] = {
    "activities": [IndexModel([("foreign_id", ASCENDING)], sparse=True)],
    # The materialised feeds. Activity ids sort by time, so this one index both keeps entries
    # unique (idempotent fanout) and serves newest-first reads of a feed.
    # (feed, origin, activity_id): what a feed got through one follow (an unfollow deletes it)
    # is an index range, not a scan of the feed.
    "feed_entries": [
        IndexModel([("feed", ASCENDING), ("activity_id", ASCENDING)], unique=True),
        IndexModel([("feed", ASCENDING), ("origin", ASCENDING), ("activity_id", ASCENDING)]),
        # Every feed that holds one activity (an update goes live to each of them).
        IndexModel([("activity_id", ASCENDING)]),
        # Entries of aggregated/notification feeds carry their group: a removal recomputes
        # the group from them (sparse: flat feeds' entries cost nothing there).
        IndexModel([("feed", ASCENDING), ("group", ASCENDING)], sparse=True),
    ],
    # Groups of aggregated/notification feeds (store/mongo/groups.py): one per (feed, group key);
    # reads page newest updated first by `gid`, counts read unseen/unread groups of a feed.
    "feed_groups": [
        IndexModel([("feed", ASCENDING), ("group", ASCENDING)], unique=True),
        IndexModel([("feed", ASCENDING), ("gid", ASCENDING)]),
        IndexModel([("feed", ASCENDING), ("is_seen", ASCENDING)]),
        IndexModel([("feed", ASCENDING), ("is_read", ASCENDING)]),
    ],
    # Marks of groups merged in at read time from pull feeds (store/mongo/groups.py).
    "group_marks": [IndexModel([("feed", ASCENDING), ("group", ASCENDING)], unique=True)],
    # Followers listings page by (target, _id), following listings by (source, _id); a reader
    # finds the pull feeds a feed follows by `pull_source`, set only on follows of pull feeds
    # (sparse: the others cost nothing there).
    # Fanouts read `follower_chunks` and `feeds` by _id only.
    "follows": [
        IndexModel([("source", ASCENDING), ("target", ASCENDING)], unique=True),
        IndexModel([("target", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("source", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("pull_source", ASCENDING)], sparse=True),
        # stats/follow/ with followers_slugs: a feed's followers of some groups, by range.
        IndexModel([("target", ASCENDING), ("source", ASCENDING)]),
    ],
    "fanout_jobs": [IndexModel([("lease_until", ASCENDING)])],
    # Firehose messages (store/mongo/deliveries.py): what an endpoint may take now, and a
    # node's own.
    "deliveries": [
        IndexModel([("endpoint", ASCENDING), ("state", ASCENDING), ("lease_until", ASCENDING)]),
        IndexModel([("owner", ASCENDING)]),
        IndexModel([("dead_at", ASCENDING)], sparse=True),  # dead letters past their retention
    ],
    # Reactions (store/mongo/reactions.py): filter pages newest first by _id per activity (its
    # reactions, not their children), per parent reaction and per user, each with or without
    # a kind; a deleted reaction's descendants by `ancestors`. Counters by _id only.
    "reactions": [
        IndexModel([("activity_id", ASCENDING), ("parent", ASCENDING), ("_id", ASCENDING)]),
        IndexModel(
            [
                ("activity_id", ASCENDING),
                ("parent", ASCENDING),
                ("kind", ASCENDING),
                ("_id", ASCENDING),
            ]
        ),
        IndexModel([("parent", ASCENDING), ("kind", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("parent", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("user_id", ASCENDING), ("kind", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("user_id", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("ancestors", ASCENDING)]),
    ],
    # Feeds whose follower counter is to be recounted (store/mongo/feeds.py): few at any time.
    "feeds": [IndexModel([("changed_at", ASCENDING)], sparse=True)],
}


def write_concern(settings: MongoSettings) -> WriteConcern:
    """What "the feed durably holds the activity" means: set explicitly, so that
    a URL or a server default cannot weaken it unnoticed."""
    w = settings.write_concern
    return WriteConcern(w=int(w) if w.isdigit() else w, j=settings.journal)


def connect(url: str, settings: MongoSettings) -> AsyncMongoClient[Document]:
    concern = write_concern(settings)
    return AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=5000, appname="tidings",
        w=concern.document["w"], journal=concern.document["j"],
    )  # fmt: skip


IN_CHUNK = 100  # ids of one `$in`: the embedded store's cost grows with its square (1,000: 4 s)


def in_chunks(ids: list[Any], size: int = IN_CHUNK) -> list[list[Any]]:
    """`ids` in pieces of at most `size`, one `$in` query each."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


async def ensure_indexes(db: Database) -> None:
    for collection, indexes in INDEXES.items():
        await db[collection].create_indexes(indexes)


async def ping(db: Database) -> None:
    await db.command("ping")


__all__ = [
    "DESCENDING",
    "DUPLICATE_KEY",
    "Database",
    "Document",
    "connect",
    "ensure_indexes",
    "in_chunks",
    "ping",
]
