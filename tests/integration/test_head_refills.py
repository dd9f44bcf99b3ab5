"""A feed's head in memory is read again from the store once it is older than `max_staleness`.
A feed whose last head held it whole (a short feed: a follower feed of pull feeds holds little
of its own) is read again in one plain query instead of the time windows that a long feed needs
(ten windows back to the oldest key for a feed that is empty), and that read still sees what
another node wrote meanwhile."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from harness.monitoring import Commands, monitored_database
from tests.support import Store
from tidings.domain.activities import Limits, parse_activity
from tidings.domain.merge import Bounds
from tidings.store.memory.feed_heads import FeedHeads
from tidings.store.mongo.activities import ActivityStore
from tidings.store.mongo.client import Database
from tidings.store.mongo.entry_writes import Entry

STALE = 0.2  # max_staleness of the heads, seconds
LIMITS = Limits(groups={"timeline"}, max_bytes=10240, max_to=3)


@pytest.fixture
async def stores(store: Store) -> AsyncIterator[tuple[Database, Commands]]:
    async with monitored_database(store.url) as found:
        yield found


def finds(commands: Commands) -> int:
    return sum(1 for c in commands.sent if c == "find:feed_entries")


async def post(activities: ActivityStore, feed: str, n: int) -> list[str]:
    posted = [
        parse_activity({"actor": "a", "verb": "post", "object": f"o:{i}"}, LIMITS) for i in range(n)
    ]
    await activities.save(posted, feed, lambda _: True)
    await activities.insert_entries([Entry(feed, a.id) for a in posted])
    return [a.id for a in posted]


async def test_a_short_feed_is_read_again_in_one_query_and_sees_other_nodes_writes(
    stores: tuple[Database, Commands],
) -> None:
    db, commands = stores
    here = ActivityStore(db, heads=FeedHeads(1 << 20, max_staleness=STALE))
    there = ActivityStore(db)  # another node: its writes do not reach `here`'s heads
    feed, empty = f"timeline:{uuid.uuid4().hex[:8]}", f"timeline:{uuid.uuid4().hex[:8]}"
    ids = await post(there, feed, 3)

    commands.clear()
    assert await here.own_newest(feed, Bounds(), 25) == ids[::-1]
    assert await here.own_newest(empty, Bounds(), 25) == []
    first = finds(commands)
    assert first > 2  # the first reads go back in time windows

    later = await post(there, feed, 1)
    await asyncio.sleep(STALE * 1.5)
    commands.clear()
    assert await here.own_newest(feed, Bounds(), 25) == (ids + later)[::-1]
    assert await here.own_newest(empty, Bounds(), 25) == []
    assert finds(commands) == 2  # one plain query each

    commands.clear()  # within max_staleness: from memory
    assert await here.own_newest(feed, Bounds(), 25) == (ids + later)[::-1]
    assert finds(commands) == 0
