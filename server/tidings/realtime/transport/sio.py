"""The `/socket.io/` endpoint: the fast WebSocket path and python-socketio side by side."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeAlias

import socketio
from aiohttp import hdrs, web
from engineio import packet as eio_packet
from socketio import packet

from ...config import Settings, allowed_origins
from ...runtime.background import spawn
from . import protocol as p
from .dispatch import not_an_event
from .websocket import FastPath

log = logging.getLogger(__name__)
SOCKETIO_PATH = "/socket.io/"
TRANSPORTS = ("polling", "websocket")
# The one module that imports python-socketio: the rest of Tidings names its parts through these.
Server: TypeAlias = socketio.AsyncServer
ConnectionRefused = socketio.exceptions.ConnectionRefusedError


class SioServer(socketio.AsyncServer):  # type: ignore[misc]  # untyped library
    """python-socketio, doing what the fast path does that it does not do itself:
    - an event whose payload is not `[name, ...]` (python-socketio reads `data[0]` and raises,
      or takes the first character of a string for the name) gets the error ack
      `not_an_event()` (dispatch.py);
    - an Engine.IO session (long-polling, or a WebSocket when the fast path is off) that has
      not connected to a namespace `connect_timeout` seconds after its open is closed, pings
      answered or not (node's `connectTimeout`): an open session costs memory and, polling, a
      held request;
    - a malformed packet (protocol.py's rules) closes the session, logged in one line, and
      so do a refused connect to "/" and a disconnect from it (`41`);
    - a client's Engine.IO close answers the GET it still holds (`6`), as node's does.
    (`_handle_event`, `_handle_eio_message`, `_handle_eio_connect`, `_handle_eio_disconnect`
    and `_binary_packet` are python-socketio's; pyproject pins python-socketio below 6 and
    python-engineio below 5.)"""

    def __init__(self, *args: Any, connect_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connect_timeout = connect_timeout
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._refused: set[str] = set()  # sessions being closed: what they send is dropped

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        await super()._handle_eio_connect(eio_sid, environ)
        loop = asyncio.get_running_loop()
        self._deadlines[eio_sid] = loop.call_later(self.connect_timeout, self._due, eio_sid)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        deadline = self._deadlines.pop(eio_sid, None)
        if deadline is not None:
            deadline.cancel()
        if reason == self.eio.reason.CLIENT_DISCONNECT:
            self._release_poll(eio_sid)
        self._refused.discard(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)

    def _release_poll(self, eio_sid: str) -> None:
        """A client closed its session (Engine.IO `1`): a GET it still holds is answered at
        once with a noop (`6`), as node's engine.io does, not left to wait out the ping
        interval and then fail 400; a WebSocket's writer ends, so the close frame goes now."""
        session = self.eio.sockets.get(eio_sid)
        if session is not None:
            noop = eio_packet.Packet(eio_packet.NOOP)
            session.queue.put_nowait(None if session.upgraded else noop)

    async def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> None:
        """A packet the fast path would close the connection for (protocol.py's rules, or
        one python-socketio cannot parse) closes the session, logged in one line: python-
        socketio would log a traceback and keep the session open."""
        if eio_sid in self._refused or eio_sid not in self.environ:
            return  # what follows a malformed packet, or a close, in one payload
        try:
            if not isinstance(data, str | bytes):  # python-engineio parsed `4<json>`'s JSON
                raise p.ProtocolError("an Engine.IO message that is not a Socket.IO packet")
            if isinstance(data, bytes) and eio_sid not in self._binary_packet:
                raise p.ProtocolError("a binary message that no binary packet announced")
            head = None
            if isinstance(data, str):
                if eio_sid in self._binary_packet:
                    raise p.ProtocolError("a text packet where an attachment was due")
                head = p.decode(data)
            await super()._handle_eio_message(eio_sid, data)
            if head is not None and head.namespace == p.ROOT and self._leaves(eio_sid, head):
                self._refused.add(eio_sid)
                spawn(self._close(eio_sid))
        except ValueError as exc:  # ProtocolError, and python-socketio's parse errors
            log.info("closing session %s: %s", eio_sid, exc)
            self._binary_packet.pop(eio_sid, None)
            self._refused.add(eio_sid)
            spawn(self._close(eio_sid))

    def _leaves(self, eio_sid: str, head: p.Packet) -> bool:
        """Whether the session ends after this packet to "/", as on the fast path: a connect
        that was refused (`44` went out), or a disconnect (`41`)."""
        if head.type == p.DISCONNECT:
            return True
        return head.type == p.CONNECT and not self.connected(eio_sid)

    async def _close(self, eio_sid: str) -> None:
        """Close the session: Engine.IO's close packet, then (WebSocket) the close frame at
        once rather than when the client answers. python-engineio waits for the close packet
        to be taken; a polling client that never polls again is waited for one heartbeat."""
        session = self.eio.sockets.get(eio_sid)
        try:
            async with asyncio.timeout(self.eio.ping_interval + self.eio.ping_timeout):
                await self.eio.disconnect(eio_sid)
        except TimeoutError:
            pass
        finally:
            self._refused.discard(eio_sid)
        if session is not None and session.upgraded:
            session.queue.put_nowait(None)

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
            spawn(self._close(eio_sid))

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

    sessions = Sessions(sio)

    async def get(request: web.Request) -> web.StreamResponse:
        if fast is not None and fast.accepts(request):
            return await fast.serve(request)
        refused = await sessions.screen(request)
        if refused is not None:
            return refused
        if not compression and hdrs.SEC_WEBSOCKET_EXTENSIONS in request.headers:
            request = without_compression(request)
        response: web.StreamResponse = await sio.handle_request(request)
        return response

    async def post(request: web.Request) -> web.StreamResponse:
        refused = await sessions.screen(request)
        if refused is not None:
            return refused
        response: web.StreamResponse = await sio.handle_request(request)
        return response

    async def other(request: web.Request) -> web.StreamResponse:
        return bad_request(f"method {request.method} is not Engine.IO's")

    app.router.add_get(SOCKETIO_PATH, get)
    app.router.add_post(SOCKETIO_PATH, post)
    app.router.add_route("OPTIONS", SOCKETIO_PATH, sio.handle_request)
    app.router.add_route("*", SOCKETIO_PATH, other)


def bad_request(reason: str) -> web.Response:
    return web.Response(status=400, text=reason)


class Sessions:
    """What node's engine.io answers and python-engineio does not, checked before a request
    reaches python-engineio (its sessions: `eio.sockets`, each with `upgraded`, `upgrading`,
    `closed`, `last_ping` and its packet `queue`):
    - a request whose `transport` is missing or unknown is 400 (python-engineio takes a
      missing one for polling);
    - a polling session whose ping went unanswered for `ping_timeout` is gone: closed, and
      the request is 400 (python-engineio notices only on its next sweep, and meanwhile
      answers 200 with the ping still queued);
    - a closed polling session with nothing left to deliver is 400 at once, not after a GET
      that waits out the ping interval;
    - a second WebSocket for a session that is upgrading or upgraded is accepted and closed
      at once, cleanly (python-engineio answers it HTTP 400, which clients report as an
      error);
    - a POST whose body is not Engine.IO packets (protocol.py's `polling_packets`) closes
      the session and is 400 (python-engineio logs a traceback for many such bodies, and
      answers 200)."""

    def __init__(self, sio: SioServer) -> None:
        self.eio = sio.eio
        # python-engineio reads a POST's body from the request's stream, which `screen` has
        # read already: it is given aiohttp's copy of the body instead
        translate = self.eio._async["translate_request"]

        def translate_request(request: web.Request) -> dict[str, Any]:
            environ: dict[str, Any] = translate(request)
            environ["wsgi.input"] = ReadBody(request)
            return environ

        self.eio._async = {
            **self.eio._async,
            "translate_request": translate_request,
            "websocket": checked_websocket(self.eio._async["websocket"]),
        }

    async def screen(self, request: web.Request) -> web.StreamResponse | None:
        """The answer to a request python-engineio should not see, or None."""
        query = request.query
        if query.get("transport") not in TRANSPORTS:
            return bad_request("Transport unknown")
        sid = query.get("sid")
        if sid is None:  # a handshake
            return None
        session = self.eio.sockets.get(sid)
        if session is None:  # a session python-engineio refuses itself
            return None
        if session.upgraded or session.upgrading:
            if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
                return await closed_websocket(request)
            return None  # python-engineio refuses HTTP requests of an upgraded session
        if self._gone(session):
            await self._end(sid, session, self.eio.reason.PING_TIMEOUT)
            return bad_request(f"Session {sid} is closed")
        if request.method != "POST":
            return None
        if session.closed:  # its GET may still take what is queued; nothing more comes in
            return bad_request(f"Session {sid} is closed")
        if "j" not in query:  # JSONP: python-engineio's own
            try:
                p.polling_packets(await request.read())
            except p.ProtocolError as exc:
                log.info("closing session %s: %s", sid, exc)
                await self._end(sid, session, self.eio.reason.TRANSPORT_ERROR)
                return bad_request(str(exc))
        return None

    async def _end(self, sid: str, session: Any, reason: Any) -> None:
        if not session.closed:
            await session.close(wait=False, abort=True, reason=reason)
        session.queue.put_nowait(None)  # a GET still held ends (with no packets)
        self.eio.sockets.pop(sid, None)

    def _gone(self, session: Any) -> bool:
        pinged = session.last_ping
        if pinged and time.time() - pinged > self.eio.ping_timeout:
            return True
        return bool(session.closed and session.queue.empty())


def checked_websocket(base: type) -> type:
    """python-engineio's WebSocket (an upgraded session's, or any when the fast path is off)
    reading only Engine.IO packets (protocol.py's `check_packet`): python-engineio parses a
    frame outside its error handling, so a malformed one ended the request with a traceback.
    A frame that is not one ends the connection cleanly (the reader's error: python-engineio
    closes the session)."""

    class Checked(base):  # type: ignore[misc]  # python-engineio's, untyped
        async def wait(self) -> str | bytes:
            data: str | bytes = await super().wait()
            if isinstance(data, str):
                try:
                    p.check_packet(data, p.WEBSOCKET_TYPES)
                except p.ProtocolError as exc:
                    log.info("closing an upgraded WebSocket: %s", exc)
                    raise OSError(str(exc)) from exc
            return data

    return Checked


class ReadBody:
    """`wsgi.input` for python-engineio: the request's body, read (once) by aiohttp."""

    def __init__(self, request: web.Request) -> None:
        self.request = request

    async def read(self, size: int = -1) -> bytes:
        return await self.request.read()


async def closed_websocket(request: web.Request) -> web.WebSocketResponse:
    """Accept the WebSocket and close it at once (code 1000), as node's engine.io ends one it
    will not serve after the handshake."""
    ws = web.WebSocketResponse(timeout=1.0, compress=False)
    await ws.prepare(request)
    await ws.close()
    return ws


def without_compression(request: web.Request) -> web.Request:
    """The request without its per-message deflate offer, for python-socketio's WebSocket.

    Browsers always offer it, and aiohttp accepts what is offered; on a room of 10k sockets it
    made delivery 3.4x slower and used 5x the memory. Dropping the offer from the request is the
    documented way to decline it (RFC 7692: the server may ignore the extension). The fast path
    declines it itself (`WebSocketResponse(compress=False)`)."""
    headers = request.headers.copy()
    del headers[hdrs.SEC_WEBSOCKET_EXTENSIONS]
    return request.clone(headers=headers)
