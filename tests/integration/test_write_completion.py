"""A write that has started completes whatever happens to whoever asked for it.

Hundreds of sockets `publish` into one room and close (the server cancels a closed socket's
event tasks): half at once, half as soon as their activity is stored, while the server holds
the write between its entries and the rest (a fault point pauses it there). HTTP clients send
an add and hang up before the answer. Whatever was stored must then have reached everything the
write promises: the room's own feed (as stored and as read), its followers' feeds (a grouped
one too, counted in its groups), the room's watcher socket and the firehose, exactly: the set
of stored activities equals the set each destination got.

Real things only: one Tidings process with a webhook endpoint, the raw Engine.IO client of
harness/engineio.py for the publishers, python-socketio for the watcher, a webhook receiver.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
import pytest
from pymongo import AsyncMongoClient, MongoClient

from harness.engineio import RawSocket
from harness.pool import ServerPool
from harness.webhooks import Receiver
from tests.integration.firehose_calls import FAST, webhooks
from tests.integration.nodes import SERVER_TOKEN, Rest, Sub, poll, subscriber
from tests.support import API_KEY, ServerProcess

SOCKETS = 100  # half close at once, half once their activity is stored
HTTP_CLIENTS = 12
WAIT = 90.0  # conditions, not speed: a saturated machine took more than 30 s
# The fanout of every write to three followers, and its firehose deliveries: seconds on a quiet
# machine, much longer on a loaded one; a bound on a condition, not a sleep.
SETTLE = 120.0
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def node(pool: ServerPool, receiver: Receiver) -> ServerProcess:
    # The writes' entries pause (the fanout batches after them would too: not those past the
    # count, and more run at once).
    pause = f"entries.inserted:pause:{SOCKETS + HTTP_CLIENTS}"
    env = {**FAST, **webhooks((receiver, [])), "TIDINGS_TEST_FAULT": pause,
           "TIDINGS_FANOUT_CONCURRENCY": "16"}  # fmt: skip
    return pool.get(env)


async def publish(node: ServerProcess, room: str, index: int) -> RawSocket:
    """A socket that published activity `p<index>` (and never reads its ack)."""
    sock = await RawSocket.connected(node.port, SERVER_TOKEN)
    activity = {"actor": f"p{index}", "verb": "post", "object": f"o:{index}",
                "foreign_id": f"p{index}", "time": "2026-01-01T00:00:00"}  # fmt: skip
    sock.emit(1, "publish", {"feed": room, "activity": activity})
    return sock


async def publish_and_close(node: ServerProcess, room: str, index: int) -> None:
    await (await publish(node, room, index)).close()


async def publish_and_close_once_stored(node: ServerProcess, room: str, indexes: range) -> None:
    """Publish, then close each socket as soon as its activity is in the store."""
    sockets = await asyncio.gather(*(publish(node, room, i) for i in indexes))
    pending = {f"p{i}": sock for i, sock in zip(indexes, sockets, strict=True)}
    client: AsyncMongoClient[Doc] = AsyncMongoClient(node.env["TIDINGS_MONGODB_URL"])
    try:
        activities = client[node.database]["activities"]

        async def stored() -> bool:
            query = {"foreign_id": {"$in": list(pending)}}
            async for doc in activities.find(query, {"foreign_id": 1}):
                await pending.pop(doc["foreign_id"]).close()
            return not pending

        await poll(stored, "every publish stored", WAIT)
    finally:
        await client.close()


async def post_and_hang_up(node: ServerProcess, room: str, index: int) -> None:
    """A whole POST, then the connection closed before the answer."""
    body = json.dumps({"actor": f"h{index}", "verb": "post", "object": f"o:h{index}"}).encode()
    slug, _, user_id = room.partition(":")
    _, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(
        f"POST /api/v1.0/feed/{slug}/{user_id}/?api_key={API_KEY} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{node.port}\r\nAuthorization: {SERVER_TOKEN}\r\n"
        "stream-auth-type: jwt\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def metric(rest: Rest, pattern: str) -> float:
    """The sum of this node's samples whose line matches `pattern`."""
    async with rest.session.get(rest.url + "/metrics") as response:
        text = await response.text()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{pattern}.* (\S+)$", text, re.M))


