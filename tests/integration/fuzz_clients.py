"""What the protocol fuzzing sends and how it sends it: hypothesis strategies of Engine.IO and
Socket.IO frames (well-formed, almost well-formed and garbage), a raw long-polling client
spoken by hand, and the probe that tells a socket that still answers from one that was closed.

A fuzzed connection must end one of two ways, never hang: it still answers (a `subscribe` sent
after the fuzzed frames is acknowledged), or the server closed it (a WebSocket close, a polling
session answered 400 or sent Engine.IO's close packet).
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
from hypothesis import strategies as st

from harness.common import SERVER_TOKEN
from harness.engineio import (
    BINARY,
    SOCKET_IO_PATH,
    TEXT,
    Closed,
    RawSocket,
    address,
    upgrade_request,
)

WAIT = 10.0  # a probe's answer (or the close) comes within this, seconds
PROBE_ID = 987654321
EVENTS = ["subscribe", "unsubscribe", "token.refresh", "presence", "publish",
          "reaction.watch", "reaction.unwatch", "message"]  # fmt: skip
ANSWERED, CLOSED = "answered", "closed"
Frame = str | bytes

# ----------------------------------------------------------------------------- strategies

texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts
placeholders = st.builds(lambda n: {"_placeholder": True, "num": n}, st.integers(-1, 20))
json_values = st.recursive(
    scalars | placeholders,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
events = st.builds(lambda name, args: [name, *args], st.sampled_from(EVENTS),
                   st.lists(json_values, max_size=3))  # fmt: skip
payloads = st.one_of(
    st.none(),
    events.map(json.dumps),
    json_values.map(json.dumps),
    texts,
    st.integers(1, 60).map(lambda n: "[" * n + "]" * n),  # nesting around the limit
)


@st.composite
def socketio_packets(draw: st.DrawFn) -> str:
    """`4<type>[<n>-][<namespace>,][<ack id>][<payload>]`, each part sometimes wrong."""
    kind = draw(st.sampled_from("0123456") | st.sampled_from("789a²٣") | texts.map(lambda t: t[:1]))
    attachments = ""
    if kind in "56" or draw(st.booleans()):
        count = draw(st.none() | st.integers(-1, 20).map(str) | texts.map(lambda t: t[:3]))
        attachments = "" if count is None else count + draw(st.sampled_from(["-", "", "+"]))
    namespace = draw(st.none() | st.sampled_from(["/", "/custom"]) | texts.map(lambda t: "/" + t))
    ns = "" if namespace is None else namespace + draw(st.sampled_from([",", ""]))
    ack = draw(st.none() | st.integers(0, 10**17).map(str) | st.text("0123456789a²٣", max_size=20))
    payload = draw(payloads)
    return "4" + kind + attachments + ns + (ack or "") + (payload or "")


# well-formed events of every name with arguments of every shape: what reaches the handlers
well_formed = st.builds(lambda ack, event: "42" + ack + json.dumps(event),
                        st.just("") | st.integers(0, 10**6).map(str), events)  # fmt: skip
engineio_packets = st.builds(lambda kind, rest: kind + rest,
                             st.sampled_from("0123456789b"), texts)  # fmt: skip
text_frames = st.one_of(
    socketio_packets(),
    engineio_packets,
    texts,
    st.sampled_from(["2probe", "2" + "x" * 70, "5", "6", "1", "41", "3"]),
)
frames = st.one_of(well_formed, socketio_packets(), text_frames, st.binary(max_size=40))
frame_lists = st.lists(frames, min_size=1, max_size=4)


def polling_record(frame: Frame) -> str:
    """A frame as a packet of a long-polling payload (binary: `b` + base64)."""
    return frame if isinstance(frame, str) else "b" + base64.b64encode(frame).decode()


socketio_payloads = st.lists(well_formed | socketio_packets(), min_size=1, max_size=4)
polling_bodies = st.one_of(
    socketio_payloads.map(lambda ps: "\x1e".join(ps).encode()),  # past Engine.IO's checks
    frame_lists.map(lambda fs: "\x1e".join(polling_record(f) for f in fs).encode()),
    st.binary(max_size=60),
    st.lists(text_frames, min_size=17, max_size=20).map(lambda fs: "\x1e".join(fs).encode()),
)


# ----------------------------------------------------------------------------- WebSocket


def probe_packets(feed: str) -> list[str]:
    """A connect (ignored by a socket already connected) and a subscribe with PROBE_ID."""
    subscribe = json.dumps(["subscribe", {"feed": feed}])
    return ["40" + json.dumps({"token": SERVER_TOKEN}), f"42{PROBE_ID}{subscribe}"]


async def websocket_outcome(raw: RawSocket, frames: list[Frame], feed: str) -> str:
    """Send `frames` on the WebSocket `raw`, then the probe: ANSWERED or CLOSED;
    TimeoutError when neither comes."""
    try:
        for frame in frames:
            raw.send(frame, TEXT if isinstance(frame, str) else BINARY)
        for packet in probe_packets(feed):
            raw.send(packet)
        try:
            while True:
                packet = await raw.packet(WAIT)
                if packet.startswith(f"43{PROBE_ID}["):
                    return ANSWERED
        except (Closed, ConnectionError):
            return CLOSED
    finally:
        await raw.close()


async def direct(port: int, connect: bool) -> RawSocket:
    """A WebSocket of the fast path, after a Socket.IO connect when `connect`."""
    return await (RawSocket.connected(port, SERVER_TOKEN) if connect else RawSocket.open_(port))


async def upgraded(http: aiohttp.ClientSession, url: str, connect: bool) -> RawSocket:
    """A long-polling session (Socket.IO-connected when `connect`) upgraded to a WebSocket:
    python-socketio's WebSocket transport."""
    session = await Polling(http, url).open()
    if connect:
        await session.connect()
    host, port = address(url)
    reader, writer = await asyncio.open_connection(host, port)
    path = f"{SOCKET_IO_PATH}&sid={session.sid}"
    writer.write(upgrade_request(host, port, path))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 101"), head
    raw = RawSocket(reader, writer)
    raw.send("2probe")
    assert await raw.packet(WAIT) == "3probe"
    raw.send("5")
    return raw


