"""The clients of the fast-path tests: REST over aiohttp, python-socketio, and the raw
Engine.IO client of the harness with the Socket.IO calls the tests make."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import socketio

from harness.common import SERVER_TOKEN
from harness.engineio import RawSocket
from tests.support import API_KEY

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
        await poll(now(lambda: activity_id in new_ids(self.updates())), f"event {activity_id}")

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


def now(check: Callable[[], Any]) -> Callable[[], Any]:
    async def wrapped() -> Any:
        return check()

    return wrapped


class RawClient(RawSocket):
    """Engine.IO v4 / Socket.IO v5 over a WebSocket spoken by hand (harness/engineio.py),
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
