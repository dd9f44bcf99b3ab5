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
import re
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from tests.integration.conftest import SERVER_TOKEN, token
from tests.raw_socket import RawSocket
from tests.support import API_KEY, ServerProcess, Store

WAIT = 15.0  # bound of every wait, seconds
Event = dict[str, Any]


# --------------------------------------------------------------------------- REST and metrics


class Rest:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        async with self.session.request(
            method, self.url + path, json=body, params={"api_key": API_KEY, **params},
            headers={"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"},
            timeout=aiohttp.ClientTimeout(total=WAIT),
        ) as response:  # fmt: skip
            answer = await response.json()
            assert response.status in (200, 201), (method, path, response.status, answer)
            return answer

    async def add(self, feed: str, **fields: Any) -> str:
        slug, _, user = feed.partition(":")
        activity = {"actor": "a", "verb": "post", "object": f"o:{uuid.uuid4().hex[:6]}", **fields}
        return str((await self.call("POST", f"/api/v1.0/feed/{slug}/{user}/", activity))["id"])

    async def follow(self, source: str, target: str) -> None:
        slug, _, user = source.partition(":")
        body = {"target": target, "activity_copy_limit": 0}
        await self.call("POST", f"/api/v1.0/feed/{slug}/{user}/follows/", body)

    async def metric(self, name: str, labels: str = "") -> float:
        async with self.session.get(self.url + "/metrics") as response:
            text = await response.text()
        found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0


async def poll(check: Callable[[], Any], what: str, within: float = WAIT) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


def new_ids(events: list[Event]) -> list[str]:
    return [a["id"] for e in events for a in e.get("new", [])]


# --------------------------------------------------------------------------- clients


class PyClient:
    """python-socketio's AsyncClient, recording every event in arrival order."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.connect_errors: list[Any] = []
        self.sio.on("*", self._any)
        self.sio.on("connect_error", self._connect_error)

    async def _any(self, name: str, data: Any = None) -> None:
        self.events.append((name, data))

    async def _connect_error(self, data: Any = None) -> None:
        self.connect_errors.append(data)

    async def connect(self, url: str, transports: list[str] | None,
                      jwt_token: str | None = SERVER_TOKEN, **kw: Any) -> PyClient:  # fmt: skip
        auth = {"token": jwt_token} if jwt_token else None
        await self.sio.connect(url, auth=auth, transports=transports, wait_timeout=WAIT, **kw)
        return self

    async def call(self, event: str, data: Any) -> dict[str, Any]:
        return await self.sio.call(event, data, timeout=WAIT)  # type: ignore[no-any-return]

    def updates(self) -> list[Event]:
        return [data for name, data in self.events if name == "feed.update"]

    async def until_update(self, activity_id: str) -> None:
        await poll(_now(lambda: activity_id in new_ids(self.updates())), f"event {activity_id}")

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


def _now(check: Callable[[], Any]) -> Callable[[], Any]:
    async def wrapped() -> Any:
        return check()

    return wrapped


class RawClient(RawSocket):
    """Engine.IO v4 / Socket.IO v5 over a WebSocket spoken by hand (tests/raw_socket.py),
    connected, recording the `feed.update` events it reads.

    `rcvbuf` shrinks the kernel receive buffer, and the stream buffers at most a few KB: a test
    can stop reading and the server's sends back up at once."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.events: list[Event] = []
        self.closed = False

    @classmethod
    async def connect(cls, port: int, jwt_token: str = SERVER_TOKEN,
                      rcvbuf: int | None = None) -> RawClient:  # fmt: skip
        client = await cls.open_(port, rcvbuf)
        assert client.open["upgrades"] == [], client.open
        client.send("40" + json.dumps({"token": jwt_token}))
        connected = await client.packet()
        assert connected.startswith("40{") and "sid" in json.loads(connected[2:]), connected
        return client

    async def reply(self, events_too: bool = False) -> str:
        """The next packet that is not a ping (answered) nor, unless `events_too`, an event
        (recorded either way)."""
        while True:
            opcode, payload = await asyncio.wait_for(self.frame(), WAIT)
            if opcode == 0x8:
                self.closed = True
                raise ConnectionError("closed by the server")
            text = payload.decode()
            if text == "2":
                self.send("3")
                continue
            if text.startswith('42["feed.update"'):
                self.events.append(json.loads(text[2:])[1])
                if not events_too:
                    continue
            return text

    async def subscribe(self, feed: str) -> dict[str, Any]:
        self.send("420" + json.dumps(["subscribe", {"feed": feed}]))
        answer = await self.reply()
        assert answer.startswith("430["), answer
        return dict(json.loads(answer[3:])[0])

    async def read_until(self, activity_id: str, within: float = WAIT) -> None:
        """Read (and record) until the event of `activity_id` has come."""

        async def reading() -> None:
            while activity_id not in new_ids(self.events):
                await self.reply(events_too=True)

        await asyncio.wait_for(reading(), within)

    def reset(self) -> None:
        """Vanish with a TCP reset, as a phone that loses its network does."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fast_server(store: Store, workdir: Path) -> Iterator[ServerProcess]:
    """A server of its own (its counters are this module's): tiny transport buffers, so that
    a socket that stops reading backs up at once, and a small queue bound."""
    env = {
        "TIDINGS_REALTIME_WRITE_BUFFER_BYTES": "1024",
        "TIDINGS_REALTIME_MAX_QUEUE_PACKETS": "40",
    }
    process = ServerProcess(store.url, env=env, log_path=workdir / "fast-path.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def pings_server(store: Store, workdir: Path) -> Iterator[ServerProcess]:
    """Heartbeats every second: python-socketio's long-polling client ends its polls (and so
    its connects and disconnects) at the ping interval."""
    env = {"TIDINGS_REALTIME_PING_INTERVAL": "1", "TIDINGS_REALTIME_PING_TIMEOUT": "2"}
    process = ServerProcess(store.url, env=env, log_path=workdir / "fast-path-pings.log").start()
    yield process
    process.stop()


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


async def py_client(created: list[Any], url: str, transports: list[str] | None,
                    feeds: list[str]) -> PyClient:  # fmt: skip
    client = PyClient()
    created.append(client)
    await client.connect(url, transports)
    for feed in feeds:
        assert (await client.call("subscribe", {"feed": feed}))["ok"] is True
    return client


async def raw_client(created: list[Any], port: int, feeds: list[str], **kw: Any) -> RawClient:
    client = await RawClient.connect(port, **kw)
    created.append(client)
    for feed in feeds:
        assert (await client.subscribe(feed))["ok"] is True
    return client


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
    await poll(_now(lambda: upgraded.sio.transport() == "websocket"), "the upgrade")
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
