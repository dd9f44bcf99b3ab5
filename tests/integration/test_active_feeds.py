"""Which feeds are active across nodes (realtime/active_feeds.py), on a real Redis and on a real
Redis Cluster: a node tells what its sockets watch and what was read on it, the others see it
in one question, and it ages out; without Redis a node answers from its own view, at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.common import free_port
from harness.redis import RedisServer
from harness.redis_cluster import RedisClusterServer
from tidings.bus.redis_bus import RedisBus
from tidings.realtime.active_feeds import WatchedFeeds
from tidings.realtime.transport.peers import Peer, Rooms
from tidings.realtime.transport.rooms import feed_room
from tidings.store.memory.recent_reads import RecentReads

SECONDS = 1.0  # how long a feed counts as active after it was last seen


async def linked(url: str, channel: str) -> RedisBus:
    bus = RedisBus(f"node-{channel}", url, channel)
    bus.start()
    deadline = time.monotonic() + 10
    while not bus.up:
        assert time.monotonic() < deadline, "the bus did not come up"
        await asyncio.sleep(0.02)
    return bus


@pytest.mark.parametrize("redis", ["redis_server", "redis_cluster"])
async def test_a_node_sees_what_another_watches_and_read_until_it_ages_out(
    redis: str, request: pytest.FixtureRequest, uid: str
) -> None:
    service: RedisServer | RedisClusterServer = request.getfixturevalue(redis)
    bus = await linked(service.url, f"t{uid}")
    try:
        rooms, peer = Rooms(), Peer("sid-1")
        rooms.join(peer, feed_room("timeline:watched"))
        reads = RecentReads(SECONDS)
        reads.saw("timeline:read")
        here = WatchedFeeds(rooms, reads, bus, f"t{uid}", SECONDS)
        there = WatchedFeeds(Rooms(), RecentReads(SECONDS), bus, f"t{uid}", SECONDS)
        feeds = ["timeline:watched", "timeline:read", "timeline:nobody"]
        assert await here.active(feeds) == {"timeline:watched", "timeline:read"}
        assert await there.active(feeds) == set()  # not told yet

        await here.publish()
        assert await there.active(feeds) == {"timeline:watched", "timeline:read"}

        rooms.leave(peer, feed_room("timeline:watched"))
        await asyncio.sleep(SECONDS + 0.1)
        await here.publish()  # nothing new to tell; sweeps what nobody saw for SECONDS
        assert await there.active(feeds) == set()
        assert await bus.client().zcard(f"t{uid}:active") == 0
    finally:
        await bus.close()


async def test_without_redis_a_node_answers_from_its_own_view_at_once(uid: str) -> None:
    bus = RedisBus("node", f"redis://127.0.0.1:{free_port()}", f"t{uid}")  # nobody listens
    rooms = Rooms()
    rooms.join(Peer("sid-1"), feed_room("timeline:watched"))
    watched = WatchedFeeds(rooms, RecentReads(SECONDS), bus, f"t{uid}", SECONDS)
    started = time.monotonic()
    await watched.publish()  # skipped: the link is down
    found = await watched.active(["timeline:watched", "timeline:other"])
    assert found == {"timeline:watched"}
    assert time.monotonic() - started < 0.5
    await bus.close()
