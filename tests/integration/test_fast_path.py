"""The fast WebSocket path (server/tidings/realtime/websocket.py, hub.py) next to python-socketio's.

Direct WebSocket connections (`transports: ["websocket"]`) are served by Tidings' own Engine.IO /
Socket.IO; long-polling and polling→WebSocket upgrades by python-socketio. Both must speak the
same contract (the `tidings_deliveries_total{path}` counter tells which path delivered), and the
fast path must keep per-socket order while a socket is backlogged, drop a socket that does not
read without disturbing the others, and survive sockets closing in the middle of broadcasts.

Real things only: server processes on the real store, python-socketio's AsyncClient, and a raw
WebSocket client (below) spoken by hand on an asyncio stream, for what no client library lets a
test do: stop reading, or vanish with a TCP reset. "No further event" is never checked by
sleeping: a marker posted afterwards arrives after anything the socket got before it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio

from harness.common import token
from harness.pool import ServerPool
from tests.integration.fast_path_clients import (
    PyClient,
    RawClient,
    Rest,
    new_ids,
    now,
    poll,
    py_client,
    raw_client,
)
from tests.support import ServerProcess


@pytest.fixture(scope="module")
def fast_server(pool: ServerPool) -> ServerProcess:
    """A server of its own (its counters are this module's): tiny transport buffers, so that
    a socket that stops reading backs up at once, and a small queue bound."""
    env = {
        "TIDINGS_REALTIME_WRITE_BUFFER_BYTES": "1024",
        "TIDINGS_REALTIME_MAX_QUEUE_PACKETS": "40",
    }
    return pool.get(env)


@pytest.fixture(scope="module")
def pings_server(pool: ServerPool) -> ServerProcess:
    """Heartbeats every second: python-socketio's long-polling client ends its polls (and so
    its connects and disconnects) at the ping interval."""
    env = {"TIDINGS_REALTIME_PING_INTERVAL": "1", "TIDINGS_REALTIME_PING_TIMEOUT": "2"}
    return pool.get(env)


@pytest.fixture
async def rest(fast_server: ServerProcess) -> AsyncIterator[Rest]:
    async with aiohttp.ClientSession() as session:
        yield Rest(session, fast_server.url)


@pytest.fixture
async def pings_rest(pings_server: ServerProcess) -> AsyncIterator[Rest]:
    async with aiohttp.ClientSession() as session:
        yield Rest(session, pings_server.url)


@pytest.fixture
async def clients() -> AsyncIterator[list[PyClient | RawClient]]:
    created: list[PyClient | RawClient] = []
    yield created
    await asyncio.gather(*(c.close() for c in created), return_exceptions=True)


FAST, SIO = '{path="fast"}', '{path="socketio"}'


# --------------------------------------------------------------------------- 1. two paths


async def test_websocket_clients_take_the_fast_path_and_polling_clients_python_socketio(
    pings_server: ServerProcess, pings_rest: Rest, clients: list[Any], uid: str
) -> None:
    rest, url, feed = pings_rest, pings_server.url, f"user:{uid}"
    direct = await py_client(clients, url, ["websocket"], [feed])
    upgraded = await py_client(clients, url, None, [feed])  # polling, then upgrade
    polling = await py_client(clients, url, ["polling"], [feed])
    raw = await raw_client(clients, pings_server.port, [feed])
    await poll(now(lambda: upgraded.sio.transport() == "websocket"), "the upgrade")
    fast_before = await rest.metric("tidings_deliveries_total", FAST)
    sio_before = await rest.metric("tidings_deliveries_total", SIO)

    aid = await rest.add(feed)
    for client in (direct, upgraded, polling):
        await client.until_update(aid)
    await raw.read_until(aid)
    assert direct.updates() == upgraded.updates() == polling.updates() == raw.events
    assert await rest.metric("tidings_deliveries_total", FAST) == fast_before + 2
    assert await rest.metric("tidings_deliveries_total", SIO) == sio_before + 2


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["fast", "socketio"])
async def test_both_paths_keep_the_socketio_contract(
    transports: list[str], pings_server: ServerProcess, pings_rest: Rest, clients: list[Any],
    uid: str,
) -> None:  # fmt: skip
    url, rest = pings_server.url, pings_rest
    refused = PyClient()
    clients.append(refused)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(url, transports, "not-a-jwt")
    [error] = refused.connect_errors
    assert error["data"]["code"] == 3 and error["data"]["exception"] == "SignatureException"
    assert error["message"] == error["data"]["detail"]
    other = PyClient()
    clients.append(other)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await other.connect(url, transports, namespaces=["/admin"])

    user, timeline = f"user:{uid}", f"timeline:{uid}"
    client = await PyClient().connect(url, transports, token({"user_id": uid}))
    clients.append(client)
    denied = await client.call("subscribe", {"feed": "user:someone-else"})
    assert denied["ok"] is False and denied["error"]["code"] == 17, denied
    bad = await client.call("subscribe", "user:x")
    assert bad["ok"] is False and bad["error"]["exception"] == "InputException", bad
    seen = await rest.add(timeline)
    missed = await rest.add(timeline)
    ack = await client.call("subscribe", {"feed": timeline, "since": seen})
    assert ack["ok"] is True and [a["id"] for a in ack["missed"]] == [missed], ack
    assert (await client.call("subscribe", {"feed": user}))["ok"] is True

    narrower = token({"resource": "feed", "action": "read", "feed_id": f"timeline{uid}"})
    ack = await client.call("token.refresh", {"token": narrower})
    assert ack == {"ok": True, "expires_at": None, "dropped": [user]}, ack
    assert await client.call("unsubscribe", {"feed": "nosuchgroup:x"}) != {"ok": True}
    gone = await rest.add(user)
    live = await rest.add(timeline)
    await client.until_update(live)
    assert gone not in new_ids(client.updates())
    assert await client.call("unsubscribe", {"feed": timeline}) == {"ok": True}


# --------------------------------------------------------------------------- 2. order


async def test_events_reach_a_socket_in_order_also_while_it_is_backlogged(
    fast_server: ServerProcess, rest: Rest, clients: list[Any], uid: str
) -> None:
    """The server sends each event to the room in one broadcast, in one order: a socket that
    reads at once and a socket whose events waited in the server's queue get the same order."""
    feed = f"raid:{uid}"
    reader = await py_client(clients, fast_server.url, ["websocket"], [feed])
    stalled = await raw_client(clients, fast_server.port, [feed], rcvbuf=4096)
    drops = await rest.metric("tidings_slow_consumer_disconnects_total")
    posted: list[str] = []

    async def post(count: int) -> None:
        adds = (rest.add(feed, body="y" * 9000) for _ in range(count))
        posted.extend(await asyncio.gather(*adds))

    # `stalled` reads nothing now: its events back up in the kernel, then in the server's queue.
    while await rest.metric("tidings_backlogged_sockets") < 1:
        assert len(posted) < 2000, "the stalled socket never backed up"
        await post(4)
    await post(20)  # these join its queue, behind what waits there
    marker = await rest.add(feed)

    await stalled.read_until(marker, within=30)
    await reader.until_update(marker)
    order = new_ids(reader.updates())
    assert sorted(order) == sorted([*posted, marker]) and order[-1] == marker
    assert new_ids(stalled.events) == order
    assert await rest.metric("tidings_slow_consumer_disconnects_total") == drops
    await poll(lambda: _equals(rest.metric("tidings_backlogged_sockets"), 0), "no backlog")


