"""What the client tests share: tokens, a bounded wait, an app that records what it was
handed, and a poster."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from harness.common import token
from tests.support import API_KEY
from tidings_client import Tidings

WAIT = 15.0
SERVER_TOKEN = token({"resource": "*", "action": "*", "feed_id": "*"})
__all__ = ["API_KEY", "SERVER_TOKEN", "WAIT", "App", "post", "until", "user_token"]


def user_token(user_id: str, ttl: float | None = None, **claims: Any) -> str:
    body: dict[str, Any] = {"user_id": user_id, **claims}
    if ttl is not None:
        body["exp"] = int(time.time() + ttl)
    return token(body)


async def until(check: Callable[[], Any], what: str, within: float = WAIT) -> Any:
    """Poll `check()` until it is truthy (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = check()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class App:
    """Records each callback of a subscription, in order."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.updated: list[dict[str, Any]] = []
        self.removed: list[str] = []
        self.errors: list[BaseException] = []

    @property
    def ids(self) -> list[str]:
        return [a["id"] for a in self.got]

    async def on_activity(self, activity: dict[str, Any]) -> None:
        self.got.append(activity)

    def on_update(self, activity: dict[str, Any]) -> None:
        self.updated.append(activity)

    def on_removed(self, ids: list[str], event: dict[str, Any]) -> None:
        self.removed.extend(ids)

    def on_error(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def callbacks(self) -> dict[str, Any]:
        return {"on_update": self.on_update, "on_removed": self.on_removed,
                "on_error": self.on_error}  # fmt: skip


def writer(url: str) -> Tidings:
    """A backend's client: REST with the server token."""
    return Tidings(url, API_KEY, token=SERVER_TOKEN)


async def post(client: Tidings, feed: str, count: int, tag: str = "") -> list[str]:
    """`count` activities added to `feed` over REST, one after the other: their ids."""
    ids = []
    for n in range(count):
        thing = f"o:{tag}{n}:{uuid.uuid4().hex[:6]}"
        added = await client.feed(feed).add_activity({"actor": "poster", "verb": "post",
                                                      "object": thing})  # fmt: skip
        ids.append(added["id"])
    return ids
