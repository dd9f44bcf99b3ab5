"""The fast path: direct WebSocket connections (`GET /socket.io/?EIO=4&transport=websocket`, no
`sid`), served with Tidings' own Engine.IO v4 / Socket.IO v5 (protocol.py) on aiohttp's
`WebSocketResponse`.

Per connection: aiohttp's handler task (which reads), one `FastConn`, nothing else: no writer
task, no timer (the heartbeat is one timer for all, see heartbeat.py). The open packet goes out
with the 101 answer, in one write; every frame after it goes through the hub (hub.py), so acks,
pings and events keep their order per socket.
Long-polling, polling→WebSocket upgrades and (with `websocket_compression`) deflating clients go
to python-socketio instead (sio_peers.py), so every official client works either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import replace
from typing import Any

from aiohttp import WSMsgType, hdrs, web

from ...domain.errors import TidingsError
from ...ratelimit import client_address
from . import protocol as p
from .dispatch import Dispatcher, not_an_event
from .heartbeat import Heartbeat
from .hub import FastConn, Hub
from .peers import Peer

log = logging.getLogger(__name__)
MAX_PAYLOAD = 1_000_000  # largest message a client may send (python-engineio's default too)
CONNECT_TIMEOUT = 45.0  # seconds for a new connection to send its Socket.IO connect
MAX_PING_ECHO = 64  # a client's ping payload echoed in the pong (`2probe`); longer: closed
DISCONNECT_FRAME = p.text_frame(p.encode(p.DISCONNECT))
PONG_FRAME = p.text_frame(p.PONG)


def new_sid() -> str:
    return secrets.token_urlsafe(12)


class Upgrade(web.WebSocketResponse):
    """aiohttp's WebSocket answer with its 101 headers held back until the first write (the
    open packet): the two go out in one `send`, with no TCP_CORK calls around them.

    `_send_headers_immediately` is how aiohttp's own FileResponse does the same (the headers
    ride with the first chunk of the body); an aiohttp that ignored it would send the headers
    at once and the open packet after them: the same bytes in the same order, two writes."""

    _send_headers_immediately = False


class FastPath:
    def __init__(
        self, hub: Hub, heartbeat: Heartbeat, handlers: Dispatcher, ping_interval: float,
        ping_timeout: float, origins: list[str] | None, compression: bool,
        connect_timeout: float = CONNECT_TIMEOUT, trust_forwarded_for: bool = False,
    ) -> None:  # fmt: skip
        """`trust_forwarded_for`: a client's address is the last of `X-Forwarded-For`."""
        self.hub, self.heartbeat, self.handlers = hub, heartbeat, handlers
        self.trust_forwarded_for = trust_forwarded_for
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.connect_timeout = connect_timeout
        self.origins = origins  # None: any origin
        self.compression = compression
        # the open packet around its sid (URL-safe base64: no JSON escape), encoded once
        opening = p.open_packet("SID", ping_interval, ping_timeout, MAX_PAYLOAD)
        self._open_head, _, self._open_tail = opening.partition("SID")
        self._sockets: dict[FastConn, web.WebSocketResponse] = {}
        self._closing: dict[FastConn, asyncio.Future[bool]] = {}  # goodbyes under way

    def accepts(self, request: web.Request) -> bool:
        """A direct WebSocket connection this path serves (else python-socketio's)."""
        query = request.query
        if request.method != "GET" or "sid" in query or query.get("transport") != "websocket":
            return False
        if query.get("EIO") != "4" or request.headers.get(hdrs.UPGRADE, "").lower() != "websocket":
            return False
        offered = request.headers.get(hdrs.SEC_WEBSOCKET_EXTENSIONS, "")
        return not (self.compression and "permessage-deflate" in offered)

    # ------------------------------------------------------------------------------ Outlet

    async def emit(self, peer: Peer, event: str, data: Any) -> None:
        assert isinstance(peer, FastConn)
        self.hub.send(peer, p.text_frame(p.event(event, data)))

    async def disconnect(self, peer: Peer) -> None:
        """A server-side Socket.IO disconnect: `41`, then the WebSocket is closed."""
        assert isinstance(peer, FastConn)
        self.handlers.disconnected(peer)
        self.goodbye(peer, DISCONNECT_FRAME)

    def goodbye(self, conn: FastConn, last: bytes = b"") -> None:
        """End a connection cleanly: `last` (a Socket.IO packet's frame), then the WebSocket
        closing handshake (aiohttp's `close()`: a close frame, then it reads until the client's,
        so nothing the client still sends makes the kernel answer with a reset).

        `last` is written at once, ahead of what is queued for the socket (a backlogged one
        too: the queue is dropped, the socket recovers through `since`), so the client always
        learns why it was closed; the socket leaves every room and the hub at once. One that
        reads nothing meanwhile is aborted after `ping_timeout`."""
        transport, ws = conn.transport, self._sockets.get(conn)
        if transport.is_closing() or ws is None or conn in self._closing:
            return
        self.hub.remove(conn)
        for task in list(conn.tasks or ()):
            task.cancel()
        if last:
            transport.write(last)
        self._closing[conn] = asyncio.ensure_future(ws.close())
        asyncio.get_running_loop().call_later(self.ping_timeout, transport.abort)

    # ------------------------------------------------------------------------- a connection

    async def serve(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin and self.origins is not None and origin not in self.origins:
            return web.Response(status=400, text=f"{origin} is not an accepted origin.")
        ws = Upgrade(compress=False, heartbeat=None, max_msg_size=MAX_PAYLOAD)
        transport = request.transport
        if transport is None:  # the client left during the handshake
            return ws
        writer = await ws.prepare(request)
        try:  # the 101 answer and the open packet: one write
            opening = self._open_head + new_sid() + self._open_tail
            await writer.write(p.text_frame(opening))  # small: never drains
        except ConnectionResetError:  # the client left during the handshake
            return ws
        forwarded = request.headers.get("X-Forwarded-For")
        address = client_address(request.remote, forwarded, self.trust_forwarded_for)
        conn = FastConn(new_sid(), transport, self, address)
        self.hub.add(conn)
        self.heartbeat.assign(conn)
        self._sockets[conn] = ws
        try:
            await self._read(conn, ws)
        except TimeoutError:
            log.info("closing socket %s: no Socket.IO connect within %ss", conn.sid,
                     self.connect_timeout)  # fmt: skip
        except p.ProtocolError as exc:
            log.info("closing socket %s: %s", conn.sid, exc)
        finally:
            for task in list(conn.tasks or ()):
                task.cancel()
            self.handlers.disconnected(conn)
            self.hub.remove(conn)
            del self._sockets[conn]
        closing = self._closing.pop(conn, None)
        if closing is not None:  # a goodbye: its closing handshake ends the connection
            with contextlib.suppress(Exception):
                await closing
        elif not ws.closed and not transport.is_closing():
            await ws.close()
        return ws

    async def _read(self, conn: FastConn, ws: web.WebSocketResponse) -> None:
        """Read frames until the connection ends. Events are handled in tasks of their own
        (at most `max_events_in_flight` per socket), so a slow one never keeps this loop from
        reading the pongs behind it. Until the Socket.IO connect, a fixed deadline counts from
        the open (as node's `connectTimeout`): pings do not extend it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        while True:
            timeout = None
            if conn.grant is None:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    raise TimeoutError
            message = await ws.receive(timeout)
            conn.alive = True
            if message.type is WSMsgType.BINARY and conn.attachments:
                self._attachment(conn)  # attachments of a binary packet: dropped unread
                continue
            if message.type is not WSMsgType.TEXT:
                if message.type is WSMsgType.BINARY:
                    raise p.ProtocolError("a binary frame that no binary packet announced")
                return  # closed
            text: str = message.data
            if conn.attachments:
                raise p.ProtocolError("a text frame where an attachment was due")
            kind = text[:1]
            if kind == p.MESSAGE:
                if not self._packet(conn, text[1:]):
                    return
            elif kind == p.PING:  # the upgrade probe (`2probe`); answered as Engine.IO does
                if len(text) > 1 + MAX_PING_ECHO:
                    raise p.ProtocolError(f"a ping of {len(text)} characters")
                self.hub.send(conn, p.text_frame(p.PONG + text[1:]))
            elif kind == p.CLOSE:
                return
            elif kind not in (p.PONG, p.NOOP):
                raise p.ProtocolError(f"unexpected Engine.IO packet {kind!r}")

    def _packet(self, conn: FastConn, text: str) -> bool:
        """Handle one Socket.IO packet; False to close the connection (raises ProtocolError
        for one that is malformed). Before the connect, only a CONNECT's payload is parsed."""
        packet, pos = p.decode_head(text)
        connecting = packet.type == p.CONNECT
        if connecting or conn.grant is not None:
            if pos < len(text):
                packet = replace(packet, data=p.decode_payload(text[pos:]))
        elif packet.type in (p.BINARY_EVENT, p.BINARY_ACK):
            conn.attachments = packet.attachments  # read and dropped
            return True
        if packet.namespace != p.ROOT:
            if connecting:  # as socket.io does for a namespace it does not serve
                refusal = {"message": "Invalid namespace"}
                self.hub.send(conn, p.text_frame(p.encode(p.CONNECT_ERROR, refusal,
                                                          packet.namespace)))  # fmt: skip
            return True
        if connecting:
            if conn.grant is None:
                return self._connect(conn, packet.data)
        elif conn.grant is None:
            pass  # no namespace joined: ignored, as socket.io does
        elif packet.type == p.EVENT:
            self._event(conn, packet)
        elif packet.type == p.BINARY_EVENT:
            conn.attachments = packet.attachments
            conn.binary = packet
        elif packet.type == p.BINARY_ACK:
            conn.attachments = packet.attachments  # Tidings asks no acks: dropped
        elif packet.type == p.DISCONNECT:
            return False
        return True

    def _attachment(self, conn: FastConn) -> None:
        conn.attachments -= 1
        if conn.attachments == 0 and conn.binary is not None:
            packet, conn.binary = conn.binary, None
            self._event(conn, replace(packet, data=p.without_placeholders(packet.data)))

    def _connect(self, conn: FastConn, auth: Any) -> bool:
        """Authenticate; a refused connect is answered `44{message, data}` and closed (the
        official client closes it too, once its only namespace was refused)."""
        try:
            grant = self.handlers.authenticate(auth)
        except TidingsError as exc:
            self.goodbye(conn, p.text_frame(p.encode(p.CONNECT_ERROR, self.handlers.refusal(exc))))
            return False
        self.handlers.connected(conn, grant)
        self.hub.send(conn, p.text_frame(f'40{{"sid":"{conn.sid}"}}'))  # sid: URL-safe base64
        return True

    def _event(self, conn: FastConn, packet: p.Packet) -> None:
        args = packet.data
        if not (isinstance(args, list) and args and isinstance(args[0], str)):
            self._ack(conn, packet.id, not_an_event())
            return
        name = args[0]
        if not self.handlers.knows(name):
            return  # no ack, as python-socketio does for an event it has no handler for
        tasks = conn.tasks
        if tasks is None:
            tasks = conn.tasks = set()  # made at the first event: idle sockets hold none
        elif len(tasks) >= self.handlers.max_in_flight:
            self._ack(conn, packet.id, self.handlers.busy())
            return
        task = asyncio.ensure_future(self._handle(conn, name, args[1:], packet.id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _handle(self, conn: FastConn, name: str, args: list[Any], ack_id: int | None) -> None:
        try:
            ack = await self.handlers.handle(conn, name, args)
        except Exception:  # handle() maps errors to acks: this is a bug, not the client's
            log.exception("%s failed for socket %s", name, conn.sid)
            return
        self._ack(conn, ack_id, ack)

    def _ack(self, conn: FastConn, ack_id: int | None, ack: Any) -> None:
        if ack is not None and ack_id is not None:
            self.hub.send(conn, p.text_frame(p.encode(p.ACK, [ack], ack_id=ack_id)))
