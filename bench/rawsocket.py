"""A Socket.IO subscriber on a bare WebSocket, speaking Engine.IO v4 / Socket.IO v5 by hand.

A python-socketio `AsyncClient` brings its own tasks, queues and timers per connection; ten
thousand of them do not fit next to the servers on a small machine. This costs one aiohttp
WebSocket and one reader task per feed, so one process holds thousands.

What goes over the socket (`ws://host:port/socket.io/?EIO=4&transport=websocket`, one packet per
text frame; the first digit is the Engine.IO packet type, the second the Socket.IO one):

    server  0{"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}   Engine.IO open
    client  40{"token": "<jwt>"}                 Socket.IO CONNECT to "/", with auth
    server  40{"sid": "..."}                     connected  (44{"message", ...}: refused)
    client  420["subscribe", {"feed": "..."}]    EVENT with ack id 0
    server  430[{"ok": true, "feed": ...}]       the ACK of id 0
    server  2             client  3              ping and pong (the server pings, in v4)
    server  42["feed.update", {...}]             the events we time
    server  41 or 1                              Socket.IO DISCONNECT / Engine.IO close

The same interface as bench/subscribers.py's `Subscriber`: `start`, `stop`, `received`,
`duplicates`, `events`, `connected`, `dropped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from urllib.parse import urlsplit, urlunsplit

import aiohttp

FEED_UPDATE = "feed.update"
PING, PONG = "2", "3"
EVENT = "42"
CONNECT = "40"
SUBSCRIBE_ACK = "430"
CLOSE_TIMEOUT = 5.0


def websocket_url(url: str) -> str:
    """`http://host:port` → `ws://host:port/socket.io/?EIO=4&transport=websocket`."""
    parts = urlsplit(url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, "/socket.io/", "EIO=4&transport=websocket", ""))


def _acked_ok(packet: str) -> bool:
    """Whether `packet` is the ack of id 0 saying `{"ok": true, ...}`."""
    if not packet.startswith(SUBSCRIBE_ACK):
        return False
    try:
        ack = json.loads(packet[len(SUBSCRIBE_ACK) :])
    except ValueError:
        return False
    first = ack[0] if isinstance(ack, list) and ack else None
    return isinstance(first, dict) and first.get("ok") is True


class Refused(Exception):
    """The server answered the handshake with something else than expected."""


class RawSubscriber:
    """One bare WebSocket subscribed to one feed; records when each activity id reached it."""

    def __init__(self, feed: str, http: aiohttp.ClientSession) -> None:
        self.feed = feed
        self.received: dict[str, float] = {}
        self.duplicates = 0
        self.events = 0
        self.connected = False
        self.dropped = 0  # closes the client did not ask for
        self._http = http
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self, url: str, token: str, within: float) -> None:
        self._ws = ws = await self._http.ws_connect(
            websocket_url(url),
            autoping=True,
            heartbeat=None,  # Engine.IO has its own heartbeat: the server's ping "2"
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
        )
        try:
            opening = await self._packet(within)
            if not opening.startswith("0{"):
                raise Refused(f"expected the Engine.IO open packet, got {opening[:80]!r}")
            await ws.send_str(CONNECT + json.dumps({"token": token}))
            answer = await self._packet(within)
            if not answer.startswith(CONNECT):
                raise Refused(f"connect refused: {answer[:200]!r}")
            await ws.send_str(EVENT + "0" + json.dumps(["subscribe", {"feed": self.feed}]))
            answer = await self._packet(within)
            if not _acked_ok(answer):
                raise Refused(f"subscribe {self.feed} refused: {answer[:200]!r}")
        except BaseException:
            await ws.close()
            raise
        self.connected = True
        self._reader = asyncio.create_task(self._read(ws))

    async def _packet(self, within: float) -> str:
        """The next packet that is neither a ping (answered) nor an event (recorded)."""
        assert self._ws is not None
        while True:
            message = await self._ws.receive(timeout=within)
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise Refused(f"the socket closed during the handshake ({message.type.name})")
            text: str = message.data
            if not await self._handle(text, time.time()):
                return text

    async def _handle(self, text: str, now: float) -> bool:
        """Answer a ping or record an event; False for any other packet."""
        if text == PING:
            assert self._ws is not None
            await self._ws.send_str(PONG)
            return True
        if text.startswith(EVENT):
            self._on_event(text, now)
            return True
        return False

    def _on_event(self, text: str, now: float) -> None:
        try:
            name, data, *_ = json.loads(text[len(EVENT) :])
        except ValueError:
            return
        if name != FEED_UPDATE:
            return
        self.events += 1
        for activity in data.get("new", []) if isinstance(data, dict) else []:
            activity_id = activity.get("id") if isinstance(activity, dict) else None
            if not isinstance(activity_id, str):
                continue
            if activity_id in self.received:
                self.duplicates += 1
            else:
                self.received[activity_id] = now

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Until the socket closes: answer pings, record events (stamped on arrival)."""
        try:
            while True:
                message = await ws.receive()
                now = time.time()
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break  # CLOSE, CLOSING, CLOSED or ERROR
                text: str = message.data
                if not await self._handle(text, now) and (text.startswith("41") or text == "1"):
                    break  # disconnected by the server
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            pass
        finally:
            if not self._closing:
                self.dropped += 1
            self.connected = False

    async def stop(self) -> None:
        self._closing = True
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError):
                await ws.send_str("41")  # Socket.IO DISCONNECT, then the WebSocket close
            await ws.close()
        if self._reader is not None:
            await self._reader
