"""What the many-node tests share: REST and Socket.IO clients of one node, waits, set-up writes
and (from the harness) a cluster of three nodes on one database and one Redis."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import socketio
from pymongo import AsyncMongoClient
from pymongo.database import Database

from harness.cluster import CLUSTER_ENV, Cluster, all_running, run_cluster, start_all
from harness.common import API_KEY, API_SECRET, SERVER_CLAIMS, SERVER_TOKEN
from harness.follows import add_followers_bulk
from harness.server import ServerProcess
from harness.store import Store
from tests import node_client

__all__ = [
    "CLUSTER_ENV", "DEGRADED", "READY", "SERVER_CLAIMS", "SERVER_TOKEN", "WAIT", "Cluster",
    "NodeSubscriber", "Rest", "Sub", "add_followers", "all_running", "entry_count", "has_new",
    "poll", "run_cluster", "sign", "start_all", "subscriber", "vm_rss_kb", "wait_ready",
]  # fmt: skip

WAIT = 15.0  # bound of every wait for an event, an ack or a state, seconds
Doc = dict[str, Any]
Event = dict[str, Any]
Predicate = Callable[[Any], bool]


def sign(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, API_SECRET, algorithm="HS256")


# --------------------------------------------------------------------------- REST


class Rest:
    """Stream's REST dialect over aiohttp against one node, with the server token."""

    def __init__(self, session: aiohttp.ClientSession, node: ServerProcess) -> None:
        self.session, self.node = session, node

    @property
    def url(self) -> str:
        return self.node.url

    def _path(self, feed: str) -> str:
        slug, _, user_id = feed.partition(":")
        return f"{self.url}/api/v1.0/feed/{slug}/{user_id}/"

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        async with self.session.request(
            method,
            path,
            params={"api_key": API_KEY, **params},
            json=body,
            headers={"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"},
            timeout=aiohttp.ClientTimeout(total=WAIT),
        ) as response:
            answer = await response.json()
            assert response.status in (200, 201), (method, path, response.status, answer)
            return answer

    async def add(self, feed: str, **fields: Any) -> str:
        activity = {"actor": "someone", "verb": "post", "object": f"o:{uuid.uuid4().hex[:6]}"}
        answer = await self.call("POST", self._path(feed), {**activity, **fields})
        return str(answer["id"])

    async def read_ids(self, feed: str, limit: int = 100) -> list[str]:
        answer = await self.call("GET", self._path(feed), limit=str(limit))
        return [a["id"] for a in answer["results"]]

    async def follow(self, source: str, target: str) -> None:
        body = {"target": target, "activity_copy_limit": 0}
        await self.call("POST", self._path(source) + "follows/", body)

    async def readyz(self) -> tuple[int, Doc]:
        async with self.session.get(
            self.url + "/readyz", timeout=aiohttp.ClientTimeout(total=WAIT)
        ) as response:
            return response.status, await response.json()

    async def metric(self, name: str) -> float:
        """The value of an unlabelled Prometheus sample of this node."""
        async with self.session.get(
            self.url + "/metrics", timeout=aiohttp.ClientTimeout(total=WAIT)
        ) as response:
            text = await response.text()
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        assert found, f"no {name} in /metrics"
        return float(found.group(1))


async def poll(
    check: Callable[[], Any], what: str, within: float = WAIT, every: float = 0.05
) -> Any:
    """Await `check()` until it answers something truthy (bounded), every `every` seconds (a
    check that asks the store much should not ask often: it slows what it waits for)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {within}s waiting for {what} (last: {last!r})")


READY = {"status": "ok", "store": "ok", "redis": "ok", "presence": "cluster", "limits": "cluster"}
DEGRADED = {"status": "degraded", "store": "ok", "redis": "down", "presence": "local",
            "limits": "local"}  # fmt: skip


async def wait_ready(rests: list[Rest], body: Doc) -> None:
    for rest in rests:

        async def state(rest: Rest = rest) -> bool:
            return await rest.readyz() == (200, body)

        await poll(state, f"/readyz of {rest.url} to answer 200 {body}")


# --------------------------------------------------------------------------- python client


class Sub:
    """A python-socketio AsyncClient recording every server event as (name, data)."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.disconnected: list[Any] = []
        self._changed = asyncio.Event()
        self.sio.on("*", self._any)
        self.sio.on("disconnect", self._disconnect)

    async def _any(self, name: str, data: Any = None) -> None:
        self.events.append((name, data))
        self._changed.set()

    async def _disconnect(self, reason: Any = None) -> None:
        self.disconnected.append(reason)
        self._changed.set()

    async def connect(self, url: str, jwt_token: str = SERVER_TOKEN) -> Sub:
        await self.sio.connect(
            url, auth={"token": jwt_token}, transports=["websocket"], wait_timeout=WAIT
        )
        return self

    async def call(self, event: str, data: Any) -> Doc:
        return await self.sio.call(event, data, timeout=WAIT)  # type: ignore[no-any-return]

    async def subscribe(self, feed: str, since: str | None = None) -> Doc:
        return await self.call("subscribe", {"feed": feed} if since is None else
                               {"feed": feed, "since": since})  # fmt: skip

    def named(self, name: str, predicate: Predicate = lambda _: True) -> list[Any]:
        return [data for n, data in self.events if n == name and predicate(data)]

    async def until(self, check: Callable[[], Any], what: str, within: float = WAIT) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            found = check()
            if found:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {within}s; got {self.events[-20:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for(self, name: str, predicate: Predicate = lambda _: True,
                       what: str = "") -> Any:  # fmt: skip
        found = await self.until(lambda: self.named(name, predicate), f"{name} {what}")
        return found[0]

    async def wait_update(self, activity_id: str, what: str = "") -> Event:
        return await self.wait_for("feed.update", has_new(activity_id), f"of {activity_id} {what}")

    def updates_of(self, activity_id: str) -> list[Event]:
        return self.named("feed.update", has_new(activity_id))

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


def has_new(activity_id: str) -> Predicate:
    return lambda e: any(a.get("id") == activity_id for a in e.get("new", []))


async def subscriber(
    created: list[Sub], node: ServerProcess, feeds: list[str], jwt_token: str = SERVER_TOKEN
) -> Sub:
    sub = Sub()
    created.append(sub)
    await sub.connect(node.url, jwt_token)
    for feed in feeds:
        ack = await sub.subscribe(feed)
        assert ack == {"ok": True, "feed": feed, "missed": [], "more": False}, ack
    return sub


# --------------------------------------------------------------------------- node client


class NodeSubscriber(node_client.NodeSubscriber):
    """The npm client with the server token, waiting for updates by activity id."""

    def __init__(self, url: str, feeds: list[str]) -> None:
        super().__init__(url, SERVER_TOKEN, feeds)

    async def update(self, activity_id: str) -> Event:
        return await self.event(has_new(activity_id), f"feed.update of {activity_id}")

    def updates_of(self, activity_id: str) -> list[Event]:
        return self.events(has_new(activity_id))


# --------------------------------------------------------------------------- store helpers


async def add_followers(store: Store, db: Database[Doc], target: str, feeds: list[str]) -> None:
    """`feeds` follow `target`, in order (the order a fanout job pages them in), written by the
    store's bulk set-up helper (follows, follower chunks, follower count)."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(store.url, tz_aware=True)
    try:
        assert await add_followers_bulk(client[db.name], target, feeds) == len(feeds)
    finally:
        await client.close()


def entry_count(db: Database[Doc], activity_id: str) -> int:
    return db["feed_entries"].count_documents({"activity_id": activity_id})


def vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
