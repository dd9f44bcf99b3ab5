"""A fanout batch into grouped feeds, on the real store: the activity joins the groups of
hundreds of notification feeds in a number of store commands that does not grow with them (one
insert of the new groups, one update per 50 feeds of the existing ones, one count per 50 feeds),
and leaves each group exactly as the join of one feed at a time does: concurrent batches,
replays and marks included.

Store-level: the ActivityStore writes a batch's entries as the fanout runner does
(`insert_entries`), on a database whose commands are recorded (harness/monitoring.py).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from bson import ObjectId

from harness.monitoring import Commands, monitored_database
from tests.support import Store
from tidings.config.settings import NOTIFICATION, FeedGroup
from tidings.domain.activities import Activity, Limits, parse_activity
from tidings.domain.aggregation import DEFAULT_FORMAT, AggregationFormat
from tidings.store.mongo.activities import ActivityStore
from tidings.store.mongo.client import Database
from tidings.store.mongo.entry_writes import Entry
from tidings.store.mongo.group_joins import FEEDS_PER_UPDATE
from tidings.store.mongo.groups import COUNT_CHUNK, GroupStore

FEEDS = 300
CONCURRENT_FEEDS = 100  # 20 batches of 50 at once (the likes' twice): the store is the limit
LIMITS = Limits(groups={"user", "notification"}, max_bytes=10240, max_to=3)
# What a recompute or a read needs of a group: all of it but its id, feed and join tokens.
FIELDS = ("group", "gid", "activity_ids", "origins", "activity_count", "actors", "newest_verb",
          "created_at", "updated_at", "is_seen", "is_read", "v")  # fmt: skip


@dataclass
class Stores:
    db: Database
    commands: Commands
    activities: ActivityStore
    groups: GroupStore

    async def post(self, actor: str, verb: str, source: str = "user:celeb") -> Activity:
        activity = parse_activity({"actor": actor, "verb": verb, "object": "o:1"}, LIMITS)
        await self.activities.save([activity], source, lambda _: True)
        return activity

    async def fan_out(self, activity: Activity, feeds: list[str], source: str) -> list[Entry]:
        """What one fanout batch writes."""
        return await self.activities.insert_entries(
            [Entry(feed, activity.id, origin=source) for feed in feeds]
        )

    async def group_docs(self, feeds: list[str]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {feed: [] for feed in feeds}
        async for doc in self.db["feed_groups"].find({"feed": {"$in": feeds}}).sort("gid", -1):
            found[doc["feed"]].append({k: doc.get(k) for k in FIELDS})
        return found


@pytest.fixture
async def stores(store: Store) -> AsyncIterator[Stores]:
    group = FeedGroup("notification", NOTIFICATION, aggregation=AggregationFormat(DEFAULT_FORMAT))
    async with monitored_database(store.url) as (db, commands):
        groups = GroupStore(db, {"notification": group})
        yield Stores(db, commands, ActivityStore(db, groups), groups)


def sent_to(commands: Commands, collection: str) -> list[str]:
    return [c for c in commands.sent if c.endswith(f":{collection}")]


def statements(commands: Commands, collection: str) -> int:
    """The writes and reads the store runs for these commands (a bulk update's ops each)."""
    sent = zip(commands.sent, commands.statements, strict=True)
    return sum(n for c, n in sent if c.endswith(f":{collection}"))


async def test_a_batch_joins_hundreds_of_feeds_in_a_bounded_number_of_commands(
    stores: Stores, uid: str
) -> None:
    feeds = [f"notification:{uid}-{i}" for i in range(FEEDS)]
    chunks = math.ceil(FEEDS / FEEDS_PER_UPDATE)
    counted = math.ceil(FEEDS / COUNT_CHUNK)
    like = await stores.post("alice", "like")
    stores.commands.clear()
    assert len(await stores.fan_out(like, feeds, "user:celeb")) == FEEDS
    # New groups: one insert, and the length check of the feeds that got one.
    assert (
        sent_to(stores.commands, "feed_groups")
        == ["insert:feed_groups"] + ["aggregate:feed_groups"] * counted
    )
    again = await stores.post("bob", "like")  # the same group in every feed
    stores.commands.clear()
    assert len(await stores.fan_out(again, feeds, "user:celeb")) == FEEDS
    # Existing groups: the insert finds them all, one update per FEEDS_PER_UPDATE feeds (an
    # update_many each: not one statement per feed).
    assert (
        sent_to(stores.commands, "feed_groups")
        == ["insert:feed_groups"] + ["update:feed_groups"] * chunks
    )
    assert statements(stores.commands, "feed_groups") == 1 + chunks
    stores.commands.clear()
    counts = await stores.groups.counts_many(feeds)
    assert len(sent_to(stores.commands, "feed_groups")) == 2 * counted
    assert counts == {feed: (1, 1) for feed in feeds}
    docs = await stores.group_docs(feeds)
    for feed in feeds:
        (group,) = docs[feed]
        assert group["activity_ids"] == [again.id, like.id]
        assert group["activity_count"] == 2 and group["actors"] == ["alice", "bob"]
        assert group["origins"] == [f"{again.id} user:celeb", f"{like.id} user:celeb"]


async def test_a_shared_join_leaves_each_group_as_joins_one_feed_at_a_time_do(
    stores: Stores, uid: str
) -> None:
    """Twin feeds: the batch's, joined together, and the same number joined one by one; some
    of the batch's feeds have the group already, the others get it from the batch."""
    batch = [f"notification:{uid}-b{i}" for i in range(12)]
    alone = [f"notification:{uid}-a{i}" for i in range(12)]
    first = await stores.post("carol", "like")
    for feed in [*batch[:5], *alone[:5]]:  # these have the group before the batch
        await stores.fan_out(first, [feed], "user:other")
    second = await stores.post("alice", "like")
    comment = await stores.post("dave", "comment")
    for activity in (second, comment):
        await stores.fan_out(activity, batch, "user:celeb")
        for feed in alone:
            await stores.fan_out(activity, [feed], "user:celeb")
    docs = await stores.group_docs(batch + alone)
    for twin, single in zip(batch, alone, strict=True):
        assert docs[twin] == docs[single], twin
    assert [g["activity_count"] for g in docs[batch[0]]] == [1, 2]
    assert [g["activity_count"] for g in docs[batch[-1]]] == [1, 1]
    counts = await stores.groups.counts_many(batch)
    assert counts == {feed: (2, 2) for feed in batch}


async def test_concurrent_batches_replays_and_marks_keep_groups_and_counts_exact(
    stores: Stores, uid: str
) -> None:
    feeds = [f"notification:{uid}-{i}" for i in range(CONCURRENT_FEEDS)]
    likes = [await stores.post(f"actor{n}", "like") for n in range(4)]
    follows = [await stores.post("erin", "follow") for _ in range(2)]
    # Every batch at once, each of them twice (a takeover running a batch again).
    await asyncio.gather(*(
        stores.fan_out(activity, part, "user:celeb")
        for activity in [*likes, *follows, *likes]
        for part in (feeds[: len(feeds) // 2], feeds[len(feeds) // 2 :])
    ))  # fmt: skip
    docs = await stores.group_docs(feeds)
    like_ids = sorted((a.id for a in likes), reverse=True)
    follow_ids = sorted((a.id for a in follows), reverse=True)
    for feed in feeds:
        by_ids = {tuple(g["activity_ids"]): g for g in docs[feed]}
        assert set(by_ids) == {tuple(like_ids), tuple(follow_ids)}, feed
        assert by_ids[tuple(like_ids)]["activity_count"] == 4
        assert by_ids[tuple(like_ids)]["actors"] == [f"actor{n}" for n in range(4)]
        assert by_ids[tuple(follow_ids)]["activity_count"] == 2
    assert not [d async for d in stores.db["group_joins"].find()], "every join finished"
    assert await stores.groups.counts_many(feeds) == {feed: (2, 2) for feed in feeds}
    # Marks, then a new activity in a marked group: only that group is unseen again.
    marked = feeds[:10]
    for feed in marked:
        await stores.groups.mark(feed, True, True)
    late = await stores.post("frank", "follow")
    await stores.fan_out(late, feeds, "user:celeb")
    counts = await stores.groups.counts_many(feeds)
    assert all(counts[feed] == (1, 1) for feed in marked)
    assert all(counts[feed] == (2, 2) for feed in feeds[10:])


async def test_a_batch_whose_group_holds_its_token_already_is_recomputed_not_doubled(
    stores: Stores, uid: str
) -> None:
    """The recovery of a batch cut short adopted its token into some groups (they count its
    entries): the batch's own join, still running, must not add them a second time."""
    feeds = [f"notification:{uid}-{i}" for i in range(20)]
    first = await stores.post("alice", "like")
    await stores.fan_out(first, feeds, "user:celeb")
    second = await stores.post("bob", "like")
    token = ObjectId()
    # As a recovery leaves them: the group counts the entries of the token's insert already.
    held = feeds[:3]
    await stores.db["feed_groups"].update_many({"feed": {"$in": held}}, {
        "$set": {"activity_ids": [second.id, first.id], "activity_count": 2,
                 "actors": ["alice", "bob"]},
        "$push": {"joined": token},
    })  # fmt: skip
    key = (await stores.group_docs(feeds[:1]))[feeds[0]][0]["group"]
    joined = [(f, second.id, second.public(), "user:celeb") for f in feeds]
    await stores.db["feed_entries"].insert_many([
        {"feed": f, "activity_id": second.id, "origin": "user:celeb", "group": key,
         "actor": "bob", "verb": "like", "join": token} for f in feeds
    ])  # fmt: skip
    await stores.groups.join(joined, token)
    docs = await stores.group_docs(feeds)
    for feed in feeds:
        (group,) = docs[feed]
        assert group["activity_count"] == 2, feed
        assert group["activity_ids"] == [second.id, first.id]
