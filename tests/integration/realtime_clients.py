"""The clients of the real-time tests: Stream's REST dialect over aiohttp and a python-socketio
subscriber that records every event."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import socketio

from harness.common import SERVER_TOKEN
from tests.support import API_KEY

WAIT = 15.0  # bound of every wait for an event or an ack, seconds
Event = dict[str, Any]
Predicate = Callable[[Event], bool]


# --------------------------------------------------------------------------- REST helper


class Rest:
    """Stream's REST dialect over aiohttp, with the server token unless told otherwise."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    def _path(self, feed: str, *tail: str) -> str:
        slug, _, user_id = feed.partition(":")
        return f"{self.url}/api/v1.0/feed/{slug}/{user_id}/" + "".join(f"{t}/" for t in tail)

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        jwt_token: str = SERVER_TOKEN,
    ) -> Any:
        async with self.session.request(
            method,
            path,
            params={"api_key": API_KEY, **(params or {})},
            json=body,
            headers={"Authorization": jwt_token, "stream-auth-type": "jwt"},
            timeout=aiohttp.ClientTimeout(total=WAIT),
        ) as response:
            answer = await response.json()
            assert response.status in (200, 201), (method, path, response.status, answer)
            return answer

    async def add(self, feed: str, **fields: Any) -> dict[str, Any]:
        activity = {"actor": "someone", "verb": "post", "object": f"o:{uuid.uuid4().hex[:6]}"}
        answer = await self.call("POST", self._path(feed), {**activity, **fields})
        answer.pop("duration")  # of the HTTP answer, not of the activity
        return dict(answer)

    async def add_many(self, feed: str, count: int) -> list[dict[str, Any]]:
        activities = [
            {"actor": "someone", "verb": "post", "object": f"o:{i}"} for i in range(count)
        ]
        answer = await self.call("POST", self._path(feed), {"activities": activities})
        return list(answer["activities"])

    async def read(self, feed: str, limit: int = 100) -> list[dict[str, Any]]:
        answer = await self.call("GET", self._path(feed), params={"limit": str(limit)})
        return list(answer["results"])

    async def remove(self, feed: str, activity_id: str) -> None:
        await self.call("DELETE", self._path(feed, activity_id))

    async def remove_foreign(self, feed: str, foreign_id: str) -> None:
        await self.call("DELETE", self._path(feed, foreign_id), params={"foreign_id": "1"})

    async def follow(self, source: str, target: str) -> None:
        await self.call(
            "POST", self._path(source, "follows"), {"target": target, "activity_copy_limit": 0}
        )


# --------------------------------------------------------------------------- Python client


class PySubscriber:
    """A python-socketio AsyncClient that records every `feed.update` it gets."""

    def __init__(self, on_event: Callable[[Event], Awaitable[None]] | None = None) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[Event] = []
        self.connect_errors: list[Any] = []
        self._changed = asyncio.Event()
        self._on_event = on_event
        self.sio.on("feed.update", self._update)
        self.sio.on("connect_error", self._connect_error)

    async def _update(self, data: Event) -> None:
        if self._on_event is not None:
            await self._on_event(data)
        self.events.append(data)
        self._changed.set()

    async def _connect_error(self, data: Any = None) -> None:
        self.connect_errors.append(data)

    async def connect(self, url: str, jwt_token: str | None) -> None:
        auth = {"token": jwt_token} if jwt_token is not None else None
        await self.sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=WAIT)

    async def subscribe(self, feed: Any, since: Any = None, **extra: Any) -> dict[str, Any]:
        payload = {"feed": feed, **extra} if since is None else {"feed": feed, "since": since}
        return await self.sio.call("subscribe", payload, timeout=WAIT)  # type: ignore[no-any-return]

    async def unsubscribe(self, feed: Any) -> dict[str, Any]:
        return await self.sio.call("unsubscribe", {"feed": feed}, timeout=WAIT)  # type: ignore[no-any-return]

    def matching(self, predicate: Predicate) -> list[Event]:
        return [e for e in self.events if predicate(e)]

    async def wait_for(self, predicate: Predicate, what: str) -> Event:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            found = self.matching(predicate)
            if found:
                return found[0]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no feed.update {what} within {WAIT}s; got {self.events}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
