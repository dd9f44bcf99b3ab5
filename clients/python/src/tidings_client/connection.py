"""The one Socket.IO connection of a client (python-socketio's AsyncClient), kept up by
itself: it reconnects with backoff after any disconnect (a server restart, a token that
expired, a network error), refreshes its token before `exp` and on `token.expired`, and tells
its listeners when it (re)connected and when the server asked for a `resync`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from .errors import NotConnected, TidingsError
from .tokens_keeper import TokenKeeper

log = logging.getLogger("tidings_client")
Listener = Callable[..., Awaitable[None] | None]
STATES = ("connecting", "connected", "disconnected")
REACTION_EVENTS = ("reaction.added", "reaction.updated", "reaction.deleted")


class Connection:
    def __init__(
        self,
        url: str,
        tokens: TokenKeeper,
        transports: list[str] | None = None,
        reconnect_delay: float = 0.2,
        reconnect_delay_max: float = 5.0,
        call_timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.tokens = tokens
        self.transports = transports or ["websocket"]
        self.delay, self.delay_max = reconnect_delay, reconnect_delay_max
        self.call_timeout = call_timeout
        self.state = "disconnected"
        self.connects = 0  # successful connects, the first included
        self.on_connected: list[Callable[[], None]] = []  # subscriptions re-subscribe
        self.on_resync: list[Callable[[], None]] = []
        self.on_update: Callable[[dict[str, Any]], None] | None = None
        self.on_dropped: Callable[[list[str]], Awaitable[None]] | None = None
        self._listeners: dict[str, list[Listener]] = {}
        self._up = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refused: Any = None
        self.sio = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
        self.sio.on("connect", self._connected)
        self.sio.on("disconnect", self._disconnected)
        self.sio.on("connect_error", self._connect_error)
        self.sio.on("feed.update", self._feed_update)
        self.sio.on("resync", self._resync)
        self.sio.on("token.expired", self._token_expired)
        for name in ("presence.join", "presence.leave", *REACTION_EVENTS):
            self.sio.on(name, self._relay(name))

    # ------------------------------------------------------------------ listeners

    def on(self, event: str, callback: Listener) -> Callable[[], None]:
        """`callback(*args)` on `event` ("state", "presence.join", "presence.leave", "error");
        answers a function that removes it."""
        self._listeners.setdefault(event, []).append(callback)
        return lambda: self._listeners.get(event, []).remove(callback)

    def emit_local(self, event: str, *args: Any) -> None:
        for callback in list(self._listeners.get(event, [])):
            try:
                result = callback(*args)
                if asyncio.iscoroutine(result):
                    self.spawn(result)
            except Exception:
                log.exception("%s listener failed", event)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.emit_local("state", state)

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ connecting

    async def ensure(self, within: float | None = None) -> None:
        """Connected, or connecting in the background and waited for (`within` seconds;
        None: as long as it takes)."""
        if self._closing:
            raise NotConnected("the client is closed")
        idle = self._runner is None or self._runner.done()
        if idle and not self.sio.connected:
            self._runner = asyncio.create_task(self._connect_loop())
        if within is None:
            await self._up.wait()
        else:
            await asyncio.wait_for(self._up.wait(), within)

    async def _connect_loop(self) -> None:
        delay = self.delay
        while not self._closing and not self.sio.connected:
            self._set_state("connecting")
            self._refused = None
            token: str | None = None
            try:
                token = await self.tokens.current()
                await self.sio.connect(
                    self.url, auth={"token": token}, transports=self.transports,
                    wait_timeout=10,
                )  # fmt: skip
                return
            except (socketio.exceptions.ConnectionError, OSError, TidingsError) as exc:
                refused = self._refused
                if isinstance(refused, dict) and refused.get("code") == 3:
                    await self._renew_quietly(token)
                log.debug("connect to %s failed: %s", self.url, exc)
            except Exception as exc:  # get_token failed: try again later
                log.warning("connect to %s failed: %r", self.url, exc)
                self.emit_local("error", exc)
            self._set_state("disconnected")
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.delay_max)

    async def _renew_quietly(self, stale: str | None) -> None:
        try:
            await self.tokens.renew(stale)
        except Exception as exc:
            self.emit_local("error", exc)

    async def _connected(self) -> None:
        self.connects += 1
        self._up.set()
        self._set_state("connected")
        self._schedule_refresh()
        for listener in list(self.on_connected):
            listener()

    async def _disconnected(self, *reason: Any) -> None:
        self._up.clear()
        if self._refresher is not None:
            self._refresher.cancel()
        self._set_state("disconnected")
        if not self._closing:
            self.spawn(self._reconnect_soon())

    async def _reconnect_soon(self) -> None:
        # python-socketio calls the disconnect handler before it has finished: no event
        # says when it has, so look (a few ms).
        for _ in range(500):
            if not (self.sio.connected or self.sio.eio.state == "connected"):
                break
            await asyncio.sleep(0.01)
        if not self._closing and (self._runner is None or self._runner.done()):
            self._runner = asyncio.create_task(self._connect_loop())

    async def _connect_error(self, data: Any = None) -> None:
        self._refused = data

    async def close(self) -> None:
        self._closing = True
        for task in (self._runner, self._refresher):
            if task is not None:
                task.cancel()
        with contextlib.suppress(Exception):
            await self.sio.disconnect()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._set_state("disconnected")

    # ------------------------------------------------------------------ calls and events

    async def call(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        """The ack of `event` when it is `ok`; TidingsError when refused, NotConnected when
        the socket went away before the ack."""
        try:
            await self.ensure(self.call_timeout)
        except TimeoutError as exc:
            raise NotConnected(f"{event}: not connected within {self.call_timeout} s") from exc
        try:
            ack = await self.sio.call(event, data, timeout=self.call_timeout)
        except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError,
                socketio.exceptions.DisconnectedError) as exc:  # fmt: skip
            raise NotConnected(f"{event}: no ack ({type(exc).__name__})") from exc
        if not isinstance(ack, dict) or ack.get("ok") is not True:
            error = ack.get("error") if isinstance(ack, dict) else ack
            raise TidingsError.from_body(error)
        return ack

    async def _feed_update(self, data: Any) -> None:
        if isinstance(data, dict) and self.on_update is not None:
            self.on_update(data)

    async def _resync(self, data: Any = None) -> None:
        for listener in list(self.on_resync):
            listener()

    def _relay(self, name: str) -> Callable[[Any], Awaitable[None]]:
        async def relay(data: Any) -> None:
            self.emit_local(name, data)

        return relay

    # ------------------------------------------------------------------ tokens

    def _schedule_refresh(self) -> None:
        if self._refresher is not None and self._refresher is not asyncio.current_task():
            self._refresher.cancel()
        delay = self.tokens.refresh_in()
        if delay is not None:
            self._refresher = asyncio.create_task(self._refresh_after(delay))

    async def _refresh_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.refresh_token(self.tokens.token)

    async def _token_expired(self, data: Any = None) -> None:
        self.spawn(self.refresh_token(self.tokens.token))

    async def refresh_token(self, stale: str | None) -> None:
        """A new token from `get_token`, sent with `token.refresh`; when that fails, the
        socket reconnects (with a new token if one can be had)."""
        try:
            if not await self.tokens.renew(stale):
                return
            assert self.tokens.token is not None
            ack = await self.call("token.refresh", {"token": self.tokens.token})
        except NotConnected:
            return  # the reconnect uses the new token
        except Exception as exc:
            log.warning("token refresh failed (%r): reconnecting", exc)
            self.emit_local("error", exc)
            with contextlib.suppress(Exception):
                await self.sio.disconnect()
            return
        self._schedule_refresh()
        dropped = [str(feed) for feed in ack.get("dropped") or []]
        if dropped and self.on_dropped is not None:  # the new token may not read them
            await self.on_dropped(dropped)
