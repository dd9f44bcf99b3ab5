"""The slow-consumer watch of python-socketio's sockets (server/tidings/realtime/slow_consumers.py):
bounded by bytes as well as packets, and it never stops on an error. The sockets here are small
stand-ins for python-engineio's (the attributes the watch reads); the integration test
tests/integration/test_conformance.py drops a real one."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import socketio
from engineio import packet

from tidings.realtime.transport import slow_consumers
from tidings.realtime.transport.slow_consumers import watch_slow_consumers


class Socket:
    closing = closed = False

    def __init__(self, *sizes: int) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        for size in sizes:
            self.queue.put_nowait(packet.Packet(packet.MESSAGE, data="x" * size))
        self.dropped: dict[str, Any] | None = None

    async def close(self, **kw: Any) -> None:
        self.dropped = kw


class Broken(Socket):
    """What a python-engineio upgrade that renamed things (or a bug) would look like."""

    @property
    def queue(self) -> Any:  # type: ignore[override]
        raise RuntimeError("no queue here")

    @queue.setter
    def queue(self, value: Any) -> None:
        pass


async def test_the_watch_survives_any_error_and_logs_it_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(slow_consumers, "INTERVAL", 0.01)
    sio = socketio.AsyncServer(async_mode="aiohttp")
    sio.eio.sockets["broken"] = Broken()
    watch = asyncio.create_task(watch_slow_consumers(sio, 10))
    try:
        await asyncio.sleep(0.2)  # ~20 looks, each failing
        assert not watch.done(), watch
        failures = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(failures) == 1 and failures[0].exc_info is not None, failures
        del sio.eio.sockets["broken"]
        slow = sio.eio.sockets["slow"] = Socket(*[10] * 11)  # one packet over the bound
        await _dropped(slow)
        assert any("works again" in r.getMessage() for r in caplog.records)
    finally:
        watch.cancel()


async def test_the_watch_drops_by_bytes_as_well_as_packets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slow_consumers, "INTERVAL", 0.01)
    sio = socketio.AsyncServer(async_mode="aiohttp")
    few_big, many_small = Socket(3000, 3000), Socket(*[10] * 50)
    sio.eio.sockets.update(big=few_big, small=many_small)
    watch = asyncio.create_task(watch_slow_consumers(sio, 100, 5000))
    try:
        await _dropped(few_big)
        assert few_big.dropped is not None and few_big.dropped["abort"] is True
        assert many_small.dropped is None  # 50 packets, 500 bytes: under both bounds
    finally:
        watch.cancel()


async def _dropped(socket: Socket) -> None:
    for _ in range(200):
        if socket.dropped is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not dropped")
