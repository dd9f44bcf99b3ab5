"""Tidings on a Redis Cluster (`redis+cluster://`): the session's nodes on a real three-master
cluster of redis-server processes (harness/redis_cluster.py), driven through two of them.

Events cross nodes over sharded pub/sub, every key a node writes is safe on a cluster (the
presence keys share the channel's slot), rate limits count for the whole cluster, and a node
killed with kill -9 leaves the other carrying on: its members leave (the reaper claims it),
events still flow; when the channel's slot moves to another shard, or its master restarts, the
nodes subscribe again and their sockets resync. More tests run on the cluster too, parametrised
with `cluster` (ON_BOTH).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from redis.cluster import ClusterNode, RedisCluster

from harness.cluster import PRESENCE_TTL, REDIS_CLUSTER
from harness.common import wait_until
from harness.redis_cluster import RedisClusterServer
from tests.integration.nodes import (
    DEGRADED,
    READY,
    Cluster,
    Rest,
    Sub,
    poll,
    subscriber,
    wait_ready,
)
from tests.integration.test_raid import join, seen_join, seen_leave
from tests.integration.test_rate_limits import fresh_window, limit_of, read

pytestmark = pytest.mark.parametrize("cluster", [REDIS_CLUSTER], indirect=True)


def admin(redis_cluster: RedisClusterServer) -> RedisCluster:
    """A client of the test's own, to look at what the nodes keep in the cluster."""
    seeds = [ClusterNode("127.0.0.1", node.port) for node in redis_cluster.nodes]
    return RedisCluster(startup_nodes=seeds, decode_responses=True)


async def test_events_cross_nodes_on_sharded_pub_sub_and_presence_keys_share_one_slot(
    cluster: Cluster,
    redis_cluster: RedisClusterServer,
    http: aiohttp.ClientSession,
    subs: list[Sub],
    uid: str,
) -> None:
    a, b = Rest(http, cluster["A"]), Rest(http, cluster["B"])
    await wait_ready([a, b], READY)  # `/readyz` says how the link to the cluster is
    author, timeline = f"user:{uid}", f"timeline:{uid}"
    await a.follow(timeline, author)
    on_b = await subscriber(subs, cluster["B"], [author])
    on_a = await subscriber(subs, cluster["A"], [timeline])
    aid = await a.add(author)  # on A: its origin feed's socket is on B
    event = await on_b.wait_update(aid, f"on {author}, through the cluster")
    assert event["feed"] == author
    bid = await b.add(author)  # on B: fanned out to a feed whose socket is on A
    event = await on_a.wait_update(bid, f"on {timeline}, through the cluster")
    assert event["feed"] == timeline and event["new"][0]["origin"] == author

    room = f"raid:{uid}"
    await join(subs, cluster["B"], room, "gail")
    channel = cluster["A"].env["TIDINGS_REDIS_CHANNEL"]
    client = admin(redis_cluster)
    try:
        # every node listens on the channel's shard: sharded pub/sub, not a broadcast
        owner = client.get_node_from_key(channel)
        listening = client.execute_command("PUBSUB SHARDNUMSUB", channel, target_nodes=owner)
        assert dict(listening) == {channel: 3}, listening
        keys = {key: client.keyslot(key) for key in client.scan_iter(match=f"*{channel}*")}
        presence = [key for key in keys if ":presence:" in key]
        assert presence and {keys[key] for key in presence} == {client.keyslot(channel)}, keys
        # the feeds watched on B and A, told to every node (fanout writes them first)
        watched = [author, timeline]

        async def told() -> bool:
            return None not in client.zmscore(f"{channel}:active", watched)

        await poll(told, "the watched feeds in the cluster")
    finally:
        client.close()


async def test_rate_limits_count_for_the_whole_cluster(cluster: Cluster, uid: str) -> None:
    a, b = cluster["A"], cluster["B"]
    await asyncio.to_thread(fresh_window, 60, 5)
    answers = [await asyncio.to_thread(read, node, uid) for node in (a, b, a, b)]
    assert [limit_of(x)[1] for x in answers] == [3, 2, 1, 0], "one count for the cluster"
    assert (await asyncio.to_thread(read, b, uid)).status_code == 429
    other = await asyncio.to_thread(read, a, f"{uid}-other")
    assert other.status_code == 200 and limit_of(other)[1] == 3


