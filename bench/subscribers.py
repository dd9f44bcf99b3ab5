"""The subscriber process of the benchmarks: one subscribed socket per follower feed.

Run by bench/children.py as `python -m bench.subscribers`; it talks JSON lines:

1. stdin:  `{"url", "token", "feeds": [...], "client", "concurrency", "connect_timeout"}`
2. stdout: `{"event": "ready", "connected", "failed", "errors", "seconds"}` once every socket is
   connected (websocket transport, `auth: {"token"}`) and subscribed to its feed, or has failed;
3. (any number of times, for a long run) stdin: `{"poll": true}`; stdout: `{"event":
   "receipts", "received": {feed: {activity_id: time.time()}}, "connected", "dropped",
   "duplicates"}`: what arrived since the last poll, then forgotten (so memory stays flat; a
   duplicate across two polls is then the caller's to see);
4. stdin:  `{"expect": [activity ids], "timeout": seconds, "idle_timeout"?: seconds}` once the
   poster is done;
5. stdout: `{"event": "results", "received": {feed: {activity_id: time.time()}}, ...}` as soon
   as every socket holds every expected id, or at the timeout, or once no new delivery came
   for `idle_timeout` seconds (when given); then it disconnects and exits.

`client` is `socketio` (one python-socketio `AsyncClient` per feed, the default) or `raw` (one
bare non-blocking socket per feed, bench/wsclient.py: the same protocol, a fraction of the
cost). A `socketio` client stamps each `feed.update` with `time.time()` when its handler runs; a
`raw` one with the kernel's receive timestamp of the packet that brought it (SO_TIMESTAMPNS),
so that the figures do not include the time this process, busy with thousands of sockets, took
to read it; a `raw` process also lowers its priority (nice 10): the server comes first. Both
clocks are the poster's (`time.time()`: same machine). Progress goes to stderr; stdout carries
only the protocol. Every wait is bounded, and the process exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import socketio

from . import wsclient
from .limits import raise_open_files

FEED_UPDATE = "feed.update"
POLL_SECONDS = 0.02
STDIN_TIMEOUT = 900.0
DISCONNECT_TIMEOUT = 30.0
PROGRESS_EVERY = 1000


def log(message: str) -> None:
    print(f"[subscribers] {message}", file=sys.stderr, flush=True)


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Receipts:
    """When each activity id reached one socket subscribed to one feed."""

    def __init__(self, feed: str) -> None:
        self.feed = feed
        self.received: dict[str, float] = {}
        self.duplicates = 0
        self.events = 0

    def record(self, data: Any, at: float) -> None:
        """One `feed.update` (its data) that arrived at `at`."""
        self.events += 1
        for activity in data.get("new", []) if isinstance(data, dict) else []:
            activity_id = activity.get("id") if isinstance(activity, dict) else None
            if not isinstance(activity_id, str):
                continue
            if activity_id in self.received:
                self.duplicates += 1
            else:
                self.received[activity_id] = at


class Subscriber(Receipts):
    """A python-socketio `AsyncClient`; an event's time is when its handler runs."""

    def __init__(self, feed: str, http: aiohttp.ClientSession) -> None:
        super().__init__(feed)
        self.connected = False
        self.dropped = 0  # disconnects the client did not ask for
        self._closing = False
        self.sio = socketio.AsyncClient(
            reconnection=False, http_session=http, handle_sigint=False, request_timeout=10
        )
        self.sio.on(FEED_UPDATE, self._on_update)
        self.sio.on("disconnect", self._on_disconnect)

    async def _on_update(self, data: Any) -> None:
        self.record(data, time.time())

    async def _on_disconnect(self, reason: Any = None) -> None:
        if not self._closing:
            self.dropped += 1
        self.connected = False

    async def start(self, url: str, token: str, within: float) -> None:
        await self.sio.connect(
            url, transports=["websocket"], auth={"token": token}, wait_timeout=within
        )
        ack = await self.sio.call("subscribe", {"feed": self.feed}, timeout=within)
        if not (isinstance(ack, dict) and ack.get("ok")):
            await self.sio.disconnect()
            raise RuntimeError(f"subscribe {self.feed} refused: {ack!r}")
        self.connected = True

    async def stop(self) -> None:
        self._closing = True
        if self.sio.connected:
            await self.sio.disconnect()


class RawSubscriber(Receipts):
    """A bare socket (bench/wsclient.py); an event's time is the kernel's receive timestamp of
    its packet. Each `feed.update` packet is parsed for its activity ids."""

    def __init__(self, feed: str, http: aiohttp.ClientSession) -> None:
        super().__init__(feed)  # `http` unused: the socket is its own
        self._socket: wsclient.Subscriber | None = None

    @property
    def connected(self) -> bool:
        return self._socket is not None and self._socket.connected

    @property
    def dropped(self) -> int:
        return int(self._socket is not None and self._socket.dropped)

    async def start(self, url: str, token: str, within: float) -> None:
        host, port = wsclient.address(url)
        self._socket = wsclient.Subscriber(host, port, token, self.feed, self._on_event)
        await self._socket.start(within)

    def _on_event(self, packet: bytes, at: float) -> None:
        try:
            name, data, *_ = json.loads(packet[2:])
        except (ValueError, TypeError):
            return
        if name == FEED_UPDATE:
            self.record(data, at)

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.stop()


