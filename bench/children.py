"""The parent side of bench/subscribers.py: subscriber processes spoken to in JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from .limits import raise_open_files
from .services import ROOT

CLOSE_TIMEOUT = 45.0


class SubscriberProcess:
    """bench/subscribers.py as a child process, spoken to in JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, config: dict[str, Any]) -> SubscriberProcess:
        raise_open_files()  # inherited: one file descriptor per socket
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.subscribers",
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=256 * 1024 * 1024,
        )  # fmt: skip
        child = cls(process)
        await child.send(config)
        return child

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    async def receive(self, event: str, within: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), within)
        if not line:
            raise RuntimeError(f"the subscriber process exited ({await self.process.wait()})")
        message: dict[str, Any] = json.loads(line)
        if message.get("event") != event:
            raise RuntimeError(f"expected {event!r} from the subscribers, got {line[:200]!r}")
        return message

    async def poll(self, within: float) -> dict[str, Any]:
        """The receipts since the last poll, and the sockets' state (bench/subscribers.py)."""
        await self.send({"poll": True})
        return await self.receive("receipts", within)

    async def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), CLOSE_TIMEOUT)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def subscriber_config(args: argparse.Namespace, url: str, token: str) -> dict[str, Any]:
    """What every subscriber process is told of the target and the socket options."""
    return {
        "url": url,
        "token": token,
        "client": args.client,
        "concurrency": args.connect_concurrency,
        "connect_timeout": args.connect_timeout,
    }


async def start_subscribers(
    feeds: Sequence[str], procs: int, config: dict[str, Any], into: list[SubscriberProcess]
) -> None:
    """Spread `feeds` over `procs` subscriber processes (appended to `into` as they start, so
    that the caller closes every one that did), each given `config` and its share."""
    for k in range(procs):
        into.append(await SubscriberProcess.start({**config, "feeds": list(feeds[k::procs])}))
