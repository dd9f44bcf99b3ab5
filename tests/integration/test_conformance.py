"""One Socket.IO contract, two implementations: every test runs against the fast path (Tidings'
own Engine.IO/Socket.IO, `transports: ["websocket"]`) and against python-socketio (a server with
`realtime.fast_websocket = false`), and must see the same answers.

Clients: the official npm socket.io-client (tests/js/driver.mjs) wherever it can express the
case, a raw WebSocket client (harness/engineio.py) for what it cannot send (a payload that is not
an array, a socket that never reads). A store stall is real: the store process is stopped.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from harness.common import SERVER_TOKEN, token
from harness.engineio import Closed, RawSocket
from harness.pool import ServerPool
from tests.node_client import NodeDriver
from tests.support import API_KEY, ServerProcess

IN_FLIGHT = 4
GRACE = 1.0
QUEUE_BYTES = 1048576


@pytest.fixture(scope="module", params=["fast", "socketio"])
def path_server(request: pytest.FixtureRequest, pool: ServerPool) -> ServerProcess:
    env = {
        "TIDINGS_REALTIME_FAST_WEBSOCKET": "true" if request.param == "fast" else "false",
        "TIDINGS_REALTIME_MAX_EVENTS_IN_FLIGHT": str(IN_FLIGHT),
        "TIDINGS_REALTIME_TOKEN_GRACE_SECONDS": str(GRACE),
        "TIDINGS_REALTIME_WRITE_BUFFER_BYTES": "1024",
        "TIDINGS_REALTIME_MAX_QUEUE_BYTES": str(QUEUE_BYTES),
    }
    return pool.get(env)


@pytest.fixture
async def rest(path_server: ServerProcess) -> AsyncIterator[Rest]:
    async with aiohttp.ClientSession() as session:
        yield Rest(session, path_server.url)


@pytest.fixture
def drivers() -> Iterator[list[NodeDriver]]:
    created: list[NodeDriver] = []
    yield created
    for driver in created:
        driver.close()


@pytest.fixture
async def raws() -> AsyncIterator[list[RawSocket]]:
    created: list[RawSocket] = []
    yield created
    await asyncio.gather(*(s.close() for s in created), return_exceptions=True)


class Rest:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def add(self, feed: str, count: int = 1, size: int = 0) -> list[str]:
        slug, _, user = feed.partition(":")
        activities = [{"actor": "a", "verb": "post", "object": f"o:{uuid.uuid4().hex[:8]}",
                       "body": "b" * size} for _ in range(count)]  # fmt: skip
        body = activities[0] if count == 1 else {"activities": activities}
        async with self.session.post(
            f"{self.url}/api/v1.0/feed/{slug}/{user}/", json=body, params={"api_key": API_KEY},
            headers={"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"},
        ) as response:  # fmt: skip
            answer = await response.json()
            assert response.status == 201, answer
        return [answer["id"]] if count == 1 else [a["id"] for a in answer["activities"]]

    async def metric(self, name: str) -> float:
        async with self.session.get(self.url + "/metrics") as response:
            found = re.search(rf"^{name} (\S+)$", await response.text(), re.MULTILINE)
        return float(found.group(1)) if found else 0.0


def driver(created: list[NodeDriver], server: ServerProcess, jwt_token: str | None = SERVER_TOKEN,
           namespace: str = "/") -> NodeDriver:  # fmt: skip
    client = NodeDriver(server.url, jwt_token, namespace)
    created.append(client)
    return client


async def connected(created: list[NodeDriver], server: ServerProcess) -> NodeDriver:
    client = driver(created, server)
    await client.expect(lambda x: x["type"] == "connected", "connected")
    return client


async def raw(created: list[RawSocket], server: ServerProcess, jwt_token: str = SERVER_TOKEN,
              rcvbuf: int | None = None) -> RawSocket:  # fmt: skip
    client = await RawSocket.connected(server.port, jwt_token, rcvbuf)
    created.append(client)
    return client


def error_of(ack: Any) -> dict[str, Any]:
    assert isinstance(ack, dict) and ack.get("ok") is False, ack
    return dict(ack["error"])


# --------------------------------------------------------------------------- connect


async def test_a_bad_token_is_refused_with_stream_error_data(
    path_server: ServerProcess, drivers: list[NodeDriver]
) -> None:
    client = driver(drivers, path_server, "not-a-jwt")
    line = await client.expect(lambda x: x["type"] == "connect_error", "connect_error")
    assert line["data"]["code"] == 3 and line["data"]["exception"] == "SignatureException"
    assert line["message"] == line["data"]["detail"]


async def test_an_unknown_namespace_is_refused_as_node_does(
    path_server: ServerProcess, drivers: list[NodeDriver]
) -> None:
    client = driver(drivers, path_server, namespace="/admin")
    line = await client.expect(lambda x: x["type"] == "connect_error", "connect_error")
    assert line["message"] == "Invalid namespace", line


# --------------------------------------------------------------------------- events


async def test_a_binary_argument_is_answered_with_an_error_ack(
    path_server: ServerProcess, drivers: list[NodeDriver], uid: str
) -> None:
    client = await connected(drivers, path_server)
    [ack] = await client.call("subscribe", {"$buffer": "user:x"})
    assert error_of(ack)["code"] == 4, ack
    [ack] = await client.call("subscribe", {"feed": f"user:{uid}"})  # the socket lives on
    assert ack["ok"] is True, ack


async def test_extra_arguments_are_answered_with_an_error_ack(
    path_server: ServerProcess, drivers: list[NodeDriver], uid: str
) -> None:
    client = await connected(drivers, path_server)
    [ack] = await client.call("subscribe", {"feed": f"user:{uid}"}, "extra")
    assert error_of(ack)["code"] == 4, ack
    [ack] = await client.call("unsubscribe", {"feed": f"user:{uid}"})
    assert ack == {"ok": True}


@pytest.mark.parametrize("payload", ['{"feed":"user:x"}', '"subscribe"', "[]", "[1,{}]"])
async def test_a_payload_that_is_not_an_event_array_is_answered_with_an_error_ack(
    payload: str, path_server: ServerProcess, raws: list[RawSocket]
) -> None:
    client = await raw(raws, path_server)
    client.send("421" + payload)
    assert error_of(await client.ack(1))["code"] == 4
    client.emit(2, "unsubscribe", {"feed": "user:x"})  # the socket lives on
    assert await client.ack(2) == {"ok": True}


async def test_error_details_are_capped(
    path_server: ServerProcess, drivers: list[NodeDriver]
) -> None:
    client = await connected(drivers, path_server)
    [ack] = await client.call("subscribe", {"feed": "x" * 200_000})
    error = error_of(ack)
    assert error["exception"] == "InputException" and len(error["detail"]) <= 512
    assert len(json.dumps(ack)) < 2048, len(json.dumps(ack))


@pytest.fixture(scope="module", params=["fast", "socketio"])
def slow_reads_server(request: pytest.FixtureRequest, pool: ServerPool) -> ServerProcess:
    """A server of its own whose `since` reads each wait half a second (a fault point), as on a
    slow store: the shared store is never stopped, so no other server is disturbed."""
    env = {
        "TIDINGS_REALTIME_FAST_WEBSOCKET": "true" if request.param == "fast" else "false",
        "TIDINGS_REALTIME_MAX_EVENTS_IN_FLIGHT": str(IN_FLIGHT),
        "TIDINGS_TEST_FAULT": "subscribe.missed:pause",
    }
    return pool.get(env)


async def test_subscribes_in_flight_are_bounded_per_socket(
    slow_reads_server: ServerProcess, raws: list[RawSocket], uid: str
) -> None:
    feed = f"user:{uid}"
    async with aiohttp.ClientSession() as session:
        [seen] = await Rest(session, slow_reads_server.url).add(feed)
    client = await raw(raws, slow_reads_server)
    client.emit(1, "subscribe", {"feed": feed})  # reads the feed's follows once (cached)
    assert (await client.ack(1))["ok"] is True
    flood = range(10, 10 + 3 * IN_FLIGHT)
    for n in flood:  # each `since` read waits: the first IN_FLIGHT are under way meanwhile
        client.emit(n, "subscribe", {"feed": feed, "since": seen})
    acks = {n: await client.ack(n) for n in flood}
    busy, served = [acks[n] for n in flood[IN_FLIGHT:]], [acks[n] for n in flood[:IN_FLIGHT]]
    assert all(error_of(ack)["code"] == 9 for ack in busy), busy
    assert {error_of(ack)["exception"] for ack in busy} == {"RateLimitReached"}
    assert all(ack["ok"] is True and ack["missed"] == [] for ack in served), served
    client.emit(99, "subscribe", {"feed": feed, "since": seen})  # room again
    assert (await client.ack(99))["ok"] is True


# --------------------------------------------------------------------------- slow consumers


async def test_a_socket_that_does_not_read_is_dropped_by_bytes_waiting(
    path_server: ServerProcess, rest: Rest, raws: list[RawSocket], uid: str
) -> None:
    """Big events (a batch add of 20 activities of 9 KB is one 180 KB feed.update): a socket
    that reads nothing is dropped once `max_queue_bytes` wait for it, not after
    `max_queue_packets` (1,000) events."""
    feed = f"user:{uid}"
    drops = await rest.metric("tidings_slow_consumer_disconnects_total")
    stalled_client = await raw(raws, path_server, rcvbuf=4096)
    stalled_client.emit(1, "subscribe", {"feed": feed})
    assert (await stalled_client.ack(1))["ok"] is True
    for _ in range(30):  # 5.4 MB in all
        await rest.add(feed, count=20, size=9000)
        await asyncio.sleep(0.2)  # python-socketio's watch looks every second
        if await rest.metric("tidings_slow_consumer_disconnects_total") > drops:
            break
    else:
        raise AssertionError("the socket that reads nothing was not dropped")


async def test_a_backlogged_socket_whose_token_expires_gets_the_disconnect_packet(
    path_server: ServerProcess, rest: Rest, raws: list[RawSocket], uid: str
) -> None:
    feed = f"user:{uid}"
    expires = int(time.time()) + 6
    client = await raw(raws, path_server, token({"user_id": uid, "exp": expires}), rcvbuf=4096)
    client.emit(1, "subscribe", {"feed": feed})
    assert (await client.ack(1))["ok"] is True
    fast = path_server.env["TIDINGS_REALTIME_FAST_WEBSOCKET"] == "true"
    for _ in range(100 if fast else 15):  # it reads nothing now: the kernel's buffers fill
        await rest.add(feed, count=3, size=9000)
        if fast and await rest.metric("tidings_backlogged_sockets") >= 1:
            break  # then the server's queue holds what follows
    assert time.time() < expires - 1, "too slow to back up before the token expires"
    while time.time() < expires + GRACE + 0.5:  # ~110 KB/s more: its queue holds some when
        await rest.add(feed, count=3, size=9000)  # it is disconnected
        await asyncio.sleep(0.25)
    try:  # the socket reads again: what waited for it, then `41` (its queue may be dropped)
        while "41" not in client.received:
            await client.packet(within=10)
    except Closed as closed:
        raise AssertionError(f"{closed} before the disconnect packet") from closed