async def test_a_node_killed_leaves_the_other_carrying_on(
    cluster: Cluster, http: aiohttp.ClientSession, subs: list[Sub], uid: str
) -> None:
    a = Rest(http, cluster["A"])
    await wait_ready([a, Rest(http, cluster["B"])], READY)
    room = f"raid:{uid}"
    watcher = await join(subs, cluster["A"], room, None)
    await join(subs, cluster["B"], room, "dave")  # a member on the node that dies
    await join(subs, cluster["A"], room, "erin")
    await seen_join(watcher, room, "dave")
    await seen_join(watcher, room, "erin")

    killed = time.monotonic()
    cluster["B"].kill()  # kill -9: no goodbye; the reaper of a live node claims it
    await seen_leave(watcher, room, "dave")
    assert time.monotonic() - killed <= PRESENCE_TTL + 3.0, "the leave came later than the TTL"

    aid = await a.add(room)  # the node left carries on: events, presence, readiness
    await watcher.wait_update(aid, f"on {room} after the kill")
    ack: dict[str, Any] = await watcher.call("presence", {"feed": room})
    assert [m["user_id"] for m in ack["members"]] == ["erin"], ack
    await poll(lambda: _ready(a), "node A ready without B")
    assert not watcher.named("presence.leave", lambda d: d["user_id"] == "erin"), watcher.events


async def _ready(rest: Rest) -> bool:
    return await rest.readyz() == (200, READY)


async def test_the_channels_slot_moved_the_nodes_follow_it_with_their_presence(
    cluster: Cluster,
    redis_cluster: RedisClusterServer,
    http: aiohttp.ClientSession,
    subs: list[Sub],
    uid: str,
) -> None:
    a, b = Rest(http, cluster["A"]), Rest(http, cluster["B"])
    await wait_ready([a, b], READY)
    room = f"raid:{uid}"
    watcher = await join(subs, cluster["B"], room, None)
    await join(subs, cluster["A"], room, "hana")
    await seen_join(watcher, room, "hana")
    channel = cluster["A"].env["TIDINGS_REDIS_CHANNEL"]
    source = redis_cluster.owner(channel)
    (target,) = [node for node in redis_cluster.nodes if node is not source][:1]

    # Redis ends every subscription to the channel when its slot leaves the shard: each
    # node subscribes again on the new owner, and its sockets resync.
    await asyncio.to_thread(redis_cluster.move_slot, channel, target)
    assert redis_cluster.owner(channel) is target
    assert await watcher.wait_for("resync", what="after the slot moved") == {"reason": "redis"}
    await wait_ready([a, b], READY)
    aid = await a.add(room)
    await watcher.wait_update(aid, "across the nodes, on the slot's new shard")
    # The presence keys moved with the slot: no member was lost, none left.
    ack = await watcher.call("presence", {"feed": room})
    assert [m["user_id"] for m in ack["members"]] == ["hana"], ack
    assert not watcher.named("presence.leave"), watcher.events


async def test_the_channels_master_restarted_the_nodes_subscribe_again_and_resync(
    cluster: Cluster,
    redis_cluster: RedisClusterServer,
    http: aiohttp.ClientSession,
    subs: list[Sub],
    uid: str,
) -> None:
    """Last of the module: the cluster is whole again at its end, but the restarted master
    lost its keys."""
    a, b = Rest(http, cluster["A"]), Rest(http, cluster["B"])
    await wait_ready([a, b], READY)
    author = f"user:{uid}"
    on_b = await subscriber(subs, cluster["B"], [author])
    before = await a.add(author)
    await on_b.wait_update(before, "before the restart")
    owner = redis_cluster.owner(cluster["A"].env["TIDINGS_REDIS_CHANNEL"])

    owner.stop()
    await wait_ready([a, b], DEGRADED)
    during = await a.add(author)  # stored; B's socket gets it through its resync
    owner.start()  # on the same port, with its slots (its cluster state file), without its keys
    await asyncio.to_thread(wait_until, redis_cluster.ready, 20, what="the cluster whole")
    await wait_ready([a, b], READY)
    assert await on_b.wait_for("resync", what="after the restart") == {"reason": "redis"}
    ack = await on_b.subscribe(author, since=before)
    assert ack["ok"] is True and [x["id"] for x in ack["missed"]] == [during], ack
    after = await a.add(author)  # and live again, across the nodes
    await on_b.wait_update(after, "after the restart")
