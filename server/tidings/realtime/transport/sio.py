"""The `/socket.io/` endpoint: the fast WebSocket path and python-socketio side by side."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeAlias

import socketio
from aiohttp import hdrs, web
from socketio import packet

from ...config import Settings, allowed_origins
from ...runtime.background import spawn
from .dispatch import not_an_event
from .websocket import FastPath

log = logging.getLogger(__name__)
SOCKETIO_PATH = "/socket.io/"
# The one module that imports python-socketio: the rest of Tidings names its parts through these.
Server: TypeAlias = socketio.AsyncServer
ConnectionRefused = socketio.exceptions.ConnectionRefusedError


class SioServer(socketio.AsyncServer):  # type: ignore[misc]  # untyped library
    """python-socketio, doing two things as the fast path does that it does not do itself:
    - an event whose payload is not `[name, ...]` (python-socketio reads `data[0]` and raises,
      or takes the first character of a string for the name) gets the error ack
      `not_an_event()` (dispatch.py);
    - an Engine.IO session (long-polling, or a WebSocket when the fast path is off) that has
      not connected to a namespace `connect_timeout` seconds after its open is closed, pings
      answered or not (node's `connectTimeout`): an open session costs memory and, polling, a
      held request.
    (`_handle_event`, `_handle_eio_connect` and `_handle_eio_disconnect` are python-socketio's;
    pyproject pins python-socketio below 6.)"""

    def __init__(self, *args: Any, connect_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connect_timeout = connect_timeout
        self._deadlines: dict[str, asyncio.TimerHandle] = {}

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        await super()._handle_eio_connect(eio_sid, environ)
        loop = asyncio.get_running_loop()
        self._deadlines[eio_sid] = loop.call_later(self.connect_timeout, self._due, eio_sid)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        deadline = self._deadlines.pop(eio_sid, None)
        if deadline is not None:
            deadline.cancel()
        await super()._handle_eio_disconnect(eio_sid, reason)

    def connected(self, eio_sid: str) -> bool:
        """Whether the Engine.IO session is connected to a namespace (not only trying)."""
        for namespace in list(self.manager.get_namespaces()):
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
            if sid is not None and self.manager.is_connected(sid, namespace):
                return True
        return False

    def _due(self, eio_sid: str) -> None:
        self._deadlines.pop(eio_sid, None)
        if not self.connected(eio_sid):
            log.info("closing session %s: no Socket.IO connect within %ss", eio_sid,
                     self.connect_timeout)  # fmt: skip
            spawn(self.eio.disconnect(eio_sid))

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None,
                            data: Any) -> None:  # fmt: skip
        if isinstance(data, list) and data and isinstance(data[0], str):
            await super()._handle_event(eio_sid, namespace, id, data)
            return
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if id is None or not self.manager.is_connected(sid, namespace):
            return
        answer = self.packet_class(packet.ACK, namespace=namespace, id=id,
                                   data=[not_an_event()])  # fmt: skip
        await self._send_packet(eio_sid, answer)


def create_sio(settings: Settings) -> SioServer:
    """python-socketio, for what the fast path does not serve. Local to this node: cross-node
    delivery is the broadcaster's (broadcaster.py), on Tidings' own Redis link. Every namespace
    is accepted up to its connect handler, which refuses all but "/" as node's server does."""
    origins = allowed_origins(settings)
    return SioServer(
        async_mode="aiohttp",
        namespaces="*",
        cors_allowed_origins="*" if origins is None else origins,
        ping_interval=settings.realtime.ping_interval,
        ping_timeout=settings.realtime.ping_timeout,
        connect_timeout=settings.realtime.connect_timeout,
        logger=False,
        engineio_logger=False,
    )


def mount(
    app: web.Application, sio: socketio.AsyncServer, fast: FastPath | None, compression: bool
) -> None:
    """Route `/socket.io/`: direct WebSocket connections to the fast path (when on), the rest
    (long-polling, upgrades, CORS preflight) to python-socketio's request handler."""

    async def get(request: web.Request) -> web.StreamResponse:
        if fast is not None and fast.accepts(request):
            return await fast.serve(request)
        if not compression and hdrs.SEC_WEBSOCKET_EXTENSIONS in request.headers:
            request = without_compression(request)
        response: web.StreamResponse = await sio.handle_request(request)
        return response

    app.router.add_get(SOCKETIO_PATH, get)
    app.router.add_post(SOCKETIO_PATH, sio.handle_request)
    app.router.add_route("OPTIONS", SOCKETIO_PATH, sio.handle_request)


def without_compression(request: web.Request) -> web.Request:
    """The request without its per-message deflate offer, for python-socketio's WebSocket.

    Browsers always offer it, and aiohttp accepts what is offered; on a room of 10k sockets it
    made delivery 3.4x slower and used 5x the memory. Dropping the offer from the request is the
    documented way to decline it (RFC 7692: the server may ignore the extension). The fast path
    declines it itself (`WebSocketResponse(compress=False)`)."""
    headers = request.headers.copy()
    del headers[hdrs.SEC_WEBSOCKET_EXTENSIONS]
    return request.clone(headers=headers)
