"""One raw Engine.IO v4 / Socket.IO v5 client over WebSocket, spoken by hand: the codec (RFC 6455
frames, the upgrade request) and `RawSocket`, a client on an asyncio stream.

The tests use `RawSocket` for what no client library lets them do: send malformed or oversized
packets, never connect, stop reading, and see exactly how the server ends the connection (close
frame or not). It speaks to both paths alike: the fast path, and python-socketio's WebSocket
transport (a server with `realtime.fast_websocket = false`). The benchmarks' subscribers
(bench/wsclient.py) use the same codec on sockets watched by the event loop's `add_reader`.

What goes over the socket (`/socket.io/?EIO=4&transport=websocket`, one packet per text frame;
the first digit is the Engine.IO packet type, the second the Socket.IO one):

    server  0{"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}   Engine.IO open
    client  40{"token": "<jwt>"}                 Socket.IO CONNECT to "/", with auth
    server  40{"sid": "..."}                     connected  (44{"message", ...}: refused)
    client  420["subscribe", {"feed": "..."}]    EVENT with ack id 0
    server  430[{"ok": true, "feed": ...}]       the ACK of id 0
    server  2             client  3              ping and pong (the server pings, in v4)
    server  42["feed.update", {...}]             the events
    client  41, then a close frame               leaving

The server's frames are unmasked and unfragmented; the client's are masked, as RFC 6455 says.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import struct
from typing import Any
from urllib.parse import urlsplit

WAIT = 15.0
SOCKET_IO_PATH = "/socket.io/?EIO=4&transport=websocket"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
ACK = re.compile(r"43(\d+)\[")


def address(url: str) -> tuple[str, int]:
    """`http://host:port` → (host, port)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def upgrade_request(host: str, port: int, path: str = SOCKET_IO_PATH) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def masked(payload: bytes, opcode: int = TEXT) -> bytes:
    """A client-to-server frame: masked, as RFC 6455 requires."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", n)
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", n)
    key = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + body


def frames(buf: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The whole (opcode, payload) frames at the start of `buf` (server frames: unmasked), and
    how many bytes they took; a partial frame at the end waits for more data."""
    found, pos = [], 0
    while len(buf) - pos >= 2:
        opcode, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
        head = 2
        if n == 126:
            if len(buf) - pos < 4:
                break
            n, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
        elif n == 127:
            if len(buf) - pos < 10:
                break
            n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
        if len(buf) - pos < head + n:
            break
        found.append((opcode, buf[pos + head : pos + head + n]))
        pos += head + n
    return found, pos


class Closed(Exception):
    """The server sent a WebSocket close frame (`code`), or ended the TCP stream (None)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed by the server ({'no close frame' if code is None else code})")
        self.code = code


class RawSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received: list[str] = []  # every text packet, pings included
        self.open: dict[str, Any] = {}
        self.acks: dict[int, Any] = {}  # acks read, not asked for yet

    @classmethod
    async def open_(cls, port: int, rcvbuf: int | None = None) -> RawSocket:
        """The WebSocket handshake and Engine.IO's open packet; no Socket.IO connect yet."""
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2048)
        writer.write(upgrade_request("127.0.0.1", port))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 101"), head
        client = cls(reader, writer)
        opened = await client.packet()
        assert opened.startswith("0{"), opened
        client.open = json.loads(opened[1:])
        return client

    @classmethod
    async def connected(cls, port: int, token: str, rcvbuf: int | None = None) -> RawSocket:
        client = await cls.open_(port, rcvbuf)
        client.send("40" + json.dumps({"token": token}))
        answer = await client.packet()
        assert answer.startswith("40{"), answer
        return client

    def send(self, data: str | bytes, opcode: int = TEXT) -> None:
        self.writer.write(masked(data.encode() if isinstance(data, str) else data, opcode))

    async def frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    async def packet(self, within: float = WAIT, skip_events: bool = False) -> str:
        """The next text packet that is not a ping (pings are answered). Raises Closed."""

        async def next_packet() -> str:
            while True:
                try:
                    opcode, payload = await self.frame()
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    raise Closed(None) from exc
                if opcode == CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    raise Closed(code)
                text = payload.decode()
                self.received.append(text)
                if text == "2":
                    self.send("3")
                    continue
                if skip_events and text.startswith("42"):
                    continue
                return text

        return await asyncio.wait_for(next_packet(), within)

    async def until_closed(self, within: float = WAIT) -> Closed:
        """Read (answering pings) until the server ends the connection; what ended it."""
        try:
            while True:
                await self.packet(within)
        except Closed as closed:
            return closed

    async def ack(self, ack_id: int, within: float = WAIT) -> Any:
        """The (first argument of the) ack `43<ack_id>[...]`; acks of other ids that arrive
        meanwhile are kept for their turn (acks may come in any order)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while ack_id not in self.acks:
            text = await self.packet(max(0.01, deadline - loop.time()))
            found = ACK.match(text)
            if found:
                self.acks[int(found.group(1))] = json.loads(text[found.end() - 1 :])[0]
        return self.acks.pop(ack_id)

    def emit(self, ack_id: int, event: str, *args: Any) -> None:
        self.send(f"42{ack_id}" + json.dumps([event, *args]))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
