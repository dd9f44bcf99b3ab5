"""Stream's realtime clients (tests/js/faye_subscriber.mjs: the getstream SDK's
`feed.subscribe()`, or the npm `faye` client with the auth extension stream-js installs) for
the tests, one JSON line per subscription, refusal and message."""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any

from harness.common import API_KEY, token
from tests.node_client import NodeSubscriber
from tests.support import ROOT

APP_ID = "tidings"  # realtime.faye_app_id's default


class FayeSubscriber(NodeSubscriber):
    """tests/js/faye_subscriber.mjs: one JSON line per subscription, refusal and message."""

    def __init__(self, url: str, user: str, feeds: list[list[str]], client: str = "sdk",
                 disable: list[str] | None = None) -> None:  # fmt: skip
        options = {"url": url, "key": API_KEY, "appId": APP_ID, "token": token({"user_id": user}),
                   "feeds": feeds, "client": client, "disable": disable or []}  # fmt: skip
        self.process = subprocess.Popen(
            ["node", "tests/js/faye_subscriber.mjs", json.dumps(options)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.lines: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    async def subscribed(self, feed: str) -> dict[str, Any]:
        channel = channel_of(feed)
        return await self.expect(
            lambda x: x["type"] in ("subscribed", "refused") and x["channel"] == channel,
            f"subscription of {channel}",
        )

    async def message(self, what: str, predicate: Any) -> dict[str, Any]:
        line = await self.expect(lambda x: x["type"] == "message" and predicate(x["data"]), what)
        return dict(line["data"])

    async def added(self, activity_id: str) -> dict[str, Any]:
        return await self.message(
            f"new {activity_id}", lambda d: any(a["id"] == activity_id for a in d["new"])
        )

    def messages(self) -> list[dict[str, Any]]:
        return [line["data"] for line in self.matching(lambda x: x["type"] == "message")]


def channel_of(feed: str) -> str:
    return f"/site-{APP_ID}-feed-{feed.replace(':', '')}"
