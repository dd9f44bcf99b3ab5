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

Binary packets (Socket.IO types 5 and 6) carry no data Tidings takes: their attachments are read
and dropped, and the event is answered as python-socketio's handlers answer it (an error ack).
"""

from __future__ import annotations

import binascii
import json
import re
import struct
from dataclasses import dataclass, replace
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
    """A Socket.IO packet received from a client (inside an Engine.IO message). `data` is the
    parsed payload; `attachments` the number of binary frames that follow a binary packet."""

    type: int
    namespace: str = ROOT
    id: int | None = None
    data: Any = None
    attachments: int = 0


MAX_ACK_ID_DIGITS = 15  # ack ids stay exact JavaScript numbers (below 2**53)
MAX_NAMESPACE = 256
MAX_ATTACHMENTS = 16  # binary frames one packet may announce
MAX_DEPTH = 32  # nesting of a payload's arrays and objects
_DIGITS = frozenset("0123456789")  # str.isdigit() also takes "²" and "\u0663": int() may not
_NESTING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]|[\]}]')  # strings, then brackets


def _digits(text: str, pos: int, limit: int) -> int:
    """The end of the run of ASCII digits at `pos`, at most `limit` of them."""
    end = pos
    while end < len(text) and text[end] in _DIGITS:
        end += 1
        if end - pos > limit:
            raise ProtocolError(f"more than {limit} digits")
    return end


def decode_head(text: str) -> tuple[Packet, int]:
    """The type, namespace, ack id (and attachment count) of a Socket.IO packet
    `<type>[<n>-][<ns>,][<id>][<json>]`, and where its payload starts: nothing is parsed
    beyond that, so a packet of a socket that is not connected yet costs no JSON decode."""
    if not text or text[0] not in _DIGITS:
        raise ProtocolError("empty or untyped packet")
    kind = int(text[0])
    if kind > BINARY_ACK:
        raise ProtocolError(f"unknown packet type {kind}")
    pos, attachments = 1, 0
    if kind in (BINARY_EVENT, BINARY_ACK):
        end = _digits(text, pos, 2)
        if end == pos or not text.startswith("-", end):
            raise ProtocolError("binary packet without an attachment count")
        attachments = int(text[pos:end])
        if not 0 < attachments <= MAX_ATTACHMENTS:
            raise ProtocolError(f"binary packet with {attachments} attachments")
        pos = end + 1
    namespace = ROOT
    if text.startswith("/", pos):
        end = text.find(",", pos, pos + MAX_NAMESPACE + 1)
        if end < 0 and len(text) - pos > MAX_NAMESPACE:
            raise ProtocolError("namespace too long")
        namespace, pos = (text[pos:], len(text)) if end < 0 else (text[pos:end], end + 1)
    end = _digits(text, pos, MAX_ACK_ID_DIGITS)
    ack_id = int(text[pos:end]) if end > pos else None
    return Packet(kind, namespace, ack_id, None, attachments), end


def decode_payload(text: str) -> Any:
    """A packet's JSON payload, refusing nesting deeper than MAX_DEPTH (json.loads would
    recurse, and raise RecursionError, on a deep one)."""
    if text.count("[") + text.count("{") > MAX_DEPTH:
        depth = 0
        for match in _NESTING.finditer(text):
            token = match.group()
            if token in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise ProtocolError(f"payload nested deeper than {MAX_DEPTH}")
            elif token in "]}":
                depth -= 1
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("payload is not JSON") from exc


def decode(text: str) -> Packet:
    """Decode the Socket.IO part of an Engine.IO message: `<type>[<ns>,][<id>][<json>]`.
    Raises ProtocolError, and only that, for anything else."""
    head, pos = decode_head(text)
    if pos == len(text):
        return head
    return replace(head, data=decode_payload(text[pos:]))


MAX_POLLING_PACKETS = 16  # packets in one long-polling POST (python-engineio's limit too)
RECORD_SEPARATOR = "\x1e"
# What a client may send: over long-polling, close, pong, message and upgrade (open and noop
# are the server's, and in v4 only the server pings); over a WebSocket also the upgrade probe
# (`2probe`) and what python-engineio ignores there.
POLLING_TYPES = frozenset("1345")
WEBSOCKET_TYPES = frozenset("0123456")


def check_packet(packet: str, types: frozenset[str]) -> None:
    """Raise ProtocolError unless `packet` is an Engine.IO text packet of one of `types`, or
    `b` and base64 (a binary message, as long-polling carries them)."""
    if packet.startswith("b"):
        try:
            binascii.a2b_base64(packet[1:].encode(), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ProtocolError("a binary packet that is not base64") from exc
    elif packet[:1] not in types:
        raise ProtocolError(f"not a client's Engine.IO packet: {packet[:8]!r}")


def polling_packets(body: bytes) -> list[str]:
    """The Engine.IO packets of a long-polling POST body: UTF-8 text, packets separated by
    the record separator, each checked by `check_packet`. Raises ProtocolError."""
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError("a payload that is not UTF-8") from exc
    if not text:
        return []  # nothing to receive (python-engineio takes it so)
    records = text.split(RECORD_SEPARATOR)
    if len(records) > MAX_POLLING_PACKETS:
        raise ProtocolError(f"more than {MAX_POLLING_PACKETS} packets in a payload")
    for record in records:
        check_packet(record, POLLING_TYPES)
    return records


def without_placeholders(data: Any) -> Any:
    """A binary packet's payload with each attachment placeholder
    (`{"_placeholder": true, "num": n}`) replaced by empty bytes: Tidings takes no binary
    data, and validates what it got as python-socketio's handlers would see it (bytes)."""
    if isinstance(data, dict):
        if data.get("_placeholder") is True and isinstance(data.get("num"), int):
            return b""
        return {key: without_placeholders(value) for key, value in data.items()}
    if isinstance(data, list):
        return [without_placeholders(value) for value in data]
    return data


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


class FeedFrames:
    """An event that names the feed it is delivered for (`feed.update`'s `feed` is the feed the
    socket subscribed to), encoded once: every packet is `prefix + json(feed) + suffix`, so a
    frame for one more feed costs a concatenation and a frame header, never a JSON encode.
    Frames are made once per feed and kept for the broadcast."""

    __slots__ = ("_frames", "prefix", "suffix")

    def __init__(self, prefix: bytes, suffix: bytes) -> None:
        self.prefix, self.suffix = prefix, suffix
        self._frames: dict[str, bytes] = {}

    @classmethod
    def of(cls, name: str, data: dict[str, Any]) -> FeedFrames:
        """The event `name` with `data` (whose own `feed` is left out: each frame names its)."""
        head = event(name, {})  # 42["name",{}]
        rest = dumps({k: v for k, v in data.items() if k != "feed"})
        suffix = ("}" if rest == "{}" else "," + rest[1:]) + "]"
        return cls((head[:-2] + '"feed":').encode(), suffix.encode())

    def packet(self, feed: str) -> bytes:
        return self.prefix + dumps(feed).encode() + self.suffix

    def frame(self, feed: str) -> bytes:
        """The WebSocket frame of the event for `feed`."""
        frame = self._frames.get(feed)
        if frame is None:
            frame = self._frames[feed] = text_frame(self.packet(feed))
        return frame


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
