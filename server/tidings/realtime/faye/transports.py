"""`/faye` on the wire, as the faye server's node adapter serves it:

- WebSocket (`GET` with an upgrade): each frame one message or an array of them, each answered
  by a frame of replies; a held connect does not block the frames after it;
- long-polling: `POST` with a JSON body, or a form with `message=`, answered with the replies;
- callback-polling: `GET ?message=…&jsonp=…`, answered with a script calling `jsonp`;
- `OPTIONS`: the CORS preflight of cross-origin long-polling.
A request that holds no Bayeux message is answered 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

from aiohttp import WSCloseCode, WSMsgType, hdrs, web

from ...config import Settings, allowed_origins
from . import protocol as p
from .server import Bayeux

log = logging.getLogger(__name__)
PATHS = ("/faye", "/faye/")
JSONP_CALLBACK = "jsonpcallback"  # faye's default callback name


class FayeEndpoint:
    def __init__(self, settings: Settings, bayeux: Bayeux) -> None:
        self.bayeux = bayeux
        self._origins = allowed_origins(settings)
        self._sockets: set[web.WebSocketResponse] = set()

    async def running(self, app: web.Application) -> AsyncIterator[None]:
        """A cleanup context: the sweep of forgotten clients; at shutdown every client is
        forgotten, which answers the connects held open."""
        sweeper = asyncio.create_task(self.bayeux.clients.run())
        yield
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        self.bayeux.clients.close()

    async def goodbye(self, app: web.Application) -> None:
        """On SIGTERM: every client of this node is forgotten (its held connect answers at
        once) and every WebSocket closed (1001), so that the shutdown does not wait for them;
        the clients hand-shake again with another node and subscribe again."""
        self.bayeux.clients.close()
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY)

    def mount(self, app: web.Application) -> None:
        for path in PATHS:
            app.router.add_get(path, self.get)
            app.router.add_post(path, self.post)
            app.router.add_route("OPTIONS", path, self.options)

    # ------------------------------------------------------------------------------ polling

    async def post(self, request: web.Request) -> web.StreamResponse:
        raw = await request.content.read(p.MAX_REQUEST_BYTES + 1)
        if request.content_type != "application/json":
            form = _form(raw)
            if form is None:
                return self._bad(request, "a form request carries `message`")
            raw = form.encode()
        return await self._answer(request, raw, None)

    async def get(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
            return await self.websocket(request)
        message = request.query.get("message")
        if message is None:
            return self._bad(request, "a request carries `message`")
        callback = request.query.get("jsonp", JSONP_CALLBACK)
        if not p.JSONP_RE.match(callback) or len(callback) > 64:
            return self._bad(request, "invalid JSON-P callback")
        return await self._answer(request, message.encode(), callback)

    async def options(self, request: web.Request) -> web.StreamResponse:
        headers = self._cors(request)
        headers.update({
            "Access-Control-Allow-Headers":
                "Accept, Authorization, Content-Type, Pragma, X-Requested-With",
            "Access-Control-Allow-Methods": "POST, GET",
            "Access-Control-Max-Age": "86400",
        })  # fmt: skip
        return web.Response(headers=headers)

    async def _answer(
        self, request: web.Request, raw: bytes, callback: str | None
    ) -> web.StreamResponse:
        try:
            messages = p.parse_request(raw)
        except p.BadRequest as exc:
            return self._bad(request, str(exc))
        replies = await self.bayeux.process(messages)
        headers = {"Cache-Control": "no-cache, no-store", "X-Content-Type-Options": "nosniff"}
        headers.update(self._cors(request))
        if callback is None:
            return web.json_response(replies, headers=headers)
        headers["Content-Disposition"] = "attachment; filename=f.txt"
        return web.Response(
            text=p.jsonp_body(callback, replies), content_type="text/javascript", headers=headers
        )

    def _bad(self, request: web.Request, why: str) -> web.Response:
        return web.Response(status=400, text=f"Bad request: {why}", headers=self._cors(request))

    def _cors(self, request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin")
        if origin is None or (self._origins is not None and origin not in self._origins):
            return {}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                "Vary": "Origin"}  # fmt: skip

    # ---------------------------------------------------------------------------- websocket

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=p.MAX_REQUEST_BYTES)
        await ws.prepare(request)
        pending: set[asyncio.Task[None]] = set()
        self._sockets.add(ws)
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    break
                try:
                    messages = p.parse_request(frame.data)
                except p.BadRequest:
                    break
                task = asyncio.ensure_future(self._reply(ws, messages))
                pending.add(task)
                task.add_done_callback(pending.discard)
        finally:
            for task in pending:  # its held connect: the client reconnects with its clientId
                task.cancel()
            for task in list(pending):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._sockets.discard(ws)
            await ws.close()
        return ws

    async def _reply(self, ws: web.WebSocketResponse, messages: list[p.Message]) -> None:
        replies = await self.bayeux.process(messages)
        if replies and not ws.closed:
            with contextlib.suppress(ConnectionError):
                await ws.send_json(replies)


def _form(raw: bytes) -> str | None:
    """`message` of a form-encoded body."""
    values = parse_qs(raw.decode(errors="replace")).get("message")
    return values[0] if values else None
