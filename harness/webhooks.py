"""A webhook receiver (aiohttp) that verifies every signature with `standardwebhooks`: in a
thread of its own for the tests (`start`/`stop`), or in the caller's event loop for the
benchmarks (`async with receiver.serving()`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook

from .common import API_KEY, free_port

OnBody = Callable[[list[dict[str, Any]], float], None]

SECRET = "whsec_" + base64.b64encode(b"tidings-firehose-test-secret-32b").decode()


@dataclass
class Delivery:
    id: str
    body: list[dict[str, Any]]
    held: bool | None  # every new activity was in its feed at receipt (None: not checked)
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """POST / : verify the signature, record the delivery, answer `status` (settable: 200, 503,
    410, or 0 to hang until the sender's timeout). With `check` set to (Tidings' URL, a server
    token), each new activity is looked up in its feed before answering."""

    def __init__(self, secret: str = SECRET, on_body: OnBody | None = None) -> None:
        self.webhook = Webhook(secret)
        self.on_body = on_body  # called with each verified body and its time.time()
        self.port = free_port()
        self.status = 200
        self.check: tuple[str, str] | None = None
        self.deliveries: list[Delivery] = []
        self.attempts: list[tuple[str, int]] = []  # (webhook-id, status answered)
        self.bad_signatures = 0
        self.hanging = 0  # requests held open now (status 0)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Receiver]:
        """The receiver in the running event loop (instead of a thread of its own)."""
        await self._start()
        try:
            yield self
        finally:
            await self._stop()

    async def _start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._session = aiohttp.ClientSession()

    async def _stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        at = time.time()
        try:
            body = self.webhook.verify(raw, dict(request.headers))
        except Exception:
            self.bad_signatures += 1
            return web.Response(status=400, text="bad signature")
        status = self.status
        msg_id = request.headers["webhook-id"]
        if status == 0:  # hang (the sender times out, or dies) until the status changes
            self.hanging += 1
            while self.status == 0:  # noqa: ASYNC110 (set from the test thread)
                await asyncio.sleep(0.05)
            self.hanging -= 1
            status = self.status
        self.attempts.append((msg_id, status))
        if status != 200:
            return web.Response(status=status)
        if self.on_body is not None:  # the caller keeps what it needs
            self.on_body(body, at)
            return web.Response(status=204)
        held = await self._held(body) if self.check else None
        self.deliveries.append(Delivery(msg_id, body, held))
        return web.Response(status=204)

    async def _held(self, body: list[dict[str, Any]]) -> bool:
        assert self.check is not None and self._session is not None
        url, token = self.check
        headers = {"Authorization": token, "stream-auth-type": "jwt"}
        for element in body:
            wanted = {a["id"] for a in element.get("new", ())}  # a reaction event has none
            if not wanted:
                continue
            path = element["feed"].replace(":", "/")
            async with self._session.get(
                f"{url}/api/v1.0/feed/{path}/", params={"api_key": API_KEY, "limit": "100"},
                headers=headers,
            ) as response:  # fmt: skip
                found = {a["id"] for a in (await response.json())["results"]}
            if not wanted <= found:
                return False
        return True

    def pairs(self, with_new: bool = True) -> set[tuple[str, str]]:
        """Every (feed, activity id) delivered (in `new`, or in `deleted`)."""
        key = "new" if with_new else "deleted"
        return {
            (e["feed"], a["id"] if with_new else a)
            for d in list(self.deliveries)
            for e in d.body
            if "feed" in e
            for a in e[key]
        }

    def reactions(self) -> list[tuple[str, dict[str, Any]]]:
        """Every reaction event delivered (an element with a `type`), with its webhook-id, in
        the order received."""
        return [(d.id, e) for d in list(self.deliveries) for e in d.body if "type" in e]
