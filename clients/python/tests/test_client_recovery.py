"""Recovery on two nodes sharing one store and one private redis-server: a node restarted
mid-stream (with a long outage: `more` paged over REST), and a Redis outage (`resync`). The
app must get every activity once, oldest first."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from client_helpers import API_KEY, App, post, until, user_token, writer

from tests.support import RedisServer, ServerProcess, Store
from tidings_client import Tidings

Activity = dict[str, Any]
pytestmark = pytest.mark.timeout(60)
MAX_MISSED = 5  # node A answers at most this many in `missed`: the rest comes over REST


class Pair:
    def __init__(self, redis: RedisServer, a: ServerProcess, b: ServerProcess) -> None:
        self.redis, self.a, self.b = redis, a, b


@pytest.fixture(scope="module")
def pair(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp("client-pair")
    redis = RedisServer(workdir).start()
    database = f"t_client_{uuid.uuid4().hex[:8]}"
    a, b = (
        ServerProcess(store.url, database=database, redis_url=redis.url,
                      log_path=workdir / f"{n}.log",
                      env={"TIDINGS_REALTIME_MAX_MISSED": str(MAX_MISSED)})
        for n in "AB"
    )  # fmt: skip
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda node: node.start(), (a, b)))
        yield Pair(redis, a, b)
    finally:
        a.kill()
        b.kill()
        redis.stop()


async def redis_state(node: ServerProcess) -> str:
    async with aiohttp.ClientSession() as session, session.get(node.url + "/readyz") as answer:
        return str((await answer.json())["redis"])


async def wait_redis(nodes: list[ServerProcess], state: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    for node in nodes:
        while await redis_state(node) != state:
            assert loop.time() < deadline, f"{node.url}: redis never {state}"
            await asyncio.sleep(0.05)


async def test_a_node_restarted_mid_stream_loses_and_repeats_nothing(pair: Pair, uid: str) -> None:
    feed = f"user:{uid}"
    states: list[str] = []
    async with (
        writer(pair.b.url) as backend,
        Tidings(pair.a.url, API_KEY, get_token=lambda: user_token(uid)) as client,
    ):
        client.on("state", states.append)
        app = App()
        subscription = await client.feed(feed).subscribe(app.on_activity, **app.callbacks())
        before = await post(backend, feed, 3, "before")
        await until(lambda: app.ids == before, "live activities across nodes")

        await asyncio.to_thread(pair.a.kill)  # kill -9 mid-stream
        await until(lambda: client.state != "connected", "the client to notice")
        during = await post(backend, feed, 23, "during")  # through B while A is down
        started = time.monotonic()
        await asyncio.to_thread(pair.a.start)
        up = time.monotonic()
        await until(lambda: app.ids == before + during, "what was missed: 5 pages of 5 and 3")
        recovered = time.monotonic()
        after = await post(backend, feed, 3, "after")
        await until(lambda: app.ids == before + during + after, "live again")
        print(f"\nrestart: node ready after {up - started:.2f} s; the client had every missed "
              f"activity {recovered - up:.2f} s after the node was ready")  # fmt: skip
        assert len(set(app.ids)) == len(app.ids) == 29
        assert app.updated == [] and app.errors == []
        assert subscription.recoveries >= 2 and client.connection.connects >= 2
        assert states[:2] == ["connecting", "connected"] and "disconnected" in states
        assert states[-1] == "connected"


async def test_a_redis_outage_is_recovered_through_resync(pair: Pair, uid: str) -> None:
    feed = f"user:{uid}"
    async with (
        writer(pair.a.url) as backend,
        Tidings(pair.b.url, API_KEY, token=user_token(uid)) as client,
    ):
        app = App()
        subscription = await client.feed(feed).subscribe(app.on_activity, **app.callbacks())
        before = await post(backend, feed, 2, "before")
        await until(lambda: app.ids == before, "live activities across nodes")
        await asyncio.to_thread(pair.redis.stop)
        await wait_redis([pair.a, pair.b], "down")
        during = await post(backend, feed, 7, "during")  # on A: B's sockets miss them
        recoveries = subscription.recoveries
        await asyncio.to_thread(pair.redis.start)
        await until(lambda: app.ids == before + during, "the resync to bring what was missed")
        assert subscription.recoveries > recoveries, "recovered without a resync?"
        assert client.connection.connects == 1  # no reconnect: a re-subscribe with since
        after = await post(backend, feed, 2, "after")
        await until(lambda: app.ids == before + during + after, "live again")
        assert len(set(app.ids)) == len(app.ids) and app.errors == []


async def test_since_resumes_where_the_app_left(pair: Pair, uid: str) -> None:
    feed = f"user:{uid}"
    async with writer(pair.a.url) as backend:
        old = await post(backend, feed, 9, "old")
        async with Tidings(pair.a.url, API_KEY, token=user_token(uid)) as client:
            app = App()
            await client.feed(feed).subscribe(app.on_activity, since=old[1])
            assert app.ids == old[2:]  # 5 in missed, 2 in the next page, before subscribe returned


def timed(base: datetime, n: int, **fields: Any) -> Activity:
    """The n-th activity of a run: its `time` (and so its id) after the (n-1)-th."""
    stamp = (base + timedelta(milliseconds=n)).isoformat().removesuffix("+00:00")
    return {"actor": "poster", "verb": "post", "object": f"o:{n}", "foreign_id": f"o:{n}",
            "time": stamp, **fields}  # fmt: skip


async def restart_a(pair: Pair, client: Tidings, offline: Any) -> None:
    """Node A (the client's) killed, `offline()` done meanwhile (through B), A started again."""
    await asyncio.to_thread(pair.a.kill)
    await until(lambda: client.state != "connected", "the client to notice")
    await offline()
    await asyncio.to_thread(pair.a.start)


async def test_150_same_verb_notifications_missed_while_disconnected_come_once(
    pair: Pair, uid: str
) -> None:
    feed = f"notification:{uid}"
    base = datetime.now(UTC) - timedelta(minutes=1)
    likes = [timed(base, n, actor=f"fan{n}", verb="like", object="photo:1") for n in range(150)]
    stored: list[str] = []

    async def post_likes() -> None:
        for batch in (likes[:100], likes[100:]):
            added = await backend.feed(feed).add_activities(batch)
            stored.extend(a["id"] for a in added)

    async with (
        writer(pair.b.url) as backend,
        Tidings(pair.a.url, API_KEY, token=user_token(uid)) as client,
    ):
        app = App()
        subscription = await client.feed(feed).subscribe(app.on_activity, **app.callbacks())
        await restart_a(pair, client, post_likes)  # one group of 150 likes
        await until(lambda: subscription.recoveries >= 2, "the catch-up after the restart")
        assert app.ids == sorted(stored)  # all 150, each once, oldest first
        assert app.updated == [] and app.errors == []


async def test_a_live_event_lost_below_the_highest_delivered_id_is_fetched(
    pair: Pair, uid: str
) -> None:
    feed = f"user:{uid}"
    base = datetime.now(UTC) - timedelta(minutes=1)
    lower: list[str] = []
    async with (
        writer(pair.b.url) as backend,
        Tidings(pair.a.url, API_KEY, token=user_token(uid)) as client,
    ):
        app = App()
        subscription = await client.feed(feed).subscribe(app.on_activity, **app.callbacks())
        higher = (await backend.feed(feed).add_activity(timed(base, 2)))["id"]
        await until(lambda: app.ids == [higher], "the higher one, live")

        async def post_lower() -> None:
            # stored below the highest id delivered, its live event lost: a fanout job that
            # finished late, or a backdated activity
            lower.append((await backend.feed(feed).add_activity(timed(base, 1)))["id"])

        await restart_a(pair, client, post_lower)
        assert lower[0] < higher
        await until(lambda: subscription.recoveries >= 2, "the catch-up after the restart")
        marker = (await backend.feed(feed).add_activity(timed(base, 3)))["id"]
        await until(lambda: marker in app.ids, "the marker, live")
        assert app.ids == [higher, lower[0], marker]  # each once: the lost one in the catch-up
        assert app.updated == [] and app.errors == []
