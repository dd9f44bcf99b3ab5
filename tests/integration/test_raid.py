"""Raid rooms: presence across nodes, and `publish` over the socket.

Real things only: three `python -m tidings serve` nodes on one store and one redis-server (a
private one where Redis is stopped), python-socketio clients over the fast WebSocket path and
over long-polling (python-socketio's path), and the npm socket.io-client. `presence_ttl` is 3 s
here so that a dead node's members leave quickly. "No further event" is checked with a marker:
a later join through the same nodes, after which anything doubled would have arrived.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pymongo import MongoClient

from harness.cluster import CLUSTER_ENV, ON_BOTH, PRESENCE_TTL
from tests import node_client
from tests.integration.nodes import (
    DEGRADED,
    READY,
    WAIT,
    Cluster,
    Doc,
    Rest,
    Sub,
    poll,
    sign,
    start_all,
    wait_ready,
)
from tests.support import RedisServer, ServerProcess, Store

TTL = PRESENCE_TTL
RAID_ENV = CLUSTER_ENV  # the session's cluster runs with these; so do the tests' own nodes


def member_token(feed: str, user_id: str, action: str = "*") -> str:
    """A scoped user token: the scope authorises the room, the user names the member."""
    return sign({"resource": "*", "action": action, "feed_id": feed.replace(":", ""),
                 "user_id": user_id})  # fmt: skip


class PollingSub(Sub):
    """A python-socketio client on long-polling: served by python-socketio, not the fast path."""

    async def connect(self, url: str, jwt_token: str = "") -> PollingSub:
        await self.sio.connect(url, auth={"token": jwt_token}, transports=["polling"],
                               wait_timeout=WAIT)  # fmt: skip
        return self

    async def close(self) -> None:
        """Engine.IO's close without waiting for the long poll in flight to end (it ends at
        the next ping interval, 25 s)."""
        if self.sio.connected:
            await self.sio.eio.disconnect(abort=True)


async def join(
    created: list[Sub], node: ServerProcess, feed: str, user_id: str | None,
    info: Any = None, polling: bool = False,
) -> Sub:  # fmt: skip
    """A socket on `node` subscribed to `feed`: a member as `user_id` (None: an observer with a
    read token, no member)."""
    sub: Sub = PollingSub() if polling else Sub()
    created.append(sub)
    reader = {"resource": "*", "action": "read", "feed_id": feed.replace(":", "")}
    token = member_token(feed, user_id) if user_id is not None else sign(reader)
    await sub.connect(node.url, token)
    body: Doc = {"feed": feed}
    if info is not None:
        body["presence"] = {"info": info}
    ack = await sub.call("subscribe", body)
    assert ack == {"ok": True, "feed": feed, "missed": [], "more": False}, ack
    return sub


def joins(sub: Sub, user_id: str) -> list[Doc]:
    return sub.named("presence.join", lambda d: d["user_id"] == user_id)


def leaves(sub: Sub, user_id: str) -> list[Doc]:
    return sub.named("presence.leave", lambda d: d["user_id"] == user_id)


async def seen_join(sub: Sub, feed: str, user_id: str) -> Doc:
    event = await sub.wait_for("presence.join", lambda d: d["user_id"] == user_id, user_id)
    assert event["feed"] == feed
    return dict(event)


async def seen_leave(sub: Sub, feed: str, user_id: str) -> Doc:
    event = await sub.wait_for("presence.leave", lambda d: d["user_id"] == user_id, user_id)
    assert event == {"feed": feed, "user_id": user_id}
    return dict(event)


def summary(ack: Doc) -> tuple[int, list[tuple[str, Any, int]]]:
    assert ack["ok"] is True, ack
    return ack["count"], [(m["user_id"], m["info"], m["connections"]) for m in ack["members"]]


async def lists_agree(subs_by_node: list[Sub], feed: str, expected: Any) -> None:
    """Every node answers `presence` with `expected` (count, members) once it has heard."""
    for sub in subs_by_node:

        async def answer(sub: Sub = sub) -> bool:
            return summary(await sub.call("presence", {"feed": feed, "limit": 1000})) == expected

        await poll(answer, f"presence of {feed} to be {expected}")


# --------------------------------------------------------------------------- presence


async def test_join_leave_list_and_counts_agree_on_every_node(
    cluster: Cluster,
    http: aiohttp.ClientSession,
    subs: list[Sub],
    uid: str,
) -> None:
    await wait_ready([Rest(http, cluster[n]) for n in "ABC"], READY)
    room = f"raid:{uid}"
    # Observers (no user in their tokens: not members) on every node, one on long-polling.
    watch = [await join(subs, cluster["A"], room, None),
             await join(subs, cluster["B"], room, None, polling=True),
             await join(subs, cluster["C"], room, None)]  # fmt: skip
    alice = await join(subs, cluster["A"], room, "alice", {"role": "tank"})
    await join(subs, cluster["B"], room, "bob", {"role": "healer"})
    for sub in watch:
        assert await seen_join(sub, room, "alice") == {
            "feed": room, "user_id": "alice", "info": {"role": "tank"}}  # fmt: skip
        await seen_join(sub, room, "bob")
    await lists_agree(watch, room, (2, [("alice", {"role": "tank"}, 1),
                                        ("bob", {"role": "healer"}, 1)]))  # fmt: skip

    # A second socket of alice, on another node: connections, not membership (nor info).
    alice2 = await join(subs, cluster["C"], room, "alice", {"role": "dps"})
    await lists_agree(watch, room, (2, [("alice", {"role": "tank"}, 2),
                                        ("bob", {"role": "healer"}, 1)]))  # fmt: skip
    # Oversize info is refused, and joins nothing.
    big = Sub()
    subs.append(big)
    await big.connect(cluster["B"].url, member_token(room, "mallory"))
    ack = await big.call("subscribe", {"feed": room, "presence": {"info": {"x": "y" * 2000}}})
    assert ack["ok"] is False and ack["error"]["code"] == 4, ack
    assert "presence.info" in ack["error"]["exception_fields"]
    # Paging: by user id, a cursor to the next page.
    page = await watch[1].call("presence", {"feed": room, "limit": 1})
    assert (page["count"], [m["user_id"] for m in page["members"]], page["cursor"]) == (
        2, ["alice"], "alice")  # fmt: skip
    page = await watch[1].call("presence", {"feed": room, "limit": 1, "cursor": "alice"})
    assert ([m["user_id"] for m in page["members"]], page["cursor"]) == (["bob"], None)
    bad = await watch[0].call("presence", {"feed": room, "limit": 5000})
    assert bad["ok"] is False and bad["error"]["code"] == 4

    await alice.close()  # her other socket stays: no leave; its info shows now
    await lists_agree(watch, room, (2, [("alice", {"role": "dps"}, 1),
                                        ("bob", {"role": "healer"}, 1)]))  # fmt: skip
    await alice2.call("unsubscribe", {"feed": room})  # the last one: she leaves
    for sub in watch:
        await seen_leave(sub, room, "alice")
    await lists_agree(watch, room, (1, [("bob", {"role": "healer"}, 1)]))

    # Once each: a marker joining through every node comes after anything doubled.
    for name in "ABC":
        await join(subs, cluster[name], room, f"marker{name}")
    for sub in watch:
        for name in "ABC":
            await seen_join(sub, room, f"marker{name}")
        assert len(joins(sub, "alice")) == 1 and len(leaves(sub, "alice")) == 1, sub.events
        assert len(joins(sub, "bob")) == 1 and not joins(sub, "mallory"), sub.events


async def test_membership_follows_the_sockets_token_and_only_presence_groups_have_it(
    cluster: Cluster, subs: list[Sub], uid: str
) -> None:
    room = f"raid:{uid}"
    watcher = await join(subs, cluster["A"], room, None)
    gina = await join(subs, cluster["A"], room, "gina", {"ready": True})
    await seen_join(watcher, room, "gina")
    # A refreshed token that no longer allows reading the room: she leaves it.
    ack = await gina.call("token.refresh", {"token": member_token(f"raid:{uid}x", "gina")})
    assert ack["ok"] is True and ack["dropped"] == [room], ack
    await seen_leave(watcher, room, "gina")

    server = Sub()
    subs.append(server)
    await server.connect(cluster["A"].url, sign({"resource": "*", "action": "*", "feed_id": "*"}))
    no_presence = await server.call("presence", {"feed": f"timeline:{uid}"})
    assert no_presence["ok"] is False and no_presence["error"]["code"] == 6, no_presence
    # `presence` on a subscribe of a group without it is ignored, even an oversize info.
    ack = await server.call("subscribe", {"feed": f"timeline:{uid}",
                                          "presence": {"info": {"x": "y" * 5000}}})  # fmt: skip
    assert ack["ok"] is True, ack
    assert summary(await server.call("presence", {"feed": room})) == (0, [])


@pytest.mark.parametrize("cluster", ON_BOTH, indirect=True)
async def test_members_of_a_killed_node_leave_within_the_ttl_once_and_of_a_stopped_one_at_once(
    cluster: Cluster,
    http: aiohttp.ClientSession,
    subs: list[Sub],
    uid: str,
) -> None:
    await wait_ready([Rest(http, cluster[n]) for n in "ABC"], READY)
    room = f"raid:{uid}"
    watch = [await join(subs, cluster["A"], room, None),
             await join(subs, cluster["B"], room, None, polling=True)]  # fmt: skip
    await join(subs, cluster["C"], room, "dave")
    await join(subs, cluster["C"], room, "dave")  # two sockets of his on the node that dies
    await join(subs, cluster["C"], room, "erin")
    await join(subs, cluster["A"], room, "erin")  # ... and erin has one elsewhere too
    await join(subs, cluster["B"], room, "frank")
    for sub in watch:
        for user in ("dave", "erin", "frank"):
            await seen_join(sub, room, user)

    killed = time.monotonic()
    cluster["C"].kill()  # kill -9: no goodbye of any kind
    for sub in watch:
        await seen_leave(sub, room, "dave")
    assert time.monotonic() - killed <= TTL + 3.0, "the leaves came later than the TTL allows"
    await lists_agree(watch, room, (2, [("erin", None, 1), ("frank", None, 1)]))

    # A clean stop: its members leave at once, well before its entries would expire.
    stopping = time.monotonic()
    assert cluster["B"].process is not None
    cluster["B"].process.terminate()
    await seen_leave(watch[0], room, "frank")
    assert time.monotonic() - stopping < TTL, "a clean stop waited for the TTL"
    await asyncio.to_thread(cluster["B"].stop)

    await join(subs, cluster["A"], room, "marker")
    await seen_join(watch[0], room, "marker")
    assert len(leaves(watch[0], "dave")) == 1 and not leaves(watch[0], "erin"), watch[0].events
    assert len(leaves(watch[1], "dave")) == 1, watch[1].events
    summary_a = summary(await watch[0].call("presence", {"feed": room}))
    assert summary_a == (2, [("erin", None, 1), ("marker", None, 1)])


async def test_a_node_stalled_past_the_ttl_is_claimed_then_comes_back_by_itself(
    cluster: Cluster, http: aiohttp.ClientSession, subs: list[Sub], uid: str
) -> None:
    await wait_ready([Rest(http, cluster[n]) for n in "ABC"], READY)
    room = f"raid:{uid}"
    watch_a = await join(subs, cluster["A"], room, None)
    watch_c = await join(subs, cluster["C"], room, None)
    await join(subs, cluster["C"], room, "hank", {"hp": 3})
    await seen_join(watch_a, room, "hank")
    stalled = cluster["C"].process
    assert stalled is not None
    stalled.send_signal(signal.SIGSTOP)  # a node that hangs: alive, but refreshes nothing
    try:
        await seen_leave(watch_a, room, "hank")
    finally:
        stalled.send_signal(signal.SIGCONT)
    # It hears that it was claimed, registers and republishes: hank is back, on every node.
    await watch_a.until(lambda: len(joins(watch_a, "hank")) == 2, "hank's second join")
    await lists_agree([watch_a, watch_c], room, (1, [("hank", {"hp": 3}, 1)]))


@pytest.fixture
async def pair(
    store: Store,
    mongo: MongoClient[Doc],
    tmp_path: Path,
) -> AsyncIterator[tuple[RedisServer, list[ServerProcess]]]:
    redis = RedisServer(tmp_path).start()
    database = f"t_raid_outage_{uuid.uuid4().hex[:8]}"
    nodes = [ServerProcess(store.url, database=database, redis_url=redis.url, env=RAID_ENV,
                           log_path=tmp_path / f"{name}.log") for name in "AB"]  # fmt: skip
    try:
        await asyncio.to_thread(start_all, nodes)
        yield redis, nodes
    finally:
        for node in nodes:
            node.kill()
        redis.stop()
        mongo.drop_database(database)


async def test_presence_stays_local_while_redis_is_down_and_agrees_after_recovery(
    pair: tuple[RedisServer, list[ServerProcess]],
    http: aiohttp.ClientSession,
    subs: list[Sub],
    uid: str,
) -> None:
    redis, (node_a, node_b) = pair
    a, b = Rest(http, node_a), Rest(http, node_b)
    await wait_ready([a, b], READY)
    room = f"raid:{uid}"
    watch_a, watch_b = await join(subs, node_a, room, None), await join(subs, node_b, room, None)
    await join(subs, node_a, room, "alice")
    await join(subs, node_b, room, "bob")
    await lists_agree([watch_a, watch_b], room, (2, [("alice", None, 1), ("bob", None, 1)]))

    redis.stop()
    await wait_ready([a, b], DEGRADED)  # {"redis": "down", "presence": "local"}
    await join(subs, node_a, room, "carol", {"ready": True})  # local presence keeps working
    await seen_join(watch_a, room, "carol")
    # After a TTL without Redis, each node's presence is its own members.
    await lists_agree([watch_a], room, (2, [("alice", None, 1), ("carol", {"ready": True}, 1)]))
    await lists_agree([watch_b], room, (1, [("bob", None, 1)]))

    redis.start()  # on the same port, empty
    await wait_ready([a, b], READY)
    everyone = (3, [("alice", None, 1), ("bob", None, 1), ("carol", {"ready": True}, 1)])
    await lists_agree([watch_a, watch_b], room, everyone)
    await seen_join(watch_b, room, "carol")


# --------------------------------------------------------------------------- publish


async def test_publish_is_acked_once_stored_delivered_everywhere_and_refused_whole(
    cluster: Cluster,
    http: aiohttp.ClientSession,
    subs: list[Sub],
    uid: str,
) -> None:
    rests = [Rest(http, cluster[n]) for n in "ABC"]
    await wait_ready(rests, READY)
    room = f"raid:{uid}"
    listeners = [await join(subs, cluster["B"], room, None),
                 await join(subs, cluster["C"], room, None, polling=True)]  # fmt: skip
    leader = await join(subs, cluster["A"], room, "leader")
    activity = {"actor": "leader", "verb": "call", "object": "pull:5",
                "foreign_id": f"call:{uid}", "time": "2026-01-01T10:00:00"}  # fmt: skip
    ack = await leader.call("publish", {"feed": room, "activity": activity})
    assert ack["ok"] is True, ack
    published = ack["activity"]
    assert published["object"] == "pull:5" and published["origin"] is None
    # Stored before the ack: read right after it, through another node.
    assert await rests[1].read_ids(room) == [published["id"]]
    for sub in [leader, *listeners]:
        event = await sub.wait_update(published["id"])
        assert event["feed"] == room
    # Same foreign_id + time: the same activity (idempotent retries, as REST).
    again = await leader.call("publish", {"feed": room, "activity": activity})
    assert again["ok"] is True and again["activity"]["id"] == published["id"]

    # Refused whole, nothing stored: a bad activity, a feed the token may not write.
    bad = await leader.call("publish", {"feed": room, "activity": {"actor": "x", "object": "y"}})
    assert bad["ok"] is False and bad["error"]["exception"] == "InputException", bad
    other = await leader.call("publish", {"feed": f"raid:{uid}x", "activity": {**activity,
                                          "foreign_id": "elsewhere"}})  # fmt: skip
    assert other["ok"] is False and other["error"]["code"] == 17, other
    reader = Sub()
    subs.append(reader)
    await reader.connect(cluster["C"].url, member_token(room, "reader", action="read"))
    refused = await reader.call("publish", {"feed": room, "activity": {**activity,
                                            "foreign_id": "by-reader"}})  # fmt: skip
    assert refused["ok"] is False and refused["error"]["code"] == 17, refused
    assert await rests[2].read_ids(room) == [published["id"]]
    assert await rests[0].read_ids(f"raid:{uid}x") == []

    # Per socket at most publish_burst (10) at once, then publish_rate (1/s): refused, not queued.
    flood = await join(subs, cluster["B"], room, "flooder")
    answers = await asyncio.gather(*(
        flood.call("publish", {"feed": room, "activity": {"actor": "f", "verb": "spam",
                                                          "object": f"o{i}"}})
        for i in range(15)
    ))  # fmt: skip
    limited = [x for x in answers if x["ok"] is False]
    assert 3 <= len(limited) <= 5, answers
    assert all(x["error"]["code"] == 9 and x["error"]["exception"] == "RateLimitReached"
               for x in limited)  # fmt: skip
    stored = await rests[0].read_ids(room)
    assert len(stored) == 1 + 15 - len(limited)


async def test_the_npm_client_joins_a_raid_room_sees_presence_and_publishes(
    cluster: Cluster,
    http: aiohttp.ClientSession,
    subs: list[Sub],
    uid: str,
) -> None:
    await wait_ready([Rest(http, cluster[n]) for n in "ABC"], READY)
    room = f"raid:{uid}"
    node = node_client.NodeDriver(cluster["A"].url, member_token(room, "nodeuser"))
    try:
        await node.expect(lambda x: x["type"] == "connected", "connect")
        [ack] = await node.call("subscribe", {"feed": room, "presence": {"info": {"lvl": 60}}})
        assert ack == {"ok": True, "feed": room, "missed": [], "more": False}
        py = await join(subs, cluster["B"], room, "pyuser")
        event = await node.expect(
            lambda x: x["type"] == "event" and x["name"] == "presence.join"
            and x["args"][0]["user_id"] == "pyuser", "presence.join of pyuser",
        )  # fmt: skip
        assert event["args"][0] == {"feed": room, "user_id": "pyuser", "info": None}

        async def both() -> Any:
            [answer] = await node.call("presence", {"feed": room})
            return summary(answer) == (2, [("nodeuser", {"lvl": 60}, 1), ("pyuser", None, 1)])

        await poll(both, "both members in the npm client's presence")
        activity = {"actor": "nodeuser", "verb": "ready", "object": "raid"}
        [published] = await node.call("publish", {"feed": room, "activity": activity})
        assert published["ok"] is True, published
        await py.wait_update(published["activity"]["id"], "published by the npm client")
        await py.close()
        await node.expect(
            lambda x: x["type"] == "event" and x["name"] == "presence.leave"
            and x["args"][0]["user_id"] == "pyuser", "presence.leave of pyuser",
        )  # fmt: skip
    finally:
        node.close()