# --------------------------------------------------------------------------- 3. backpressure


async def test_a_socket_that_stops_reading_is_dropped_and_the_others_are_not(
    fast_server: ServerProcess, rest: Rest, clients: list[Any], uid: str
) -> None:
    feed = f"raid:{uid}"
    sockets = await rest.metric("tidings_connected_sockets")
    drops = await rest.metric("tidings_slow_consumer_disconnects_total")
    reader = await py_client(clients, fast_server.url, ["websocket"], [feed])
    also = await raw_client(clients, fast_server.port, [feed])
    stalled = await raw_client(clients, fast_server.port, [feed], rcvbuf=4096)
    posted: list[str] = []

    async def dropped() -> bool:
        return await rest.metric("tidings_slow_consumer_disconnects_total") > drops

    while not await dropped():
        assert len(posted) < 3000, "the stalled socket was never dropped"
        posted += await asyncio.gather(*(rest.add(feed, body="z" * 9000) for _ in range(8)))
        await also.read_until(posted[-1])  # `also` keeps reading
    await poll(lambda: _equals(rest.metric("tidings_connected_sockets"), sockets + 2),
               "the dropped socket to be gone")  # fmt: skip
    await poll(lambda: _equals(rest.metric("tidings_backlogged_sockets"), 0), "no backlog")
    marker = await rest.add(feed)
    await reader.until_update(marker)
    await also.read_until(marker)
    order = new_ids(reader.updates())
    assert sorted(order) == sorted([*posted, marker]) and order[-1] == marker
    assert new_ids(also.events) == order
    # What was in the kernel, then the end of the connection (a timeout would prove nothing).
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await stalled.read_until(marker)
    assert marker not in new_ids(stalled.events)


