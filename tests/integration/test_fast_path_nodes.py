"""The fast path across nodes: the broadcaster's own messages on the Redis channel.

Each node delivers an event to its own sockets (fast-path and python-socketio ones) directly and
publishes it once; every other node delivers it to its sockets. Pull rooms (hybrid fanout): a
follow change on any node moves the sockets subscribed to the follower feed on every node in or
out of the pull feed's room, and a pull update reaches each of them once.

The first test runs real server processes. The pull-room tests run two nodes as aiohttp apps
(`create_app`, the same composition as `tidings serve`) inside the test process, on the real
store and a real redis-server, with real python-socketio clients: that is how they call
`Broadcaster.follows_changed` and `pull_update` directly, the port the fanout uses. The last
test drives the same through REST follows, once the store's pull feeds exist.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from harness.cluster import start_all
from tests.integration.fast_path_clients import (
    PyClient,
    RawClient,
    Rest,
    new_ids,
    poll,
    py_client,
    raw_client,
)
from tests.support import API_KEY, API_SECRET, RedisServer, ServerProcess, Store, free_port
from tidings.api.keys import BROADCASTER, DATABASE, NODE_ID, SERVICE
from tidings.app.factory import create_app
from tidings.config import load_settings
from tidings.domain.events import feed_update
from tidings.domain.feeds import parse_feed_id

# --------------------------------------------------------------------------- 1. processes


@pytest.fixture(scope="module")
def two_nodes(
    store: Store, redis_server: RedisServer, workdir: Path
) -> Iterator[list[ServerProcess]]:
    database = f"t_fastnodes_{uuid.uuid4().hex[:8]}"
    env = {"TIDINGS_REDIS_CHANNEL": f"fast-{uuid.uuid4().hex[:8]}",
           "TIDINGS_REALTIME_PING_INTERVAL": "1", "TIDINGS_REALTIME_PING_TIMEOUT": "2"}  # fmt: skip
    nodes = [
        ServerProcess(store.url, database=database, redis_url=redis_server.url, env=env,
                      log_path=workdir / f"fast-nodes-{n}.log")
        for n in "AB"
    ]  # fmt: skip
    start_all(nodes)
    yield nodes
    for node in nodes:
        node.kill()


@pytest.fixture
async def clients() -> AsyncIterator[list[Any]]:
    created: list[Any] = []
    yield created
    await asyncio.gather(*(c.close() for c in created), return_exceptions=True)


async def test_every_socket_on_every_node_gets_each_event_once(
    two_nodes: list[ServerProcess], clients: list[Any], uid: str
) -> None:
    feed = f"user:{uid}"
    subs: list[PyClient | RawClient] = []
    for node in two_nodes:
        subs.append(await py_client(clients, node.url, ["websocket"], [feed]))
        subs.append(await py_client(clients, node.url, ["polling"], [feed]))
        subs.append(await raw_client(clients, node.port, [feed]))
    async with aiohttp.ClientSession() as session:
        a, b = (Rest(session, node.url) for node in two_nodes)
        for rest in (a, b):  # both nodes must be subscribed to the channel
            await poll(lambda rest=rest: _ready(rest), f"{rest.url} to be ready")
        posted = [await a.add(feed), await b.add(feed), await a.add(feed)]
        marker = await b.add(feed)

    def got(sub: PyClient | RawClient) -> list[str]:
        return new_ids(sub.updates() if isinstance(sub, PyClient) else sub.events)

    for sub in subs:
        if isinstance(sub, RawClient):
            await sub.read_until(marker)
        else:
            await sub.until_update(marker)
    for sub in subs:
        assert sorted(got(sub)) == sorted([*posted, marker]), got(sub)  # once each


async def _ready(rest: Rest) -> bool:
    async with rest.session.get(rest.url + "/readyz") as response:
        return (await response.json()).get("redis") == "ok"


# --------------------------------------------------------------------------- 2. in process


class Node:
    def __init__(self, app: web.Application, runner: web.AppRunner, port: int) -> None:
        self.app, self.runner, self.port = app, runner, port
        self.url = f"http://127.0.0.1:{port}"


async def start_node(store: Store, redis: RedisServer, database: str, channel: str,
                     env: dict[str, str] | None = None) -> Node:  # fmt: skip
    port = free_port()
    settings = load_settings(environ={
        "TIDINGS_MONGODB_URL": store.url, "TIDINGS_MONGODB_DATABASE": database,
        "TIDINGS_REDIS_URL": redis.url, "TIDINGS_REDIS_CHANNEL": channel,
        "TIDINGS_AUTH_API_KEY": API_KEY, "TIDINGS_AUTH_API_SECRET": API_SECRET,
        "TIDINGS_SERVER_PORT": str(port), **(env or {}),
    })  # fmt: skip
    app = await create_app(settings)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Node(app, runner, port)


@pytest.fixture
async def in_process(store: Store, redis_server: RedisServer) -> AsyncIterator[list[Node]]:
    database, channel = f"t_pull_{uuid.uuid4().hex[:8]}", f"pull-{uuid.uuid4().hex[:8]}"
    nodes = [await start_node(store, redis_server, database, channel, PULL_ENV) for _ in "AB"]
    async with aiohttp.ClientSession() as session:
        for node in nodes:
            await poll(lambda node=node: _ready(Rest(session, node.url)), "redis link")
    yield nodes
    for node in reversed(nodes):
        await node.runner.cleanup()


PULL_ENV = {
    "TIDINGS_FANOUT_PULL_THRESHOLD": "3", "TIDINGS_FANOUT_PUSH_THRESHOLD": "1",
    # long-polling clients end a poll (and so their disconnect) at the ping interval
    "TIDINGS_REALTIME_PING_INTERVAL": "1", "TIDINGS_REALTIME_PING_TIMEOUT": "2",
    "TIDINGS_SERVER_SHUTDOWN_TIMEOUT": "2",
}  # fmt: skip


def feeds_of(updates: list[dict[str, Any]], activity_id: str) -> list[str]:
    """The feeds named by the events that brought `activity_id`, sorted (one per feed)."""
    return sorted(u["feed"] for u in updates if activity_id in [a["id"] for a in u["new"]])


def event_of(feed: str) -> tuple[str, dict[str, Any]]:
    activity_id = str(uuid.uuid4())
    return activity_id, feed_update(feed, new=[{"id": activity_id, "actor": "celeb"}])


async def test_follows_changed_moves_sockets_of_every_node_in_and_out_of_pull_rooms(
    in_process: list[Node], clients: list[Any], uid: str
) -> None:
    a, b = in_process
    celeb, x, y = f"user:{uid}celeb", f"timeline:{uid}x", f"timeline:{uid}y"
    on_a = await py_client(clients, a.url, ["websocket"], [x])
    on_b = await py_client(clients, b.url, ["websocket"], [y])
    both = await py_client(clients, b.url, ["polling"], [x, y])  # two feeds following celeb
    marker_feed = f"raid:{uid}"
    for client in (on_a, on_b, both):
        assert (await client.call("subscribe", {"feed": marker_feed}))["ok"] is True

    async def marker(node: Node) -> str:
        """An event after which everything `node` emitted or published before has arrived:
        Redis keeps the order of one node's messages, and a node delivers them in order."""
        activity_id, event = event_of(marker_feed)
        await node.app[BROADCASTER].feed_update([marker_feed], event)
        for client in (on_a, on_b, both):
            await client.until_update(activity_id)
        return activity_id

    # The follows are made through node A (as a REST follow on A would); B hears of them.
    await a.app[BROADCASTER].follows_changed(x, celeb, True)
    await a.app[BROADCASTER].follows_changed(y, celeb, True)
    await marker(a)
    first, event = event_of(celeb)
    await b.app[BROADCASTER].pull_update(celeb, event)
    await marker(b)
    # One event per subscribed feed that follows celeb, naming that feed.
    for client, feeds in ((on_a, [x]), (on_b, [y]), (both, [x, y])):
        assert feeds_of(client.updates(), first) == feeds, client.updates()

    await b.app[BROADCASTER].follows_changed(x, celeb, False)  # x unfollows, through B
    await marker(b)
    second, event = event_of(celeb)
    await a.app[BROADCASTER].pull_update(celeb, event)
    last = await marker(a)
    assert second not in new_ids(on_a.updates())  # its only feed no longer follows celeb
    assert new_ids(on_b.updates()).count(second) == 1
    assert feeds_of(both.updates(), second) == [y]  # y still follows celeb
    assert new_ids(both.updates())[-1] == last


