"""The official npm socket.io-client, driven through tests/js/subscriber.mjs, for the tests."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from tests.support import ROOT

WAIT = 15.0  # bound of every wait for a line of the node client, seconds
Event = dict[str, Any]
Predicate = Callable[[Event], bool]


class NodeSubscriber:
    """tests/js/subscriber.mjs: the official socket.io-client, one JSON line per happening."""

    def __init__(self, url: str, jwt_token: str | None, feeds: list[str], since: str = "") -> None:
        options = {"url": url, "token": jwt_token or "", "feeds": feeds, "since": since or None}
        self.process = subprocess.Popen(
            ["node", "tests/js/subscriber.mjs", json.dumps(options)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(json.loads(raw))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.stderr.append(raw.decode(errors="replace"))

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if predicate(line)]

    async def expect(
        self, predicate: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """The first line matching `predicate`, waiting for it (bounded) without blocking."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            found = self.matching(predicate)
            if found:
                return found[0]
            if loop.time() > deadline or self.process.poll() is not None:
                raise AssertionError(
                    f"node subscriber: no {what} within {WAIT}s; "
                    f"lines {self.lines}, stderr {''.join(self.stderr)[-2000:]}"
                )
            await asyncio.sleep(0.02)

    async def subscribed(self, feed: str) -> dict[str, Any]:
        line = await self.expect(
            lambda line: line["type"] == "subscribed" and line["feed"] == feed, f"ack for {feed}"
        )
        return dict(line["ack"])

    async def event(self, predicate: Predicate, what: str) -> Event:
        line = await self.expect(
            lambda line: line["type"] == "event" and predicate(line["data"]), what
        )
        assert line["name"] == "feed.update"
        return dict(line["data"])

    def events(self, predicate: Predicate) -> list[Event]:
        return [line["data"] for line in self.matching(lambda x: x["type"] == "event")
                if predicate(line["data"])]  # fmt: skip

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
        for thread in self._threads:
            thread.join(5)


class NodeDriver(NodeSubscriber):
    """tests/js/driver.mjs: the official socket.io-client, emitting what the test tells it."""

    def __init__(self, url: str, jwt_token: str | None, namespace: str = "/",
                 transports: list[str] | None = None) -> None:  # fmt: skip
        options = {"url": url, "token": jwt_token or "", "namespace": namespace,
                   "transports": transports or ["websocket"]}  # fmt: skip
        self.process = subprocess.Popen(
            ["node", "tests/js/driver.mjs", json.dumps(options)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines = []
        self.stderr = []
        self._next_id = 0
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def emit(self, event: str, *args: Any) -> int:
        """Emit `event` with an ack; `{"$buffer": "text"}` arguments go as binary."""
        assert self.process.stdin is not None
        self._next_id += 1
        command = {"id": self._next_id, "emit": event, "args": list(args)}
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        self.process.stdin.flush()
        return self._next_id

    async def ack(self, ack_id: int) -> list[Any]:
        line = await self.expect(
            lambda x: x["type"] in ("ack", "ack_timeout") and x["id"] == ack_id, f"ack {ack_id}"
        )
        assert line["type"] == "ack", line
        return list(line["args"])

    async def call(self, event: str, *args: Any) -> list[Any]:
        return await self.ack(self.emit(event, *args))
