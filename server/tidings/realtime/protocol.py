"""Engine.IO v4 / Socket.IO v5 text packets and RFC 6455 frames: pure encoding and decoding.

What the fast WebSocket path speaks (one Engine.IO packet per WebSocket text message; the first
digit is the Engine.IO type, the second, in a message packet, the Socket.IO type):

    server  0{"sid","upgrades":[],"pingInterval","pingTimeout","maxPayload"}   open
    client  40{"token": ...}            Socket.IO CONNECT to "/" with auth
    server  40{"sid": ...}              connected, or 44{"message","data"} refused
    client  42<id>["subscribe",{...}]   EVENT with an ack id
    server  43<id>[{...}]               ACK
    server  42["feed.update",{...}]     EVENT
    server  2 / client 3                ping / pong (the server pings, in v4)
    either  41 (Socket.IO DISCONNECT) or 1 (Engine.IO close)

Binary packets (Socket.IO types 5 and 6) are not used by Tidings and are refused.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = "0123456"
CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)
ROOT = "/"


class ProtocolError(ValueError):
    """A packet that is not Engine.IO v4 / Socket.IO v5 as this server speaks it."""


def dumps(data: Any) -> str:
    """Compact JSON, ASCII only (a lone surrogate in a string cannot break the UTF-8 frame)."""
    return json.dumps(data, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Packet:
    """A Socket.IO packet received from a client (inside an Engine.IO message)."""

    type: int
    namespace: str = ROOT
    id: int | None = None
    data: Any = None


def decode(text: str) -> Packet:
    """Decode the Socket.IO part of an Engine.IO message: `<type>[<ns>,][<id>][<json>]`."""
    if not text or not text[0].isdigit():
        raise ProtocolError("empty or untyped packet")
    kind = int(text[0])
    if kind > BINARY_ACK:
        raise ProtocolError(f"unknown packet type {kind}")
    if kind in (BINARY_EVENT, BINARY_ACK):
        raise ProtocolError("binary packets are not supported")
    pos, namespace = 1, ROOT
    if text.startswith("/", pos):
        end = text.find(",", pos)
        namespace, pos = (text[pos:], len(text)) if end < 0 else (text[pos:end], end + 1)
    start = pos
    while pos < len(text) and text[pos].isdigit():
        pos += 1
    ack_id = int(text[start:pos]) if pos > start else None
    data: Any = None
    if pos < len(text):
        try:
            data = json.loads(text[pos:])
        except ValueError as exc:
            raise ProtocolError("payload is not JSON") from exc
    return Packet(kind, namespace, ack_id, data)


def encode(kind: int, data: Any = None, namespace: str = ROOT, ack_id: int | None = None) -> str:
    """An Engine.IO message carrying one Socket.IO packet, e.g. `42["feed.update",{...}]`."""
    out = [MESSAGE, str(kind)]
    if namespace != ROOT:
        out.append(namespace + ",")
    if ack_id is not None:
        out.append(str(ack_id))
    if data is not None:
        out.append(dumps(data))
    return "".join(out)


def event(name: str, data: Any) -> str:
    return encode(EVENT, [name, data])


def open_packet(sid: str, ping_interval: float, ping_timeout: float, max_payload: int) -> str:
    handshake = {
        "sid": sid,
        "upgrades": [],
        "pingInterval": int(ping_interval * 1000),
        "pingTimeout": int(ping_timeout * 1000),
        "maxPayload": max_payload,
    }
    return OPEN + dumps(handshake)


def event_data(packet: str) -> tuple[str, Any]:
    """The (name, first argument) of an encoded event packet (`42[name, data]`)."""
    name, data = json.loads(packet[2:])[:2]
    return str(name), data


_TEXT, _CLOSE_OPCODE = 0x81, 0x88  # FIN + opcode


def text_frame(payload: str | bytes) -> bytes:
    """One unmasked (server to client) WebSocket text frame holding `payload`."""
    body = payload.encode() if isinstance(payload, str) else payload
    return _header(_TEXT, len(body)) + body


def close_frame(code: int = 1001) -> bytes:
    """A WebSocket close frame (1001: going away; clients reconnect)."""
    body = struct.pack("!H", code)
    return _header(_CLOSE_OPCODE, len(body)) + body


def _header(first: int, length: int) -> bytes:
    if length < 126:
        return bytes((first, length))
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)
