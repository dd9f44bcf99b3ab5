"""The bus between nodes on Redis (server/tidings/bus/redis_bus.py) when something fails that is
not a plain outage: an error the listener did not expect, and a publish that
fails while the listener is up. A real redis-server throughout (tests/support.py RedisServer).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from harness.cluster import start_all
from harness.common import SERVER_TOKEN
from harness.engineio import RawSocket
from tests.faye_client import FayeSubscriber
from tests.support import API_KEY, RedisServer, ServerProcess, Store
from tidings.bus.messages import Forget, LinkUp, encode
from tidings.bus.redis_bus import RedisBus

WAIT = 15.0


async def until(check: Any, what: str, within: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class FaultyLink(RedisBus):
    """A link whose first delivery fails with an error that is neither Redis's nor a socket's
    (what a bug in redis-py or in Tidings raises), out of the listener's loop."""

    faults = 1

    async def _deliver(self, data: bytes) -> None:
        if self.faults:
            self.faults -= 1
            raise RuntimeError("an unexpected fault")
        await super()._deliver(data)


async def test_the_listener_survives_an_unexpected_error_and_resyncs(
    redis_server: RedisServer,
) -> None:
    channel = f"t-{uuid.uuid4().hex[:8]}"
    link = FaultyLink("this-node", redis_server.url, channel)
    got: list[Forget] = []
    recoveries: list[bool] = []
    ups: list[bool] = []
    link.on(Forget, got.append)
    link.on(LinkUp, lambda message: recoveries.append(True) if message.after_outage else None)
    other = aioredis.Redis.from_url(redis_server.url)
    link.start()
    try:
        await until(lambda: link.up, "the link to come up")
        watching = asyncio.ensure_future(_watch(link, ups))
        first = encode(Forget(["first"]), "another-node")
        await other.publish(channel, first)  # the listener fails on this one
        await until(lambda: recoveries, "a resync after the listener restarted")
        assert False in ups, "`up` stayed true while the listener was dead"
        assert link.up
        await other.publish(channel, encode(Forget(["second"]), "another-node"))
        await until(lambda: Forget(["second"]) in got, "a message after the restart")
        watching.cancel()
    finally:
        await other.aclose()
        await link.close()


async def _watch(link: RedisBus, ups: list[bool]) -> None:
    while True:
        ups.append(link.up)
        await asyncio.sleep(0.005)


# --------------------------------------------------------------------------- two nodes


@pytest.fixture
def two_nodes(store: Store, redis_server: RedisServer,
              workdir: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:  # fmt: skip
    database = f"t_{uuid.uuid4().hex[:12]}"
    nodes = tuple(
        ServerProcess(store.url, database=database, redis_url=redis_server.url,
                      log_path=workdir / f"redis-link-{n}.log")
        for n in (1, 2)
    )  # fmt: skip
    start_all(list(nodes))
    yield nodes  # type: ignore[misc]
    for node in nodes:
        node.kill()


@pytest.fixture
async def raws() -> AsyncIterator[list[RawSocket]]:
    created: list[RawSocket] = []
    yield created
    await asyncio.gather(*(s.close() for s in created), return_exceptions=True)


async def test_a_publish_that_fails_while_the_listener_is_up_makes_the_other_nodes_resync(
    two_nodes: tuple[ServerProcess, ServerProcess], redis_server: RedisServer,
    raws: list[RawSocket], uid: str,
) -> None:  # fmt: skip
    near, far = two_nodes
    feed = f"user:{uid}"
    subscriber = await RawSocket.connected(near.port, SERVER_TOKEN)
    raws.append(subscriber)
    subscriber.emit(1, "subscribe", {"feed": feed})
    assert (await subscriber.ack(1))["ok"] is True
    faye = FayeSubscriber(near.url, uid, [["user", uid]])  # Stream's realtime: resyncs too
    try:
        assert (await faye.subscribed(feed))["type"] == "subscribed"
    except BaseException:
        faye.close()
        raise

    async def post(obj: str) -> str:
        async with aiohttp.ClientSession() as session:
            slug, _, user = feed.partition(":")
            async with session.post(
                f"{far.url}/api/v1.0/feed/{slug}/{user}/", params={"api_key": API_KEY},
                json={"actor": "a", "verb": "post", "object": obj},
                headers={"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"},
            ) as response:  # fmt: skip
                assert response.status == 201
                return str((await response.json())["id"])

    before = await post("o:0")  # what the socket saw last: the `since` of its resync
    while not (text := await subscriber.packet(within=WAIT)).startswith('42["feed.update"'):
        pass
    assert before in text
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        # Writes (PUBLISH among them) wait for 6 s; the subscriptions stay up meanwhile. The
        # write publishes its cache drop first (its loss owes nothing: the caches do not depend
        # on it), then its event, each given 2 s: the event's publish fails within the pause.
        assert await admin.execute_command("CLIENT", "PAUSE", "6000", "WRITE")
        missed = await post("o:1")
        seen: list[Any] = []
        while True:  # the far node's publish times out: `near` misses the event, then resyncs
            text = await subscriber.packet(within=WAIT)
            if text.startswith("42"):
                seen.append(json.loads(text[2:]))
            if any(event[0] == "resync" for event in seen):
                break
        # (whether the event came anyway, once Redis ran the paused PUBLISH, varies): the
        # resync's re-subscribe from the last id seen brings it back, whatever came live.
        subscriber.emit(2, "subscribe", {"feed": feed, "since": before})
        ack = await subscriber.ack(2)
        assert ack["ok"] is True and ack["more"] is False, ack
        assert [activity["id"] for activity in ack["missed"]] == [missed], ack
        # The Faye client cannot re-subscribe: the node sends it what it missed itself.
        await faye.added(missed)
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
        faye.close()
