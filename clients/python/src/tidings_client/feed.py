"""A feed of a client: REST reads and writes, and live subscriptions (callbacks, or
`async for` over `stream()`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .rest import Activity, feed_path
from .subscription import Callback, Subscription

if TYPE_CHECKING:
    from .client import Tidings


class Feed:
    def __init__(self, client: Tidings, feed_id: str) -> None:
        feed_path(feed_id)  # ValueError now rather than at the first call
        self.client, self.id = client, feed_id

    def __repr__(self) -> str:
        return f"Feed({self.id!r})"

    async def get(self, **params: Any) -> dict[str, Any]:
        """`{"results": [...], "next": "..."}`: `limit`, `offset`, `id_lt`, `id_gt`, ..."""
        return await self.client.rest.read(self.id, params)

    async def add_activity(self, activity: Activity) -> Activity:
        """The stored activity (with its `id`)."""
        return dict(await self.client.rest.call("POST", feed_path(self.id), activity))

    async def add_activities(self, activities: list[Activity]) -> list[Activity]:
        answer = await self.client.rest.call("POST", feed_path(self.id), {"activities": activities})
        return list(answer["activities"])

    async def remove_activity(self, activity_id: str, foreign_id: bool = False) -> dict[str, Any]:
        """By id, or by foreign id with `foreign_id=True`."""
        params = {"foreign_id": "1"} if foreign_id else {}
        path = feed_path(self.id) + f"{activity_id}/"
        return dict(await self.client.rest.call("DELETE", path, params=params))

    async def follow(self, target: str, activity_copy_limit: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"target": target}
        if activity_copy_limit is not None:
            body["activity_copy_limit"] = activity_copy_limit
        return dict(await self.client.rest.call("POST", feed_path(self.id) + "follows/", body))

    async def unfollow(self, target: str, keep_history: bool = False) -> dict[str, Any]:
        params = {"keep_history": "1"} if keep_history else {}
        path = feed_path(self.id) + f"follows/{target}/"
        return dict(await self.client.rest.call("DELETE", path, params=params))

    async def subscribe(
        self,
        on_activity: Callback,
        since: str | None = None,
        on_removed: Callback | None = None,
        on_update: Callback | None = None,
        on_error: Callback | None = None,
        presence: dict[str, Any] | None = None,
    ) -> Subscription:
        """Live activities, each once, oldest first, across reconnects, server restarts and
        resyncs: `on_activity(activity)`; `on_removed(ids, event)`; `on_update(activity)` for
        an activity delivered before (an update); `on_error(exc)` when a recovery failed (it
        is retried). `since`: the last id the app has (default: the storage's, else the
        feed's newest now). `presence`: `{"info": {...}}` for a raid room. Returns after the
        server's ack, with what was missed since `since` already delivered."""
        subscription = Subscription(
            self.client, self.id, on_activity, since, on_removed, on_update, on_error, presence
        )
        self.client._track(subscription)
        return await subscription.start()

    async def stream(
        self, since: str | None = None, presence: dict[str, Any] | None = None
    ) -> AsyncIterator[Activity]:
        """`async for activity in feed.stream():` the same activities as `subscribe`'s
        `on_activity`; leaving the loop unsubscribes. A refused subscribe raises."""
        queue: asyncio.Queue[Activity] = asyncio.Queue()
        subscription = await self.subscribe(queue.put_nowait, since=since, presence=presence)
        try:
            while True:
                yield await queue.get()
        finally:
            await subscription.unsubscribe()
