"""Rate limits as Stream's API has them: `X-Ratelimit-*` headers on every counted answer, 429
RateLimitReached (code 9) past a limit, in Stream's SDKs too, on sockets as an ack, per user
(others untouched), reset with the window, cluster-wide through Redis and per node while Redis
is down (said on /readyz). Servers of their own, with small limits."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import stream
from pymongo import MongoClient
from stream.exceptions import RateLimitReached

from harness.cluster import start_all
from harness.common import SERVER_TOKEN, token
from harness.pool import ServerPool
from harness.redis import RedisServer
from harness.server import ServerProcess
from harness.store import Store
from tests.integration.nodes import Sub
from tests.integration.rest_calls import stream_js
from tests.support import API_KEY, API_SECRET, wait_until

WAIT = 15.0
MINUTE = {  # per user: 4 reads, 2 subscribes a minute; the rest as shipped
    "TIDINGS_LIMITS_READS_PER_USER": "4",
    "TIDINGS_LIMITS_SUBSCRIBES_PER_USER": "2",
}
SHORT = {  # windows of 2 s; every token counted, 3 reads a window for the whole app
    "TIDINGS_LIMITS_WINDOW_SECONDS": "2",
    "TIDINGS_LIMITS_EXEMPT_SERVER_TOKENS": "false",
    "TIDINGS_LIMITS_READS_PER_KEY": "3",
}
HEADERS = ("X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset")


def fresh_window(window: int, need: float, new: bool = False) -> None:
    """Wait, when needed, for a window with at least `need` seconds left (`new`: for the next
    window, whatever is left of this one: the app's counter is shared by the module's tests)."""
    left = window - time.time() % window
    if new or left < need:
        time.sleep(left + 0.05)


def read(server: ServerProcess, user: str | None, feed: str | None = None) -> requests.Response:
    jwt = SERVER_TOKEN if user is None else token({"user_id": user})
    slug, _, user_id = (feed or f"user:{user or 'x'}").partition(":")
    return requests.get(
        f"{server.url}/api/v1.0/feed/{slug}/{user_id}/",
        params={"api_key": API_KEY},
        headers={"Authorization": jwt, "stream-auth-type": "jwt"},
        timeout=WAIT,
    )


def limit_of(response: requests.Response) -> tuple[int, int, int]:
    limit, remaining, reset = (int(response.headers[h]) for h in HEADERS)
    return limit, remaining, reset


@pytest.fixture(scope="module")
def limited(pool: ServerPool) -> ServerProcess:
    return pool.get(MINUTE)


@pytest.fixture(scope="module")
def short(pool: ServerPool) -> ServerProcess:
    return pool.get(SHORT)


def test_every_counted_answer_has_the_headers_and_a_refusal_is_streams(
    limited: ServerProcess, uid: str
) -> None:
    fresh_window(60, 5)
    answers = [read(limited, uid) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
    seen = [limit_of(a) for a in answers]
    assert [s[:2] for s in seen] == [(4, 3), (4, 2), (4, 1), (4, 0), (4, 0)]
    resets = {s[2] for s in seen}
    assert len(resets) == 1 and time.time() < resets.pop() <= time.time() + 60
    refused = answers[-1].json()
    assert refused["code"] == 9 and refused["exception"] == "RateLimitReached"
    assert refused["status_code"] == 429 and refused["duration"].endswith("ms")
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
    # an error answer of a counted call carries them too (a feed the user may not read)
    fresh_window(60, 2)
    other = read(limited, f"{uid}-b", f"user:{uid}-c")
    assert other.status_code == 403 and limit_of(other)[:2] == (4, 3)


def test_a_user_over_the_limit_leaves_the_others_untouched(
    limited: ServerProcess, uid: str
) -> None:
    fresh_window(60, 5)
    for _ in range(4):
        assert read(limited, uid).status_code == 200
    assert read(limited, uid).status_code == 429
    assert read(limited, f"{uid}-other").status_code == 200
    # the server token is not counted: no headers, never refused
    for _ in range(6):
        answer = read(limited, None, f"user:{uid}")
        assert answer.status_code == 200 and "X-Ratelimit-Limit" not in answer.headers
    # writes are counted apart from reads ("follows will still allow you to read feeds")
    added = requests.post(
        f"{limited.url}/api/v1.0/feed/user/{uid}/", params={"api_key": API_KEY},
        json={"actor": uid, "verb": "post", "object": "o"},
        headers={"Authorization": token({"user_id": uid}), "stream-auth-type": "jwt"},
        timeout=WAIT,
    )  # fmt: skip
    assert added.status_code == 201 and limit_of(added)[:2] == (300, 299)


def test_the_limit_resets_with_the_window(short: ServerProcess, uid: str) -> None:
    fresh_window(2, 1.5, new=True)
    answers = [read(short, uid) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    reset = limit_of(answers[-1])[2]
    time.sleep(max(0.0, reset - time.time()) + 0.05)
    again = read(short, uid)
    assert again.status_code == 200 and limit_of(again) == (3, 2, reset + 2)


def test_stream_python_raises_rate_limit_reached(short: ServerProcess, uid: str) -> None:
    """With server tokens counted (not exempt), the SDK's own calls hit the app's limit."""
    client = stream.connect(API_KEY, API_SECRET, base_url=short.base_url)
    feed = client.feed("user", uid)
    fresh_window(2, 1.5, new=True)
    for _ in range(3):
        feed.get(limit=1)
    with pytest.raises(RateLimitReached) as refused:
        feed.get(limit=1)
    assert refused.value.status_code == 429 and refused.value.code == 9


def test_streams_npm_sdk_sees_a_429_with_code_9(limited: ServerProcess, uid: str) -> None:
    fresh_window(60, 10)
    calls = [{"user": uid, "feed": ["user", uid], "method": "get", "args": [{"limit": 1}]}] * 5
    results = stream_js(limited, calls)
    assert [r["ok"] for r in results] == [True] * 4 + [False]
    assert results[-1]["status"] == 429
    assert results[-1]["error"]["code"] == 9
    assert results[-1]["error"]["exception"] == "RateLimitReached"


async def test_a_subscribe_over_the_limit_is_acked_rate_limit_reached(
    limited: ServerProcess, uid: str
) -> None:
    await asyncio.to_thread(fresh_window, 60, 5)
    sub = await Sub().connect(limited.url, token({"user_id": uid}))
    try:
        assert (await sub.subscribe(f"user:{uid}"))["ok"] is True
        assert (await sub.subscribe(f"timeline:{uid}"))["ok"] is True
        refused = await sub.subscribe(f"user:{uid}")
        assert refused["ok"] is False, refused
        assert refused["error"]["code"] == 9
        assert refused["error"]["exception"] == "RateLimitReached"
        other = await Sub().connect(limited.url, token({"user_id": f"{uid}-other"}))
        try:
            assert (await other.subscribe(f"user:{uid}-other"))["ok"] is True
        finally:
            await other.close()
    finally:
        await sub.close()


# --------------------------------------------------------------------------- two nodes


class Pair:
    def __init__(self, redis: RedisServer, nodes: list[ServerProcess]) -> None:
        self.redis, self.nodes = redis, nodes


@pytest.fixture(scope="module")
def pair(
    store: Store, mongo: MongoClient[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    """Nodes A and B on one database and a redis-server of their own (the last test stops
    it), 4 reads a minute per user."""
    workdir: Path = tmp_path_factory.mktemp("limits")
    redis = RedisServer(workdir).start()
    database = f"t_limits_{uuid.uuid4().hex[:8]}"
    nodes = [
        ServerProcess(store.url, database=database, redis_url=redis.url, env=MINUTE,
                      log_path=workdir / f"{name}.log")
        for name in "AB"
    ]  # fmt: skip
    try:
        start_all(nodes)
        yield Pair(redis, nodes)
    finally:
        for node in nodes:
            node.kill()
        redis.stop()
        mongo.drop_database(database)


def limits_state(node: ServerProcess) -> str:
    return str(requests.get(node.url + "/readyz", timeout=WAIT).json()["limits"])


def counted(node: ServerProcess, where: str) -> float:
    """`tidings_rate_counted_total{where=...}` of `node`."""
    text = requests.get(node.url + "/metrics", timeout=WAIT).text
    found = re.search(rf'^tidings_rate_counted_total{{where="{where}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_user_over_the_limit_is_refused_on_both_nodes(pair: Pair, uid: str) -> None:
    a, b = pair.nodes
    wait_until(lambda: {limits_state(a), limits_state(b)} == {"cluster"}, WAIT,
               what="both nodes counting in Redis")  # fmt: skip
    fresh_window(60, 5)
    answers = [read(node, uid) for node in (a, b, a, b)]
    assert [limit_of(x)[1] for x in answers] == [3, 2, 1, 0], "one count for the cluster"
    assert read(a, uid).status_code == 429
    assert read(b, uid).status_code == 429
    for node in (a, b):
        other = read(node, f"{uid}-{node.port}")
        assert other.status_code == 200 and limit_of(other)[1] == 3
        assert counted(node, "redis") >= 3


def test_while_redis_is_down_each_node_counts_alone_and_readyz_says_so(
    pair: Pair, uid: str
) -> None:
    a, b = pair.nodes
    pair.redis.stop()
    for node in (a, b):
        wait_until(lambda node=node: limits_state(node) == "local", WAIT,
                   what="limits counted in memory")  # fmt: skip
    fresh_window(60, 5)
    for node in (a, b):  # each node allows the whole limit
        before = counted(node, "memory")
        assert [read(node, uid).status_code for _ in range(5)] == [200] * 4 + [429]
        assert counted(node, "memory") == before + 5
    pair.redis.start()
    for node in (a, b):
        wait_until(lambda node=node: limits_state(node) == "cluster", WAIT,
                   what="limits counted in Redis again")  # fmt: skip