def stored(db: Any, room: str) -> set[str]:
    return {d["_id"] for d in db["activities"].find({"owners.feed": room}, {"_id": 1})}


def held(db: Any, feed: str) -> set[str]:
    return {d["activity_id"] for d in db["feed_entries"].find({"feed": feed}, {"activity_id": 1})}


def grouped(db: Any, feed: str) -> int:
    """How many activities the groups of `feed` count."""
    return sum(d["activity_count"] for d in db["feed_groups"].find({"feed": feed}))


def live(watcher: Sub, room: str) -> set[str]:
    return {a["id"] for e in watcher.named("feed.update") if e["feed"] == room for a in e["new"]}


async def test_writes_cut_off_by_closing_sockets_and_hung_up_requests_reach_everything(
    node: ServerProcess, receiver: Receiver, http: aiohttp.ClientSession, subs: list[Sub],
    uid: str,
) -> None:  # fmt: skip
    rest = Rest(http, node)
    room = f"raid:{uid}"
    followers = [f"timeline:{uid}-0", f"timeline:{uid}-1"]
    aggregated = f"timeline_aggregated:{uid}"
    for follower in [*followers, aggregated]:
        await rest.follow(follower, room)
    watcher = await subscriber(subs, node, [room])
    posts = (
        'tidings_http_requests_total{method="POST",route="/api/v1.0/feed/{slug}/{user_id}{_slash}"'
    )
    posted = await metric(rest, re.escape(posts))

    assert await rest.read_ids(room) == []  # this node now holds the room's head
    half = SOCKETS // 2
    await asyncio.gather(
        *(publish_and_close(node, room, i) for i in range(half)),
        publish_and_close_once_stored(node, room, range(half, SOCKETS)),
        *(post_and_hang_up(node, room, i) for i in range(HTTP_CLIENTS)),
    )

    # Every publisher's socket is gone on the server (after reading its publish: the frames
    # come in order), every POST was answered, and no write is still running.
    async def closed() -> bool:
        return await metric(rest, "tidings_connected_sockets") == 1

    async def answered() -> bool:
        return await metric(rest, re.escape(posts)) == posted + HTTP_CLIENTS

    async def written() -> bool:
        return await metric(rest, "tidings_writes_in_flight") == 0

    await poll(closed, "the publishers' closes", WAIT)
    await poll(answered, "the POSTs", WAIT)
    await poll(written, "no write running", WAIT)

    with MongoClient(node.env["TIDINGS_MONGODB_URL"]) as client:
        db = client[node.database]
        added = stored(db, room)
        assert len(added) >= SOCKETS // 2 + HTTP_CLIENTS, f"only {len(added)} stored"
        newest = sorted(added, reverse=True)[:100]

        def reached() -> dict[str, set[str]]:
            places = {"room": held(db, room), "watcher socket": live(watcher, room),
                      "firehose": {a for f, a in receiver.pairs() if f == room}}  # fmt: skip
            for follower in followers:
                places[follower] = held(db, follower)
                places[f"firehose {follower}"] = {a for f, a in receiver.pairs() if f == follower}
            places[aggregated] = held(db, aggregated)
            return places

        async def complete() -> bool:  # the cheapest checks first: each asks the store
            if grouped(db, aggregated) != len(added) or await rest.read_ids(room) != newest:
                return False
            return all(got == added for got in reached().values())

        try:
            await poll(complete, "every stored activity at every destination", SETTLE, 0.5)
        except AssertionError:
            missing = {where: len(added - got) for where, got in reached().items()}
            extra = {where: len(got - added) for where, got in reached().items()}
            read = await rest.read_ids(room)
            raise AssertionError(
                f"of {len(added)} stored, missing {missing}, not stored {extra}, "
                f"{grouped(db, aggregated)} counted in the groups of {aggregated}, "
                f"{len(set(newest) - set(read))} of the newest 100 missing from a read of it"
            ) from None
