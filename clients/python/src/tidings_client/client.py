"""`Tidings`: one server, one socket, any number of feeds."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .connection import Connection, Listener
from .errors import TidingsError
from .feed import Feed
from .reactions import Handler, ReactionWatch
from .rest import Activity, Rest
from .storage import MemoryStorage, Storage
from .subscription import Subscription
from .tokens import TokenSource
from .tokens_keeper import TokenKeeper


class Tidings:
    """`Tidings(url, api_key, token=..., get_token=...)`: REST with the token (renewed through
    `get_token` when it expires), and a Socket.IO connection opened at the first
    subscription (or `connect()`), kept up by itself. Use `async with`, or `await close()`.

    `refresh_ahead`: seconds before a token's `exp` that `get_token` is called (None: only
    when the server says it expired). `transports`: python-socketio's (WebSocket only by
    default; `["polling", "websocket"]` starts with long-polling). `clock`: the device's
    clock (seconds since the epoch), which tokens are planned against (tokens_keeper.py)."""

    def __init__(
        self,
        url: str,
        api_key: str,
        token: str | None = None,
        get_token: TokenSource | None = None,
        storage: Storage | None = None,
        transports: list[str] | None = None,
        refresh_ahead: float | None = 30.0,
        reconnect_delay: float = 0.2,
        reconnect_delay_max: float = 5.0,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.tokens = TokenKeeper(token, get_token, refresh_ahead, clock)
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self.rest = Rest(
            self.url, api_key, self.tokens.current, self._renew, timeout, self.tokens.server_time
        )
        self.connection = Connection(
            self.url, self.tokens, transports, reconnect_delay, reconnect_delay_max, timeout
        )
        self.connection.on_connected.append(self._reconnected)
        self.connection.on_resync.append(self._recover_all)
        self.connection.on_update = self._route
        self.connection.on_dropped = self._dropped
        self._subscriptions: list[Subscription] = []
        self._watches: list[ReactionWatch] = []

    async def _renew(self) -> bool:
        return await self.tokens.renew(self.tokens.token)

    async def __aenter__(self) -> Tidings:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def feed(self, feed_id: str) -> Feed:
        """`client.feed("timeline:bob")`."""
        return Feed(self, feed_id)

    def on(self, event: str, callback: Listener) -> Callable[[], None]:
        """`"state"` (`callback("connecting" | "connected" | "disconnected")`),
        `"presence.join"`/`"presence.leave"` (`callback(data)`), `"error"`. Returns a
        function that removes the callback."""
        return self.connection.on(event, callback)

    @property
    def state(self) -> str:
        return self.connection.state

    async def connect(self) -> None:
        """Open the socket now (subscribing does it too)."""
        await self.connection.ensure(self.connection.call_timeout)

    async def presence(
        self, feed: str, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """`{"feed", "count", "members": [{"user_id", "info", "connections"}], "cursor"}`."""
        request: dict[str, Any] = {"feed": feed}
        if limit is not None:
            request["limit"] = limit
        if cursor is not None:
            request["cursor"] = cursor
        return await self.connection.call("presence", request)

    async def publish(self, feed: str, activity: Activity) -> Activity:
        """Add an activity over the socket (as REST's add does); the stored activity, once
        the feed holds it."""
        ack = await self.connection.call("publish", {"feed": feed, "activity": activity})
        return dict(ack["activity"])

    async def watch_reactions(
        self, activity_id: str, handler: Handler, since: str | None = None
    ) -> ReactionWatch:
        """Hear an activity's reactions live (reactions.py): `handler(event)` once per change,
        also for the changes made while the socket was away (it watches again with `since`
        after every reconnect and resync). `await watch.unwatch()` stops it."""
        watch = ReactionWatch(self.connection, activity_id, handler, since, lambda: any(
            w.active and w.activity_id == activity_id for w in self._watches
        ))  # fmt: skip
        await watch.start()
        self._watches = [w for w in self._watches if w.active] + [watch]
        return watch

    async def close(self) -> None:
        for watch in self._watches:
            watch.active = False
        for subscription in list(self._subscriptions):
            await subscription._stop()
        await self.connection.close()
        await self.rest.close()

    # ------------------------------------------------------------------ subscriptions

    def _track(self, subscription: Subscription) -> None:
        self._subscriptions.append(subscription)

    def _forget(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def subscribed(self, feed: str) -> bool:
        return any(s.feed == feed for s in self._subscriptions)

    def _reconnected(self) -> None:
        for subscription in list(self._subscriptions):
            subscription.recover(self.connection.connects)
        self._recover_watches()

    def _recover_all(self) -> None:
        for subscription in list(self._subscriptions):
            subscription.recover(None)
        self._recover_watches()

    def _recover_watches(self) -> None:
        for watch in self._watches:
            watch.recover()

    async def _dropped(self, feeds: list[str]) -> None:
        """A refreshed token may no longer read `feeds`: their subscriptions end, with a
        NotAllowed error to their `on_error`."""
        for subscription in list(self._subscriptions):
            if subscription.feed in feeds:
                await subscription.end(TidingsError(
                    f"the refreshed token may not read {subscription.feed}: unsubscribed",
                    17, "NotAllowedException",
                ))  # fmt: skip

    def _route(self, event: dict[str, Any]) -> None:
        feed = event.get("feed")
        for subscription in list(self._subscriptions):
            if subscription.feed == feed:
                subscription.live(event)