async def _equals(value: Any, expected: float) -> bool:
    return bool(await value == expected)


# --------------------------------------------------------------------------- 4. closing


async def test_sockets_vanishing_during_broadcasts_do_not_disturb_the_others(
    fast_server: ServerProcess, rest: Rest, clients: list[Any], uid: str
) -> None:
    feed = f"raid:{uid}"
    sockets = await rest.metric("tidings_connected_sockets")
    port = fast_server.port
    raws = await asyncio.gather(*(raw_client(clients, port, [feed]) for _ in range(150)))
    leaving, staying = raws[::2], raws[1::2]
    reader = await py_client(clients, fast_server.url, ["websocket"], [feed])
    log_path = fast_server.log_path
    assert log_path is not None
    log_size = log_path.stat().st_size

    async def vanish() -> None:
        for n, client in enumerate(leaving):
            client.reset()
            if n % 5 == 0:
                await asyncio.sleep(0.002)

    posting = asyncio.gather(*(rest.add(feed, n=n) for n in range(30)))
    await asyncio.gather(vanish(), posting)
    posted = posting.result()
    marker = await rest.add(feed)
    await reader.until_update(marker)
    await asyncio.gather(*(client.read_until(marker) for client in staying))
    for client in staying:
        assert sorted(new_ids(client.events)) == sorted([*posted, marker])
        assert new_ids(client.events)[-1] == marker
    await poll(lambda: _equals(rest.metric("tidings_connected_sockets"), sockets + 76),
               "the vanished sockets to be gone")  # fmt: skip
    logged = log_path.read_bytes()[log_size:].decode(errors="replace")
    assert "Traceback" not in logged and "raised exception" not in logged, logged[-3000:]


# --------------------------------------------------------------------------- 5. protocol edges


async def test_fast_path_protocol_edges(
    fast_server: ServerProcess, rest: Rest, clients: list[Any], uid: str
) -> None:
    sockets = await rest.metric("tidings_connected_sockets")
    raw = await raw_client(clients, fast_server.port, [f"user:{uid}"])
    raw.send("2probe")  # an Engine.IO ping from the client is answered
    assert await raw.reply() == "3probe"
    raw.send('421["no.such.event",{}]')  # an event nobody handles: no ack, as in python-socketio
    raw.send("41")  # Socket.IO disconnect: the server closes the connection
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await raw.reply()

    binary = await raw_client(clients, fast_server.port, [])
    binary.writer.write(bytes((0x82, 0x80 | 3)) + b"\0\0\0\0" + b"abc")  # a binary frame
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await binary.reply()
    attachment = await raw_client(clients, fast_server.port, [])
    attachment.send('451-1["subscribe",{"_placeholder":true,"num":0}]')  # a binary event
    attachment.writer.write(bytes((0x82, 0x80 | 3)) + b"\0\0\0\0" + b"abc")  # its attachment
    answer = await attachment.reply()  # answered as python-socketio does: an error ack
    assert answer.startswith("431[") and json.loads(answer[3:])[0]["ok"] is False, answer
    await attachment.close()
    await poll(lambda: _equals(rest.metric("tidings_connected_sockets"), sockets),
               "the closed sockets to be gone")  # fmt: skip
