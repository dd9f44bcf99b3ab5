"""Many nodes: N stateless Tidings nodes against one store and one Redis.

Real things only: several `python -m tidings serve` processes sharing one database, real
redis-server processes (a private one wherever a test stops Redis), python-socketio clients, the
npm socket.io-client (tests/js/subscriber.mjs) and a raw WebSocket speaking Engine.IO/Socket.IO
v5 by hand for a client that stops reading. "No further event" is never checked by sleeping: a
marker activity is posted afterwards on the same path, and once it arrives everything sent
before it has arrived too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import websocket
from pymongo import MongoClient

from harness.cluster import ON_BOTH
from tests.integration.nodes import (
    DEGRADED,
    READY,
    SERVER_CLAIMS,
    SERVER_TOKEN,
    WAIT,
    Cluster,
    Doc,
    NodeSubscriber,
    Rest,
    Sub,
    add_followers,
    entry_count,
    poll,
    sign,
    start_all,
    subscriber,
    vm_rss_kb,
    wait_ready,
)
from tests.support import API_KEY, RedisServer, ServerProcess, Store
from tidings_client import Tidings

# --------------------------------------------------------------------------- 1. three nodes


@pytest.mark.parametrize("cluster", ON_BOTH, indirect=True)
async def test_activity_inserted_on_one_node_reaches_subscribers_on_the_others_once(
    cluster: Cluster,
    http: aiohttp.ClientSession,
    subs: list[Sub],
    node_subs: list[NodeSubscriber],
    uid: str,
) -> None:
    a, b, c = (Rest(http, cluster[n]) for n in "ABC")
    await wait_ready([a, b, c], READY)

    author = f"user:{uid}"
    on_a, on_c, on_c_node = f"timeline:{uid}a", f"timeline:{uid}c", f"timeline:{uid}n"
    for follower in (on_a, on_c, on_c_node):
        await c.follow(follower, author)  # follows written through a third node

    sub_a = await subscriber(subs, cluster["A"], [on_a])
    sub_author = await subscriber(subs, cluster["A"], [author])
    sub_c = await subscriber(subs, cluster["C"], [on_c])
    node_c = NodeSubscriber(cluster["C"].url, [on_c_node])
    node_subs.append(node_c)
    ack = await node_c.subscribed(on_c_node)
    assert ack == {"ok": True, "feed": on_c_node, "missed": [], "more": False}

    aid = await b.add(author, extra={"n": 1})
    for sub, feed in ((sub_a, on_a), (sub_c, on_c)):
        event = await sub.wait_update(aid, f"on {feed}")
        # `feed` names the feed the socket subscribed to; `origin` where it came from
        assert event["feed"] == feed and event["new"][0]["origin"] == author
    event = await sub_author.wait_update(aid, f"on {author}")
    assert event["feed"] == author and event["new"][0]["origin"] is None
    node_event = await node_c.update(aid)
    assert node_event["feed"] == on_c_node and node_event["new"][0]["origin"] == author
    for rest, feed in ((a, on_a), (c, on_c), (b, on_c_node)):
        assert aid in await rest.read_ids(feed)

    # Exactly once: a marker through the same node and path arrives after anything doubled.
    marker = await b.add(author)
    for sub in (sub_a, sub_c, sub_author):
        await sub.wait_update(marker, "(marker)")
        assert len(sub.updates_of(aid)) == 1, sub.events
    await node_c.update(marker)
    assert len(node_c.updates_of(aid)) == 1, node_c.lines


# --------------------------------------------------------------------------- 2. kill -9


FOLLOWERS = 3_000  # 30 batches of 100 (CLUSTER_ENV): long enough to interrupt partway
WATCHED = 30


async def test_fanout_of_a_killed_node_is_finished_by_another_and_reaches_every_subscriber(
    cluster: Cluster,
    store: Store,
    mongo: MongoClient[Doc],
    http: aiohttp.ClientSession,
    subs: list[Sub],
    uid: str,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        await _killed_node_fanout(cluster, store, mongo, http, subs, uid, stack)


def _now(check: Any) -> Any:
    async def wrapped() -> Any:
        return check()

    return wrapped


async def _killed_node_fanout(
    cluster: Cluster,
    store: Store,
    mongo: MongoClient[Doc],
    http: aiohttp.ClientSession,
    subs: list[Sub],
    uid: str,
    stack: contextlib.AsyncExitStack,
) -> None:
    a, b, c = (Rest(http, cluster[n]) for n in "ABC")
    db = mongo[cluster.database]
    celeb = f"user:{uid}"
    feeds = [f"timeline:{uid}f{n}" for n in range(FOLLOWERS)]
    await add_followers(store, db, celeb, feeds)
    # Early, middle and late followers: positions spread over the whole follower list.
    positions = sorted({round(i * (FOLLOWERS - 1) / (WATCHED - 1)) for i in range(WATCHED)})
    watched = [feeds[p] for p in positions]
    assert len(watched) == WATCHED

    nodes = [cluster["A"], cluster["C"]]
    watchers = await asyncio.gather(
        *(subscriber(subs, nodes[i % 2], [feed]) for i, feed in enumerate(watched))
    )
    # The last activity each subscriber saw before the big one: its `since`.
    seen = await b.add(f"raid:{uid}", to=watched)
    await asyncio.gather(*(sub.wait_update(seen, "(seed)") for sub in watchers))
    # The Python SDK on every third watched feed, on node A: what it hands to the app.
    sdk = await stack.enter_async_context(Tidings(cluster["A"].url, API_KEY, token=SERVER_TOKEN))
    handed: dict[str, list[str]] = {feed: [] for feed in watched[::3]}
    for feed, got in handed.items():
        await sdk.feed(feed).subscribe(lambda activity, got=got: got.append(activity["id"]))

    aid = await b.add(celeb, actor=uid, verb="announce", object="concert:1")

    def partway() -> bool:
        count = entry_count(db, aid)
        assert count < FOLLOWERS - 500, f"the fanout went too far ({count}) to interrupt"
        return count > 300

    await poll(lambda: asyncio.to_thread(partway), "the fanout to be partway", 60)
    cluster["B"].kill()
    at_crash = entry_count(db, aid) - 1  # less the origin feed's entry
    assert 0 < at_crash < FOLLOWERS, "the fanout was not interrupted"

    def jobs_left() -> int:
        return db["fanout_jobs"].count_documents({"activity_id": aid})

    await poll(lambda: asyncio.to_thread(lambda: jobs_left() == 0), "the takeover to finish", 60)
    takeovers = {name: await Rest(http, cluster[name]).metric("tidings_fanout_takeovers_total")
                 for name in "AC"}  # fmt: skip
    assert sum(takeovers.values()) >= 1, takeovers

    # Every follower feed holds the activity exactly once.
    pipeline: list[Doc] = [
        {"$match": {"activity_id": aid, "feed": {"$regex": "^" + re.escape(f"timeline:{uid}f")}}},
        {"$group": {"_id": "$feed", "n": {"$sum": 1}}},
    ]
    rows = {row["_id"]: row["n"] for row in db["feed_entries"].aggregate(pipeline)}
    assert set(rows) == set(feeds), f"{len(set(feeds) - set(rows))} follower feeds lack it"
    assert set(rows.values()) == {1}, "some follower feed holds the activity twice"

    # A marker through each surviving node (the taker's path included) arrives after
    # everything the fanout emitted: then the live events are all in.
    markers = [await rest.add(f"raid:{uid}", to=watched) for rest in (a, c)]
    await asyncio.gather(*(sub.wait_update(m, "(marker)") for sub in watchers for m in markers))

    for sub, feed in zip(watchers, watched, strict=True):
        # At least once, and at most once more per takeover: a taker emits again the batches
        # past the cursor (README "Receive it live"); none is lost (emitted once stored).
        live = len(sub.updates_of(aid))
        assert 1 <= live <= 1 + sum(takeovers.values()), (feed, live, takeovers)
        ack = await sub.subscribe(feed, since=seen)
        assert ack["ok"] is True and ack["more"] is False, ack
        missed = [x["id"] for x in ack["missed"]]
        assert missed.count(aid) == 1, (feed, missed)
    # The SDK hands the activity over once, whatever came twice: the markers came after it.
    await poll(
        _now(lambda: all(set(markers) <= set(got) for got in handed.values())),
        "the markers through the SDK",
    )
    for feed, got in handed.items():
        assert got.count(aid) == 1 and got.index(aid) < got.index(markers[0]), (feed, got)


# --------------------------------------------------------------------------- 3. Redis outage


def log_lines(node: ServerProcess, text: str) -> list[str]:
    assert node.log_path is not None
    return [line for line in node.log_path.read_text().splitlines() if text in line]


@dataclass
class Pair:
    """Nodes A and B on a private redis-server, with S_A on A and S_B on B subscribed to
    follower feeds of `author`, and one activity both got before any outage."""

    redis: RedisServer
    nodes: list[ServerProcess]
    a: Rest
    b: Rest
    author: str
    feed_b: str
    s_a: Sub
    s_b: Sub
    before: str


@pytest.fixture
async def pair(
    store: Store,
    mongo: MongoClient[Doc],
    http: aiohttp.ClientSession,
    subs: list[Sub],
    tmp_path: Path,
    uid: str,
) -> AsyncIterator[Pair]:
    redis = RedisServer(tmp_path).start()
    database = f"t_outage_{uuid.uuid4().hex[:8]}"
    nodes = [
        ServerProcess(store.url, database=database, redis_url=redis.url,
                      log_path=tmp_path / f"{name}.log")
        for name in "AB"
    ]  # fmt: skip
    try:
        await asyncio.to_thread(start_all, nodes)
        a, b = Rest(http, nodes[0]), Rest(http, nodes[1])
        await wait_ready([a, b], READY)
        author, feed_a, feed_b = f"user:{uid}", f"timeline:{uid}a", f"timeline:{uid}b"
        await a.follow(feed_a, author)
        await b.follow(feed_b, author)
        s_a = await subscriber(subs, nodes[0], [feed_a])
        s_b = await subscriber(subs, nodes[1], [feed_b])
        before = await a.add(author)
        await s_a.wait_update(before, "before the outage")
        await s_b.wait_update(before, "before the outage, across nodes")
        yield Pair(redis, nodes, a, b, author, feed_b, s_a, s_b, before)
    finally:
        for node in nodes:
            node.kill()
        redis.stop()
        mongo.drop_database(database)


async def test_redis_outage_keeps_local_delivery_and_recovers_through_resync(
    pair: Pair, uid: str
) -> None:
    a, b, s_a, s_b = pair.a, pair.b, pair.s_a, pair.s_b
    pair.redis.stop()
    await wait_ready([a, b], DEGRADED)

    during = []
    for n in range(3):
        aid = await a.add(pair.author, extra={"n": n})
        during.append(aid)
        await s_a.wait_update(aid, "during the outage, on the node that took it")
    # REST keeps working on both nodes: writes through B, reads through both.
    written_on_b = await b.add(f"raid:{uid}")
    for rest in (a, b):
        assert await rest.read_ids(f"raid:{uid}") == [written_on_b]
        assert (await rest.read_ids(pair.feed_b))[:4] == [*reversed(during), pair.before]
        assert (await rest.read_ids(pair.author))[:4] == [*reversed(during), pair.before]
    assert await a.readyz() == (200, DEGRADED)

    pair.redis.start()  # on the same port
    await wait_ready([a, b], READY)
    for sub in (s_a, s_b):
        assert await sub.wait_for("resync", what="after Redis came back") == {"reason": "redis"}

    last_seen = [e["new"][0]["id"] for e in s_b.named("feed.update")][-1]
    assert last_seen == pair.before, "S_B got an activity published on A while Redis was down"
    ack = await s_b.subscribe(pair.feed_b, since=last_seen)
    assert ack["ok"] is True and ack["more"] is False, ack
    assert [x["id"] for x in ack["missed"]] == during
    assert all(x["origin"] == pair.author for x in ack["missed"])
    # One line when Redis went away and one when it came back, not one per emit.
    for node in pair.nodes:
        assert len(log_lines(node, "is unreachable")) == 1, log_lines(node, "Redis")
        assert len(log_lines(node, "is reachable again")) == 1, log_lines(node, "Redis")


async def test_cross_node_delivery_resumes_after_a_redis_outage(pair: Pair) -> None:
    a, b, s_a, s_b = pair.a, pair.b, pair.s_a, pair.s_b
    pair.redis.stop()
    await wait_ready([a, b], DEGRADED)
    during = await a.add(pair.author)
    await s_a.wait_update(during, "during the outage")
    pair.redis.start()
    await wait_ready([a, b], READY)
    await s_b.wait_for("resync", what="after Redis came back")

    # Without restarting any node: the next activity posted on A reaches S_B on B live...
    after = await a.add(pair.author)
    await s_a.wait_update(after, "after the outage")
    try:
        # S_A has it: the emit that also covers S_B's room was published (or not) already.
        await s_b.until(lambda: s_b.updates_of(after), "feed.update across nodes", 5)
        assert len(s_b.updates_of(after)) == 1
    finally:
        # ...and the node still says Redis is fine, having logged the outage once.
        assert await a.readyz() == (200, READY)
        assert len(log_lines(pair.nodes[0], "is unreachable")) == 1, log_lines(
            pair.nodes[0], "Redis"
        )


# --------------------------------------------------------------------------- 4 and 5: one node


@pytest.fixture(scope="module")
def edge_node(store: Store, mongo: MongoClient[Doc], workdir: Path) -> Iterator[ServerProcess]:
    """A single node (no Redis) with a small outgoing-queue bound and a short token grace."""
    env = {
        "TIDINGS_REALTIME_MAX_QUEUE_PACKETS": "50",
        "TIDINGS_REALTIME_TOKEN_GRACE_SECONDS": "2",
    }
    node = ServerProcess(store.url, env=env, log_path=workdir / "many-nodes-edge.log").start()
    yield node
    node.kill()
    mongo.drop_database(node.database)


# --------------------------------------------------------------------------- 4. slow consumer


class RawSocketIO:
    """Socket.IO v5 over a raw WebSocket, spoken by hand, on a socket with a tiny receive
    buffer: a client that can be made to stop reading."""

    def __init__(self, node: ServerProcess, jwt_token: str) -> None:
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{node.port}/socket.io/?EIO=4&transport=websocket",
            timeout=WAIT,
            sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)],
        )
        opened = self.ws.recv()
        assert isinstance(opened, str) and opened.startswith("0{"), opened
        self.ws.send("40" + json.dumps({"token": jwt_token}))
        connected = self.ws.recv()
        assert connected.startswith("40{") and "sid" in json.loads(connected[2:]), connected

    def subscribe(self, feed: str) -> Doc:
        self.ws.send("420" + json.dumps(["subscribe", {"feed": feed}]))
        while True:
            packet = self.ws.recv()
            if packet == "2":  # an Engine.IO ping
                self.ws.send("3")
                continue
            assert packet.startswith("430["), packet
            [ack] = json.loads(packet[3:])
            return dict(ack)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self.ws.sock.close()


async def test_slow_consumer_is_dropped_and_memory_stays_bounded(
    edge_node: ServerProcess, http: aiohttp.ClientSession, subs: list[Sub], uid: str
) -> None:
    rest = Rest(http, edge_node)
    assert edge_node.process is not None
    pid = edge_node.process.pid
    # A node without Redis is ready, and says so.
    assert await rest.readyz() == (200, {"status": "ok", "store": "ok", "redis": "off",
                                       "presence": "local", "limits": "local"})  # fmt: skip
    author, follower = f"user:{uid}", f"timeline:{uid}"
    await rest.follow(follower, author)
    sockets_before = await rest.metric("tidings_connected_sockets")
    drops_before = await rest.metric("tidings_slow_consumer_disconnects_total")

    reader = await subscriber(subs, edge_node, [follower])
    slow = await asyncio.to_thread(RawSocketIO, edge_node, SERVER_TOKEN)
    try:
        # Two packets per activity for the slow client: the direct one and the followed one.
        for feed in (author, follower):
            ack = await asyncio.to_thread(slow.subscribe, feed)
            assert ack == {"ok": True, "feed": feed, "missed": [], "more": False}
        assert await rest.metric("tidings_connected_sockets") == sockets_before + 2
        # From here on the raw client never reads its socket again.

        rss_start = rss_peak = vm_rss_kb(pid)
        sampling = True

        async def sample() -> None:
            nonlocal rss_peak
            while sampling:
                rss_peak = max(rss_peak, vm_rss_kb(pid))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        payload = "x" * 9_000  # an activity holds at most 10 KB
        posted: list[str] = []
        gate = asyncio.Semaphore(4)

        async def post(n: int) -> None:
            async with gate:
                posted.append(await rest.add(author, body=payload, n=n))

        async def dropped() -> bool:
            drops = await rest.metric("tidings_slow_consumer_disconnects_total")
            return drops >= drops_before + 1

        # The server's kernel send buffer (tcp_wmem, up to 4 MB here) takes the first
        # megabytes; the Engine.IO queue grows past the bound only after that.
        while len(posted) < MAX_SLOW_POSTS and not await dropped():
            await asyncio.gather(*(post(len(posted) + n) for n in range(50)))
        await poll(dropped, "the slow consumer to be dropped")
        await poll(
            lambda: _equals(rest.metric("tidings_connected_sockets"), sockets_before + 1),
            "the socket count to go back down",
        )
        # The reader of the same feed on the same node got every activity, and stays.
        await reader.until(
            lambda: all(reader.updates_of(aid) for aid in posted), "every activity", 30
        )
        assert reader.sio.connected
        sampling = False
        await sampler
    finally:
        slow.close()
    grown_mb = (rss_peak - rss_start) / 1024
    print(
        f"\nslow consumer dropped after {len(posted)} activities of 9 KB; "
        f"RSS {rss_start / 1024:.0f} MB at start, peak +{grown_mb:.1f} MB"
    )
    assert grown_mb < 200

    # It recovers through `since`: all of it is in the feed, paged (max_missed at a time).
    again = await subscriber(subs, edge_node, [])
    ack = await again.subscribe(follower, since=min(posted))
    assert ack["ok"] is True and ack["more"] is True and len(ack["missed"]) == 100, ack["more"]
    assert [x["id"] for x in ack["missed"]] == sorted(posted)[1:101]


MAX_SLOW_POSTS = 1_200


async def _equals(value: Any, expected: float) -> bool:
    return bool(await value == expected)


# --------------------------------------------------------------------------- 5. token expiry


def not_signed(ack: Doc) -> bool:
    return (
        ack.get("ok") is False
        and ack["error"]["code"] == 3
        and ack["error"]["exception"] == "SignatureException"
    )


async def test_expired_token_is_warned_then_dropped_unless_refreshed(
    edge_node: ServerProcess, http: aiohttp.ClientSession, subs: list[Sub], uid: str
) -> None:
    rest = Rest(http, edge_node)
    feed = f"timeline:{uid}"
    expiries_before = await rest.metric("tidings_token_expiry_disconnects_total")
    exp = int(time.time()) + 3  # 2 to 3 s ahead (`exp` is whole seconds)
    refresher = await subscriber(subs, edge_node, [feed], sign({**SERVER_CLAIMS, "exp": exp}))
    # Connected after the refresher and expiring a second later: once it is dropped, the
    # refresher's original deadline has passed too.
    expiring = await subscriber(subs, edge_node, [feed], sign({**SERVER_CLAIMS, "exp": exp + 1}))

    assert await refresher.wait_for("token.expired") == {"grace": 2}
    assert refresher.sio.connected
    fresh_exp = int(time.time()) + 60
    ack = await refresher.call(
        "token.refresh", {"token": sign({**SERVER_CLAIMS, "exp": fresh_exp})}
    )
    assert ack == {"ok": True, "expires_at": fresh_exp, "dropped": []}, ack

    assert await expiring.wait_for("token.expired") == {"grace": 2}
    warned = time.monotonic()
    # In its grace period the socket is still there, but its grant is expired.
    assert not_signed(await expiring.subscribe(f"user:{uid}"))
    await expiring.until(lambda: expiring.disconnected, "disconnect after the grace period")
    dropped_after = time.monotonic() - warned
    assert not expiring.sio.connected
    assert await rest.metric("tidings_token_expiry_disconnects_total") >= expiries_before + 1

    # The refreshed socket is still connected, still gets events and may still subscribe.
    aid = await rest.add(feed)
    await refresher.wait_update(aid, "after the grace period")
    assert refresher.sio.connected
    assert (await refresher.subscribe(f"user:{uid}"))["ok"] is True
    print(f"\ntoken expiry: dropped {dropped_after:.1f}s after token.expired (grace 2 s)")


async def test_refresh_with_a_narrower_token_drops_feeds_it_may_not_read(
    edge_node: ServerProcess, http: aiohttp.ClientSession, subs: list[Sub], uid: str
) -> None:
    rest = Rest(http, edge_node)
    timeline, user = f"timeline:{uid}", f"user:{uid}"
    sub = await subscriber(subs, edge_node, [timeline, user])
    narrower = sign({"resource": "feed", "action": "read", "feed_id": f"timeline{uid}"})
    ack = await sub.call("token.refresh", {"token": narrower})
    assert ack == {"ok": True, "expires_at": None, "dropped": [user]}, ack

    refused = await rest.add(user)
    marker = await rest.add(timeline)
    await sub.wait_update(marker, "(marker)")
    assert not sub.updates_of(refused), sub.events
    assert not sub.named("feed.update", lambda e: e["feed"] == user), sub.events
    # The new grant is the socket's grant: subscribing to that feed again is refused.
    refusal = await sub.subscribe(user)
    assert refusal["ok"] is False and refusal["error"]["code"] == 17, refusal


@pytest.mark.parametrize(
    "bad",
    [
        "not-a-jwt",
        jwt.encode(SERVER_CLAIMS, "another-secret-0123456789abcdef-01234", "HS256"),
        sign({**SERVER_CLAIMS, "exp": int(time.time()) - 60}),
        None,
    ],
    ids=["garbage", "other_secret", "expired", "missing"],
)
async def test_refresh_with_a_bad_token_is_refused_and_changes_nothing(
    bad: str | None, edge_node: ServerProcess, http: aiohttp.ClientSession, subs: list[Sub],
    uid: str,
) -> None:  # fmt: skip
    rest = Rest(http, edge_node)
    feed = f"timeline:{uid}"
    sub = await subscriber(subs, edge_node, [feed])
    ack = await sub.call("token.refresh", {"token": bad})
    assert not_signed(ack), ack
    aid = await rest.add(feed)
    await sub.wait_update(aid, "after the refused refresh")
    assert (await sub.subscribe(f"user:{uid}"))["ok"] is True
