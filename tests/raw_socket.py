"""A raw Engine.IO v4 WebSocket client spoken by hand on an asyncio stream, for the tests that
need what no client library lets them do: send malformed or oversized packets, never connect,
stop reading, and see exactly how the server ends the connection (close frame or not).

It speaks to both paths alike: the fast path, and python-socketio's WebSocket transport (a
server with `realtime.fast_websocket = false`).
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

WAIT = 15.0
TEXT, BINARY, CLOSE = 0x1, 0x2, 0x8
ACK = re.compile(r"43(\d+)\[")


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
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
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
        payload = data.encode() if isinstance(data, str) else data
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 1 << 16:
            head = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", n)
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", n)
        key = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
        self.writer.write(head + mask + masked)

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
