"""The fast path: direct WebSocket connections (`GET /socket.io/?EIO=4&transport=websocket`, no
`sid`), served with Tidings' own Engine.IO v4 / Socket.IO v5 (protocol.py) on aiohttp's
`WebSocketResponse`.

Per connection: aiohttp's handler task (which reads), one `FastConn`, nothing else: no writer
task, no timer (the heartbeat is one timer for all, see heartbeat.py). Every frame the server
sends goes through the hub (hub.py), so acks, pings and events keep their order per socket.
Long-polling, polling→WebSocket upgrades and (with `websocket_compression`) deflating clients go
to python-socketio instead (sio_peers.py), so every official client works either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Iterator
from typing import Any

from aiohttp import WSMsgType, hdrs, web

from ..domain.errors import TidingsError
from . import protocol as p
from .handlers import Handlers
from .heartbeat import Heartbeat
from .hub import FastConn, Hub
from .peers import Peer

log = logging.getLogger(__name__)
MAX_PAYLOAD = 1_000_000  # largest message a client may send (python-engineio's default too)
CONNECT_TIMEOUT = 45.0  # seconds for a new connection to send its Socket.IO connect
DISCONNECT_FRAME = p.text_frame(p.encode(p.DISCONNECT))
PONG_FRAME = p.text_frame(p.PONG)


def new_sid() -> str:
    return secrets.token_urlsafe(12)


@contextlib.contextmanager
def corked(transport: asyncio.Transport) -> Iterator[None]:
    """Hold small writes in the kernel and send them together (Linux TCP_CORK; elsewhere, and
    on a socket that is not TCP, nothing): one system call and one wake-up of the client saved
    per connection."""
    sock = transport.get_extra_info("socket")
    cork = getattr(socket, "TCP_CORK", None)
    if sock is None or cork is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        yield
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, cork, 0)


class FastPath:
    def __init__(
        self, hub: Hub, heartbeat: Heartbeat, handlers: Handlers, ping_interval: float,
        ping_timeout: float, origins: list[str] | None, compression: bool,
    ) -> None:  # fmt: skip
        self.hub, self.heartbeat, self.handlers = hub, heartbeat, handlers
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.origins = origins  # None: any origin
        self.compression = compression
        handlers.outlets[True] = self

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
        if self.hub.send(peer, DISCONNECT_FRAME) and peer.pending is None:
            peer.transport.write(p.close_frame(1000))
            peer.transport.close()
        else:
            self.hub.abort(peer)

    # ------------------------------------------------------------------------- a connection

    async def serve(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin and self.origins is not None and origin not in self.origins:
            return web.Response(status=400, text=f"{origin} is not an accepted origin.")
        ws = web.WebSocketResponse(compress=False, heartbeat=None, max_msg_size=MAX_PAYLOAD)
        transport = request.transport
        if transport is None:  # the client left during the handshake
            return ws
        with corked(transport):  # the 101 answer and the open packet: one TCP segment
            await ws.prepare(request)
            conn = FastConn(new_sid(), transport)
            self.hub.add(conn)
            self.heartbeat.assign(conn)
            opening = p.open_packet(new_sid(), self.ping_interval, self.ping_timeout, MAX_PAYLOAD)
            self.hub.send(conn, p.text_frame(opening))
        try:
            await self._read(conn, ws)
        except TimeoutError:
            log.info("closing socket %s: no Socket.IO connect within %ss", conn.sid,
                     CONNECT_TIMEOUT)  # fmt: skip
        finally:
            self.handlers.disconnected(conn)
            self.hub.remove(conn)
        if not ws.closed and not transport.is_closing():
            await ws.close()
        return ws

    async def _read(self, conn: FastConn, ws: web.WebSocketResponse) -> None:
        while True:
            timeout = CONNECT_TIMEOUT if conn.grant is None else None
            message = await ws.receive(timeout)
            if message.type is not WSMsgType.TEXT:
                return  # closed, or a binary frame: Tidings speaks text packets only
            text: str = message.data
            conn.alive = True
            kind = text[:1]
            if kind == p.MESSAGE:
                if not await self._packet(conn, text[1:]):
                    return
            elif kind == p.PING:  # a client may probe; answer like Engine.IO does
                self.hub.send(conn, p.text_frame(p.PONG + text[1:]))
            elif kind == p.CLOSE:
                return
            elif kind not in (p.PONG, p.NOOP):
                log.info("closing socket %s: unexpected Engine.IO packet %r", conn.sid, kind)
                return

    async def _packet(self, conn: FastConn, text: str) -> bool:
        """Handle one Socket.IO packet; False to close the connection."""
        try:
            packet = p.decode(text)
        except p.ProtocolError as exc:
            log.info("closing socket %s: %s", conn.sid, exc)
            return False
        if packet.namespace != p.ROOT:
            if packet.type == p.CONNECT:  # as socket.io does for a namespace it does not serve
                refusal = {"message": "Invalid namespace"}
                self.hub.send(conn, p.text_frame(p.encode(p.CONNECT_ERROR, refusal,
                                                          packet.namespace)))  # fmt: skip
            return True
        if packet.type == p.CONNECT:
            if conn.grant is None:
                self._connect(conn, packet.data)
        elif packet.type == p.EVENT:
            await self._event(conn, packet)
        elif packet.type == p.DISCONNECT:
            return False
        return True

    def _connect(self, conn: FastConn, auth: Any) -> None:
        try:
            grant = self.handlers.authenticate(auth)
        except TidingsError as exc:
            refusal = {"message": exc.detail, "data": exc.ack()}
            self.hub.send(conn, p.text_frame(p.encode(p.CONNECT_ERROR, refusal)))
            return
        self.handlers.connected(conn, grant)
        self.hub.send(conn, p.text_frame(p.encode(p.CONNECT, {"sid": conn.sid})))

    async def _event(self, conn: FastConn, packet: p.Packet) -> None:
        args = packet.data
        if not (isinstance(args, list) and args and isinstance(args[0], str)):
            return
        ack = await self.handlers.handle(conn, args[0], args[1] if len(args) > 1 else None)
        if ack is not None and packet.id is not None:
            self.hub.send(conn, p.text_frame(p.encode(p.ACK, [ack], ack_id=packet.id)))