async def test_subscribe_joins_the_pull_rooms_of_the_feed(
    in_process: list[Node], clients: list[Any], uid: str
) -> None:
    """A socket that subscribes to a follower feed of a pull feed is in its room at once."""
    a, b = in_process
    async with aiohttp.ClientSession() as session:
        rest = Rest(session, a.url)
        celeb, feeds = f"user:{uid}celeb", [f"timeline:{uid}{n}" for n in range(4)]
        for feed in feeds:
            await rest.follow(feed, celeb)
        follower = parse_feed_id(feeds[0], ["timeline"])

        async def pulled() -> bool:
            return celeb in await a.app[SERVICE].pull_sources(follower)

        await poll(pulled, f"{celeb} to be a pull feed")
        late = await py_client(clients, b.url, ["websocket"], [feeds[0]])
        aid, event = event_of(celeb)
        await a.app[BROADCASTER].pull_update(celeb, event)
        await late.until_update(aid)


# --------------------------------------------------------------------------- 3. through REST


async def test_a_follow_made_while_connected_brings_pull_updates_once_on_every_node(
    store: Store, redis_server: RedisServer, clients: list[Any], uid: str
) -> None:
    """Real follows on a feed past `pull_threshold`: whether the store copies (push) or merges
    (pull), a socket of a follower feed gets each activity once, on whichever node it is."""
    database, channel = f"t_pullrest_{uuid.uuid4().hex[:8]}", f"pr-{uuid.uuid4().hex[:8]}"
    a = await start_node(store, redis_server, database, channel, PULL_ENV)
    b = await start_node(store, redis_server, database, channel, PULL_ENV)
    try:
        async with aiohttp.ClientSession() as session:
            ra, rb = Rest(session, a.url), Rest(session, b.url)
            for rest in (ra, rb):
                await poll(lambda rest=rest: _ready(rest), "redis link")
            celeb = f"user:{uid}celeb"
            for n in range(5):  # past the threshold
                await ra.follow(f"timeline:{uid}early{n}", celeb)
            late, also = f"timeline:{uid}late", f"timeline:{uid}also"
            on_b = await py_client(clients, b.url, ["websocket"], [late, also])
            on_a = await py_client(clients, a.url, ["websocket"], [late])
            of_celeb = await py_client(clients, b.url, ["websocket"], [celeb])
            await ra.follow(late, celeb)  # while they are connected, through the other node
            await rb.follow(also, celeb)
            first = await ra.add(celeb)
            second = await rb.add(celeb)
            for client in (on_b, on_a, of_celeb):
                await client.until_update(second)
                await client.until_update(first)
            marker_feed = f"raid:{uid}"
            for client in (on_b, on_a, of_celeb):
                assert (await client.call("subscribe", {"feed": marker_feed}))["ok"] is True
            marker = await ra.add(marker_feed)
            for client in (on_b, on_a, of_celeb):
                await client.until_update(marker)
                feeds = [also, late] if client is on_b else [celeb if client is of_celeb else late]
                for activity_id in (first, second):
                    assert feeds_of(client.updates(), activity_id) == feeds, client.updates()
    finally:
        for node in (b, a):
            await node.runner.cleanup()


async def test_one_node_id_per_process_for_leases_and_publishes(in_process: list[Node]) -> None:
    """The id that owns a node's fanout leases is the one its Redis publishes carry (a node
    skips its own messages by it): one per process, not one per component."""
    ids = set()
    for node in in_process:
        service, broadcaster = node.app[SERVICE], node.app[BROADCASTER]
        assert service.jobs.node_id == broadcaster.bus.node == node.app[NODE_ID]
        ids.add(node.app[NODE_ID])
    assert len(ids) == len(in_process)


async def test_writes_are_majority_and_journaled(in_process: list[Node]) -> None:
    """What "the feed durably holds the activity" means is set on the client, explicitly."""
    db = in_process[0].app[DATABASE]
    assert db.write_concern.document == {"w": "majority", "j": True}
    assert db["feed_entries"].write_concern.document == {"w": "majority", "j": True}
