"""One Socket.IO subscriber on a bare non-blocking socket, timed by the kernel.

The benchmarks' raw client (`bench.broadcast`'s client processes, and `--client raw` of `bench
roundtrip` and `bench cluster` through bench/subscribers.py). A `Subscriber` speaks HTTP/1.1
upgrade, RFC 6455 and Engine.IO v4 / Socket.IO v5 by hand on a socket watched by the event
loop's `add_reader`: no task, no queue and no timer per socket, so a process holds thousands.

Each event packet goes to a callback with its **arrival time: the kernel's receive timestamp**
of the TCP segment that brought it (SO_TIMESTAMPNS, CLOCK_REALTIME like `time.time()`), not the
time the process got around to reading it. On a small machine the clients share the cores with
the server, and reading 10,000 sockets costs them about as much CPU as writing them costs the
server: arrival at read time would measure the clients. Every frame parsed from one `recvmsg`
shares its timestamp (the server writes several queued events in one write, and the kernel may
merge segments: the stamp is then the latest one's, never earlier than the data).
The codec and the protocol's packets are harness/engineio.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections.abc import Callable

from harness.engineio import (
    CLOSE,
    PING,
    PONG,
    SOCKET_IO_PATH,
    TEXT,
    address,
    frames,
    masked,
    upgrade_request,
)

__all__ = ["Subscriber", "address"]

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: receive time of each segment
ANCILLARY = socket.CMSG_SPACE(16)  # one struct timespec
RECEIVE_SIZE = 1 << 16
STOP_TIMEOUT = 5.0

OnEvent = Callable[[bytes, float], None]  # (the packet, b'42[...]', its arrival time)


def kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The SO_TIMESTAMPNS receive time in `recvmsg`'s ancillary data, if there is one."""
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            seconds, nanoseconds = struct.unpack("qq", payload[:16])
            return float(seconds + nanoseconds / 1e9)
    return None


class Subscriber:
    """One socket subscribed to one feed; `on_event(packet, arrival)` for each event packet.

    `connected` is true from the subscribe ack until the socket closes; `dropped` says that the
    server closed it (or it failed) while subscribed, without `stop` asking."""

    def __init__(
        self, host: str, port: int, token: str, feed: str, on_event: OnEvent,
        path: str = SOCKET_IO_PATH,
    ) -> None:  # fmt: skip
        self.host, self.port, self.token, self.feed = host, port, token, feed
        self.on_event = on_event
        self.path = path
        self.connected = False
        self.dropped = False
        self._buffer = b""
        self._upgraded = False
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._subscribed: asyncio.Future[None] = self._loop.create_future()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._sock = socket.socket()
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._at = 0.0  # the receive time of the data being parsed

    async def start(self, within: float) -> None:
        """Connect, upgrade, connect to "/" with the token and subscribe, within `within`
        seconds; raises (and closes the socket) when refused, closed or too slow."""
        try:
            async with asyncio.timeout(within):
                await self._loop.sock_connect(self._sock, (self.host, self.port))
                self._sock.send(upgrade_request(self.host, self.port, self.path))
                self._loop.add_reader(self._sock.fileno(), self._readable)
                await self._subscribed
        except BaseException:
            self.close()
            raise
        self.connected = True

    async def stop(self, within: float = STOP_TIMEOUT) -> None:
        """Socket.IO DISCONNECT and a WebSocket close; the socket is closed once the server
        closed its side, or after `within` seconds."""
        self._stopping = True
        if self._sock.fileno() >= 0:
            self._send(b"41")
            self._send(b"", CLOSE)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._closed), within)
        self.close()

    def close(self) -> None:
        self.connected = False
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
        if not self._closed.done():
            self._closed.set_result(None)

    # ------------------------------------------------------------------ the socket

    def _readable(self) -> None:
        try:
            data, ancillary, _, _ = self._sock.recvmsg(RECEIVE_SIZE, ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(f"{type(exc).__name__}: {exc}")
            return
        if not data:
            self._lost("closed by the server")
            return
        self._at = kernel_time(ancillary) or time.time()
        self._data_received(data)

    def _send(self, payload: bytes, opcode: int = TEXT) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # a few bytes: the buffer has room
            self._sock.send(masked(payload, opcode))

    def _lost(self, why: str) -> None:
        if self.connected and not self._stopping:
            self.dropped = True
        self._fail(why)

    def _fail(self, why: str) -> None:
        if not self._subscribed.done():
            self._subscribed.set_exception(ConnectionError(why))
        self.close()

    # ------------------------------------------------------------------ the protocols

    def _data_received(self, data: bytes) -> None:
        buf = self._buffer + data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self._fail(f"upgrade refused: {buf[:200]!r}")
                return
            self._upgraded, buf = True, buf[end + 4 :]
        found, used = frames(buf)
        self._buffer = buf[used:]
        for opcode, payload in found:
            if self._sock.fileno() < 0:
                return  # refused or disconnected by an earlier packet
            if opcode == TEXT:
                self._packet(payload)
            elif opcode == CLOSE:
                self._lost("close frame from the server")
                return
            elif opcode == PING:
                self._send(payload, PONG)

    def _packet(self, packet: bytes) -> None:
        if packet.startswith(b"42"):
            self.on_event(packet, self._at)
        elif packet == b"2":
            self._send(b"3")
        elif packet.startswith(b"0{"):
            self._send(b"40" + json.dumps({"token": self.token}).encode())
        elif packet.startswith(b"40"):
            self._send(b"420" + json.dumps(["subscribe", {"feed": self.feed}]).encode())
        elif packet.startswith(b"430"):
            if not _acked_ok(packet[3:]):
                self._fail(f"subscribe {self.feed} refused: {packet[:200]!r}")
            elif not self._subscribed.done():
                self._subscribed.set_result(None)
        elif packet.startswith(b"44"):
            self._fail(f"connect refused: {packet[:200]!r}")
        elif packet.startswith(b"41") or packet == b"1":
            self._lost("disconnected by the server")


def _acked_ok(body: bytes) -> bool:
    """Whether an ack's arguments say `{"ok": true, ...}`."""
    try:
        ack = json.loads(body)
    except ValueError:
        return False
    first = ack[0] if isinstance(ack, list) and ack else None
    return isinstance(first, dict) and first.get("ok") is True