# ----------------------------------------------------------------------------- long-polling


class Polling:
    """An Engine.IO v4 long-polling session spoken by hand: `GET` reads the queued packets,
    `POST` sends a payload. `gone` once the server answered 400 or sent its close packet."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url + "/socket.io/"
        self.sid = ""
        self.gone = False

    def _params(self) -> dict[str, str]:
        return {"EIO": "4", "transport": "polling", "sid": self.sid}

    async def open(self) -> Polling:
        async with self.http.get(self.url, params={"EIO": "4", "transport": "polling"}) as r:
            text = await r.text()
        assert r.status == 200 and text.startswith("0{"), (r.status, text)
        self.sid = json.loads(text[1:])["sid"]
        return self

    async def post(self, body: bytes) -> int:
        timeout = aiohttp.ClientTimeout(total=WAIT)
        async with self.http.post(self.url, params=self._params(), data=body,
                                  timeout=timeout) as r:  # fmt: skip
            await r.read()
        self.gone = self.gone or r.status == 400
        return r.status

    async def get(self) -> list[str]:
        timeout = aiohttp.ClientTimeout(total=WAIT)
        async with self.http.get(self.url, params=self._params(), timeout=timeout) as r:
            text = await r.text()
        if r.status == 400:
            self.gone = True
            return []
        assert r.status == 200, (r.status, text)
        packets = text.split("\x1e") if text else []
        if "1" in packets:
            self.gone = True
        if "2" in packets:
            await self.post(b"3")
        return packets

    async def connect(self) -> None:
        assert await self.post(("40" + json.dumps({"token": SERVER_TOKEN})).encode()) == 200
        packets = await self.get()
        assert any(p.startswith("40{") for p in packets), packets


async def polling_outcome(
    http: aiohttp.ClientSession, url: str, body: bytes, connect: bool, feed: str
) -> str:
    """POST `body` in a polling session (connected first, when `connect`), then the probe:
    ANSWERED or CLOSED (a session the server closed must stay closed); TimeoutError when
    neither comes."""
    session = await Polling(http, url).open()
    if connect:
        await session.connect()
    await session.post(body)
    if not session.gone:
        await session.post("\x1e".join(probe_packets(feed)).encode())
    while not session.gone:
        packets = await session.get()
        if any(p.startswith(f"43{PROBE_ID}[") for p in packets):
            await session.post(b"1")
            return ANSWERED
    status = await session.post(b"41")
    assert status == 400, f"a closed session took a POST: {status}"
    return CLOSED


def describe(frames: Any) -> str:
    return json.dumps(frames if not isinstance(frames, bytes) else frames.hex())[:500]
