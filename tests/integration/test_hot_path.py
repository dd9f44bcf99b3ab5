"""The hot path from memory: activity cache and feed heads, proven the same as the
store's reads.

Three real nodes share one store and one Redis: A and B keep activities and feed heads in
memory, C keeps nothing (`cache.activities_mb = 0`, `cache.heads_mb = 0`), so every read of C is the
store's read. Writes go to A or B; every read of A and B must equal C's. A write's
invalidation reaches the other node through Redis a moment after the write is answered, and a
fanout runs after its insert is answered, so equality is awaited (bounded), never assumed at
once: a cache that stays stale fails.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cluster import start_all
from tests.support import API_KEY, API_SECRET, RedisServer, ServerProcess, Store

WAIT = 10.0
TOKEN = jwt.encode({"resource": "*", "action": "*", "feed_id": "*"}, API_SECRET, algorithm="HS256")
SMALL = {
    "TIDINGS_FANOUT_PULL_THRESHOLD": "2",  # a third follower switches a user feed to pull
    "TIDINGS_FANOUT_PUSH_THRESHOLD": "1",
}
COLD = {"TIDINGS_CACHE_ACTIVITIES_MB": "0", "TIDINGS_CACHE_HEADS_MB": "0"}


@pytest.fixture(scope="module")
def nodes(store: Store, redis_server: RedisServer, workdir: Path) -> Iterator[list[ServerProcess]]:
    database = f"t_{uuid.uuid4().hex[:12]}"
    started = [
        ServerProcess(store.url, database, redis_server.url, env={**SMALL, **extra},
                      log_path=workdir / f"hot-{name}.log")
        for name, extra in (("a", {}), ("b", {}), ("c", COLD))
    ]  # fmt: skip
    start_all(started)
    yield started
    for node in started:
        node.kill()


class Node:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        async with self.session.request(
            method, self.url + "/api/v1.0/" + path, params={"api_key": API_KEY, **params},
            json=body, headers={"Authorization": TOKEN, "stream-auth-type": "jwt"},
            timeout=aiohttp.ClientTimeout(total=WAIT),
        ) as response:  # fmt: skip
            answer = await response.json()
            assert response.status in (200, 201), (method, path, response.status, answer)
            return answer

    async def read(self, feed: str, **params: str) -> list[dict[str, Any]]:
        slug, _, user = feed.partition(":")
        answer = await self.call("GET", f"feed/{slug}/{user}/", **params)
        return [{k: v for k, v in a.items()} for a in answer["results"]]


async def same(a: Node, b: Node, c: Node, feed: str, **params: str) -> None:
    """A's and B's reads of `feed` equal C's (the store's), within WAIT."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        truth = await c.read(feed, **params)
        got_a, got_b = await a.read(feed, **params), await b.read(feed, **params)
        if got_a == truth and got_b == truth and truth == await c.read(feed, **params):
            return
        if loop.time() > deadline:
            raise AssertionError(f"{feed} {params}: A {got_a}\nB {got_b}\nstore {truth}")
        await asyncio.sleep(0.05)


USERS, TIMELINES = 2, 3
op = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 1), st.integers(0, USERS - 1)),
    st.tuples(st.just("remove"), st.integers(0, 1), st.integers(0, 5)),
    st.tuples(st.just("update"), st.integers(0, 1), st.integers(0, 5)),
    st.tuples(st.just("follow"), st.integers(0, 1), st.integers(0, TIMELINES - 1),
              st.integers(0, USERS - 1)),
    st.tuples(st.just("unfollow"), st.integers(0, 1), st.integers(0, TIMELINES - 1),
              st.integers(0, USERS - 1)),
    st.tuples(st.just("read"), st.integers(0, 1), st.integers(0, USERS + TIMELINES - 1),
              st.sampled_from([("25", "0"), ("2", "0"), ("3", "1")])),
)  # fmt: skip


async def run(urls: list[str], ops: list[tuple[Any, ...]]) -> None:
    uid = uuid.uuid4().hex[:8]
    users = [f"user:{uid}u{i}" for i in range(USERS)]
    timelines = [f"timeline:{uid}t{i}" for i in range(TIMELINES)]
    feeds = users + timelines
    added: list[tuple[str, str]] = []  # (feed, activity id)
    async with aiohttp.ClientSession() as session:
        a, b, c = (Node(session, url) for url in urls)
        writers = (a, b)
        for step, (kind, who, *args) in enumerate(ops):
            node = writers[who]
            if kind == "add":
                feed = users[args[0]]
                slug, _, user = feed.partition(":")
                body = {"actor": "x", "verb": "post", "object": f"o:{step}", "n": step}
                answer = await node.call("POST", f"feed/{slug}/{user}/", body)
                added.append((feed, answer["id"]))
            elif kind == "remove" and added:
                feed, activity_id = added.pop(args[0] % len(added))
                slug, _, user = feed.partition(":")
                await node.call("DELETE", f"feed/{slug}/{user}/{activity_id}/")
            elif kind == "update" and added:
                _, activity_id = added[args[0] % len(added)]
                await node.call("POST", "activity/", {"id": activity_id, "set": {"n": -step}})
            elif kind in ("follow", "unfollow"):
                source, target = timelines[args[0]], users[args[1]]
                slug, _, user = source.partition(":")
                if kind == "follow":
                    body = {"target": target, "activity_copy_limit": 10}
                    await node.call("POST", f"feed/{slug}/{user}/follows/", body)
                else:
                    await node.call("DELETE", f"feed/{slug}/{user}/follows/{target}/")
            elif kind == "read":
                limit, offset = args[1]
                await same(a, b, c, feeds[args[0]], limit=limit, offset=offset)
        for feed in feeds:
            await same(a, b, c, feed)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(op, min_size=4, max_size=14))
def test_cached_reads_equal_the_stores(nodes: list[ServerProcess], ops: list[Any]) -> None:
    asyncio.run(run([n.url for n in nodes], ops))


def test_an_update_on_one_node_reaches_the_cache_of_the_other(nodes: list[ServerProcess]) -> None:
    async def scenario() -> None:
        uid = uuid.uuid4().hex[:8]
        async with aiohttp.ClientSession() as session:
            a, b, c = (Node(session, n.url) for n in nodes)
            body = {"actor": "x", "verb": "post", "object": "o:1", "n": 1}
            added = await a.call("POST", f"feed/user/{uid}/", body)
            first = await b.read(f"user:{uid}")  # B caches it (and the feed's head)
            assert [x["n"] for x in first] == [1]
            await a.call("POST", "activity/", {"id": added["id"], "set": {"n": 2}})
            await same(a, b, c, f"user:{uid}")
            assert [x["n"] for x in await b.read(f"user:{uid}")] == [2]
            second = await a.call("POST", f"feed/user/{uid}/", {**body, "object": "o:2"})
            await same(a, b, c, f"user:{uid}")  # B's head was dropped by A's write
            assert [x["id"] for x in await b.read(f"user:{uid}")] == [second["id"], added["id"]]
            await a.call("DELETE", f"feed/user/{uid}/{second['id']}/")
            await same(a, b, c, f"user:{uid}")

    asyncio.run(scenario())