async def _read_message(reader: asyncio.StreamReader, within: float) -> dict[str, Any]:
    line = await asyncio.wait_for(reader.readline(), within)
    if not line:
        raise EOFError("stdin closed")
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"expected a JSON object, got {line[:80]!r}")
    return message


AnySubscriber = Subscriber | RawSubscriber


async def _connect_all(
    subscribers: list[AnySubscriber], url: str, token: str, concurrency: int, within: float
) -> list[str]:
    """Connect and subscribe every client, `concurrency` at a time; answer the errors."""
    slots = asyncio.Semaphore(concurrency)
    errors: list[str] = []
    done = 0

    async def one(subscriber: AnySubscriber) -> None:
        nonlocal done
        async with slots:
            try:
                await asyncio.wait_for(subscriber.start(url, token, within), within * 2)
            except Exception as exc:
                errors.append(f"{subscriber.feed}: {type(exc).__name__}: {exc}")
            done += 1
            if done % PROGRESS_EVERY == 0:
                log(f"{done}/{len(subscribers)} connected")

    await asyncio.gather(*(one(s) for s in subscribers))
    return errors


async def _wait_for(
    subscribers: list[AnySubscriber], expect: list[str], within: float, idle: float | None
) -> bool:
    """Until every connected socket holds every expected id, or `within` seconds, or (when
    `idle` is given) `idle` seconds without any new delivery; answer whether all did."""
    wanted = set(expect)
    now = time.monotonic()
    deadline, progress_at, delivered = now + within, now, -1
    pending = [s for s in subscribers if s.connected]
    while now < deadline:
        pending = [s for s in pending if not wanted.issubset(s.received)]
        if not pending:
            return True
        if idle is not None:
            count = sum(len(s.received) for s in pending)
            if count != delivered:
                progress_at, delivered = now, count
            elif now - progress_at > idle:
                log(f"no new delivery for {idle:g}s: giving up")
                return False
        await asyncio.sleep(POLL_SECONDS)
        now = time.monotonic()
    return False


def _receipts(subscribers: list[AnySubscriber]) -> dict[str, Any]:
    """The answer to a poll: the receipts since the last one, handed over and forgotten."""
    received = {}
    for subscriber in subscribers:
        if subscriber.received:
            received[subscriber.feed], subscriber.received = subscriber.received, {}
    return {
        "event": "receipts",
        "received": received,
        "connected": sum(s.connected for s in subscribers),
        "dropped": sum(s.dropped for s in subscribers),
        "duplicates": sum(s.duplicates for s in subscribers),
    }


async def run() -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    config = await _read_message(reader, STDIN_TIMEOUT)
    feeds: list[str] = list(config["feeds"])
    timeout = float(config.get("connect_timeout", 20.0))
    kinds: dict[str, Callable[[str, aiohttp.ClientSession], AnySubscriber]] = {
        "socketio": Subscriber,
        "raw": RawSubscriber,
    }
    client = config.get("client", "socketio")
    kind = kinds[client]
    if client == "raw":
        os.nice(10)  # arrival times are the kernel's: the server under test comes first
    limit = raise_open_files()
    if limit < len(feeds) + 100:
        log(f"warning: {len(feeds)} sockets, but only {limit} open files allowed (ulimit -n)")
    connector = aiohttp.TCPConnector(limit=0)  # one held connection per websocket
    async with aiohttp.ClientSession(connector=connector) as http:
        subscribers: list[AnySubscriber] = [kind(feed, http) for feed in feeds]
        started = time.monotonic()
        errors = await _connect_all(
            subscribers,
            config["url"],
            config["token"],
            int(config.get("concurrency", 50)),
            timeout,
        )
        connected = sum(s.connected for s in subscribers)
        seconds = time.monotonic() - started
        log(f"{connected}/{len(feeds)} subscribed in {seconds:.1f}s")
        send({
            "event": "ready",
            "connected": connected,
            "failed": len(feeds) - connected,
            "errors": errors[:10],
            "seconds": round(seconds, 3),
        })  # fmt: skip

        try:
            request = await _read_message(reader, STDIN_TIMEOUT)
            while request.get("poll"):
                send(_receipts(subscribers))
                request = await _read_message(reader, STDIN_TIMEOUT)
            expect = [str(i) for i in request.get("expect", [])]
            within = float(request.get("timeout", 30.0))
            idle = request.get("idle_timeout")
            complete = await _wait_for(
                subscribers, expect, within, None if idle is None else float(idle)
            )
            send({
                "event": "results",
                "complete": complete,
                "received": {s.feed: s.received for s in subscribers},
                "connected_at_end": sum(s.connected for s in subscribers),
                "dropped": sum(s.dropped for s in subscribers),
                "duplicates": sum(s.duplicates for s in subscribers),
                "events": sum(s.events for s in subscribers),
            })  # fmt: skip
        finally:
            slots = asyncio.Semaphore(100)

            async def stop(subscriber: AnySubscriber) -> None:
                async with slots:
                    try:
                        await asyncio.wait_for(subscriber.stop(), 5)
                    except Exception as exc:  # leaving anyway
                        log(f"disconnect {subscriber.feed}: {type(exc).__name__}")

            try:
                await asyncio.wait_for(
                    asyncio.gather(*(stop(s) for s in subscribers)), DISCONNECT_TIMEOUT
                )
            except TimeoutError:
                log("some clients did not disconnect in time")
    return 0


def main() -> int:
    try:
        return asyncio.run(run())
    except (EOFError, TimeoutError) as exc:
        log(f"stopping: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
