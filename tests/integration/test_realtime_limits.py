"""What a client can make the fast path do before and after it authenticates: sockets that never
connect, refused connects, slow handlers, oversized echoes, padded tokens, malformed packets.

Real things only: a server process on the real store, a raw WebSocket client (harness/engineio.py)
for what no client library sends, and a real store stall (the store process stopped with SIGSTOP)
for a slow subscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import socketio

from harness.common import SERVER_TOKEN
from harness.engineio import RawSocket
from harness.pool import ServerPool
from tests.support import API_KEY, ServerProcess, Store

CONNECT_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def limits_server(pool: ServerPool) -> ServerProcess:
    """Heartbeats every second (a socket that cannot answer a ping is dropped within ~2 s) and
    a short connect deadline."""
    env = {
        "TIDINGS_REALTIME_PING_INTERVAL": "1",
        "TIDINGS_REALTIME_PING_TIMEOUT": "1",
        "TIDINGS_REALTIME_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
    }
    return pool.get(env)


@pytest.fixture
async def sockets() -> AsyncIterator[list[RawSocket]]:
    created: list[RawSocket] = []
    yield created
    await asyncio.gather(*(s.close() for s in created), return_exceptions=True)


async def opened(created: list[RawSocket], server: ServerProcess) -> RawSocket:
    client = await RawSocket.open_(server.port)
    created.append(client)
    return client


async def connected(created: list[RawSocket], server: ServerProcess,
                    token: str = SERVER_TOKEN) -> RawSocket:  # fmt: skip
    client = await RawSocket.connected(server.port, token)
    created.append(client)
    return client


def log_since(server: ServerProcess, offset: int) -> str:
    assert server.log_path is not None
    return server.log_path.read_bytes()[offset:].decode(errors="replace")


def log_size(server: ServerProcess) -> int:
    assert server.log_path is not None
    return server.log_path.stat().st_size


async def add_activity(server: ServerProcess, feed: str) -> str:
    slug, _, user = feed.partition(":")
    async with aiohttp.ClientSession() as session, session.post(
        f"{server.url}/api/v1.0/feed/{slug}/{user}/", params={"api_key": API_KEY},
        json={"actor": "a", "verb": "post", "object": f"o:{uuid.uuid4().hex[:6]}"},
        headers={"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"},
    ) as response:  # fmt: skip
        assert response.status == 201, await response.text()
        return str((await response.json())["id"])


@contextlib.contextmanager
def stalled(store: Store) -> Iterator[None]:
    """The store process stopped (SIGSTOP) for real, then resumed: every store call waits."""
    if store.process is None:
        pytest.skip("needs the embedded store process (TIDINGS_MONGODB_URL is set)")
    os.kill(store.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(store.process.pid, signal.SIGCONT)


# ---------------------------------------------------------------------------


async def test_a_socket_that_never_connects_is_closed_at_a_fixed_deadline_though_it_pongs(
    limits_server: ServerProcess, sockets: list[RawSocket]
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    client = await opened(sockets, limits_server)
    closed = await client.until_closed(within=CONNECT_TIMEOUT + 5)  # answering every ping
    assert client.received.count("2") >= 1  # it was pinged, and answered, meanwhile
    assert closed.code == 1000, closed  # a close frame, not a dropped connection
    assert loop.time() - started < CONNECT_TIMEOUT + 2


async def test_a_long_polling_session_that_never_connects_is_closed_at_the_deadline(
    limits_server: ServerProcess,
) -> None:
    """The same deadline on python-socketio's path: an Engine.IO long-polling session that
    answers every ping but never sends its Socket.IO connect is ended by the server, and its
    next poll is told the session is gone."""
    url = f"{limits_server.url}/socket.io/"
    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=CONNECT_TIMEOUT + 5)
    connects = socketio.AsyncClient(reconnection=False)  # one that connects, also polling
    await connects.connect(limits_server.url, auth={"token": SERVER_TOKEN},
                           transports=["polling"], wait_timeout=10)  # fmt: skip
    async with aiohttp.ClientSession(timeout=timeout) as http:
        started = loop.time()
        async with http.get(url, params={"EIO": "4", "transport": "polling"}) as opening:
            text = await opening.text()
        assert opening.status == 200 and text.startswith("0{"), text
        query = {"EIO": "4", "transport": "polling", "sid": json.loads(text[1:])["sid"]}
        pongs = 0
        async with asyncio.timeout(CONNECT_TIMEOUT + 10):  # a failure, never the proof
            while True:
                async with http.get(url, params=query) as poll:
                    status, payload = poll.status, await poll.text()
                if status != 200:
                    break
                packets = payload.split("\x1e")
                if "1" in packets:  # the server's close packet: the next poll must be refused
                    continue
                assert packets == ["2"] * len(packets), payload  # only pings: answered at once
                pong = "\x1e".join("3" * len(packets))
                async with http.post(url, params=query, data=pong) as answer:
                    assert answer.status == 200, await answer.text()
                pongs += len(packets)
        closed_after = loop.time() - started
    assert status == 400 and "Invalid session" in payload, (status, payload)
    assert pongs >= 1  # it was pinged, and answered, meanwhile
    assert CONNECT_TIMEOUT - 0.5 <= closed_after < CONNECT_TIMEOUT + 2.5, closed_after
    try:  # the connected session, as old, is still served
        assert await connects.call("unsubscribe", {"feed": "user:x"}, timeout=10) == {"ok": True}
    finally:
        await connects.disconnect()


async def test_a_refused_connect_is_answered_then_closed(
    limits_server: ServerProcess, sockets: list[RawSocket]
) -> None:
    client = await opened(sockets, limits_server)
    client.send("40" + json.dumps({"token": "not-a-jwt"}))
    answer = await client.packet()
    assert answer.startswith("44{"), answer
    refusal = json.loads(answer[2:])
    assert refusal["data"]["code"] == 3 and refusal["message"] == refusal["data"]["detail"]
    closed = await client.until_closed(within=CONNECT_TIMEOUT / 2)  # well before the deadline
    assert closed.code == 1000, closed


# ---------------------------------------------------------------------------


async def test_a_socket_whose_subscribe_waits_on_a_stalled_store_stays_connected(
    limits_server: ServerProcess, store: Store, sockets: list[RawSocket], uid: str
) -> None:
    feed = f"user:{uid}"
    seen = await add_activity(limits_server, feed)
    client = await connected(sockets, limits_server)
    with stalled(store):
        client.emit(1, "subscribe", {"feed": feed, "since": seen})  # a store read: it waits
        with pytest.raises(TimeoutError):
            await client.packet(within=3.5)  # 3 heartbeats: every ping answered, no ack yet
        assert client.received.count("2") >= 2
    ack = await client.ack(1)
    assert ack["ok"] is True and ack["feed"] == feed, ack
    client.emit(2, "unsubscribe", {"feed": feed})
    assert await client.ack(2) == {"ok": True}


# ---------------------------------------------------------------------------


async def test_a_big_ping_before_auth_is_not_echoed(
    limits_server: ServerProcess, sockets: list[RawSocket]
) -> None:
    client = await opened(sockets, limits_server)
    client.send("2" + "x" * 500_000)
    closed = await client.until_closed(within=5)
    assert not any(text.startswith("3x") for text in client.received), "echoed"
    assert closed.code is not None  # closed with a close frame
    probe = await opened(sockets, limits_server)
    probe.send("2probe")  # what clients send (the upgrade probe) is still answered
    assert await probe.packet() == "3probe"


async def test_error_details_are_capped(
    limits_server: ServerProcess, sockets: list[RawSocket]
) -> None:
    client = await connected(sockets, limits_server)
    client.emit(1, "subscribe", {"feed": "x" * 200_000})
    ack = await client.ack(1)
    assert ack["ok"] is False and ack["error"]["exception"] == "InputException", str(ack)[:300]
    assert len(json.dumps(ack)) < 2048, len(json.dumps(ack))
    assert len(ack["error"]["detail"]) <= 512


# ---------------------------------------------------------------------------


async def test_a_padded_or_oversized_token_is_refused(
    limits_server: ServerProcess, sockets: list[RawSocket]
) -> None:
    for token in (SERVER_TOKEN + " " * 100_000, "Bearer " + SERVER_TOKEN + "\t" * 50_000):
        client = await opened(sockets, limits_server)
        client.send("40" + json.dumps({"token": token}))
        answer = await client.packet()
        assert answer.startswith("44{"), answer[:200]
        refusal = json.loads(answer[2:])
        assert refusal["data"]["code"] == 3, refusal
    ok = await opened(sockets, limits_server)  # the same token, trimmed, is fine
    ok.send("40" + json.dumps({"token": "Bearer " + SERVER_TOKEN + " "}))
    assert (await ok.packet()).startswith("40{")


# ---------------------------------------------------------------------------


MALFORMED = {
    "unicode digit type": "4²",
    "unicode digit ack id": '40²{"token":"x"}',
    "arabic-indic digit ack id": '40\u0663{"token":"x"}',
    "thousands of digits": "40" + "1" * 5000 + "{}",
    "deep json": "40" + "[" * 100_000,
    "deep json object": "40" + '{"a":' * 50_000,
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_packet_before_auth_closes_cleanly(
    text: str, limits_server: ServerProcess, sockets: list[RawSocket]
) -> None:
    offset = log_size(limits_server)
    client = await opened(sockets, limits_server)
    client.send(text)
    closed = await client.until_closed(within=CONNECT_TIMEOUT / 2)
    assert closed.code is not None, "dropped without a close frame"
    healthy = await connected(sockets, limits_server)  # the server is fine
    healthy.emit(1, "unsubscribe", {"feed": "user:x"})
    assert await healthy.ack(1) == {"ok": True}
    logged = log_since(limits_server, offset)
    assert "Traceback" not in logged, logged[-3000:]


@pytest.mark.parametrize(
    "text", ['42²["subscribe",{}]', "42" + "9" * 5000 + '["subscribe",{}]',
             '42["subscribe",' + "[" * 100_000],
    ids=["unicode digit", "thousands of digits", "deep json"],
)  # fmt: skip
async def test_a_malformed_packet_after_auth_closes_cleanly(
    text: str, limits_server: ServerProcess, sockets: list[RawSocket]
) -> None:
    offset = log_size(limits_server)
    client = await connected(sockets, limits_server)
    client.send(text)
    closed = await client.until_closed(within=5)
    assert closed.code is not None, "dropped without a close frame"
    logged = log_since(limits_server, offset)
    assert "Traceback" not in logged, logged[-3000:]
