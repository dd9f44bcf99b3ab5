"""One page of headless Chromium, driven through examples/react-activity-feed/e2e/page.mjs
(playwright-core on Debian's chromium): each call sends one JSON command and awaits its answer;
what the page logs (console errors, page errors) is kept for the failure messages."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

WAIT = 20.0  # bound of every answer, seconds (the page's own waits are shorter)


class PageError(AssertionError):
    """A step the page could not do (a selector never appeared, a click missed)."""


class BrowserPage:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.logs: list[str] = []
        self._answers: dict[int, asyncio.Future[Any]] = {}
        self._next = 0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, example: Path, width: int = 900, height: int = 1000) -> BrowserPage:
        process = await asyncio.create_subprocess_exec(
            "node", "e2e/page.mjs", json.dumps({"width": width, "height": height}),
            cwd=example, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = json.loads(raw)
            answer = self._answers.pop(line.get("id", -1), None)
            if answer is None:
                self.logs.append(f"{line.get('type')}: {line.get('text')}")
            elif line["ok"]:
                answer.set_result(line["result"])
            else:
                answer.set_exception(PageError(f"{line['error']}\npage logs: {self.logs[-20:]}"))
        for answer in self._answers.values():  # the driver died
            answer.set_exception(PageError(f"the browser driver exited: {self.logs[-20:]}"))

    async def do(self, step: str, **args: Any) -> Any:
        assert self.process.stdin is not None
        self._next += 1
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._answers[self._next] = answer
        command = {"id": self._next, "do": step, **args}
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        return await asyncio.wait_for(answer, WAIT)

    async def wait(self, selector: str, text: str | None = None, timeout_ms: int = 10000) -> None:
        await self.do("wait", selector=selector, text=text, timeout=timeout_ms)

    async def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        await self._reader
