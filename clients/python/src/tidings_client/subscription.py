"""One feed's live subscription, which recovers by itself.

Everything it does runs in one task, in the order it happened (an inbox): a live
`feed.update`, and a *recovery* whenever the socket (re)connects or the server says `resync`:
`subscribe {feed, since}` (since: the ledger's, a little below the last delivered id), the
`missed` activities, then, with `more`, further pages through `subscribe` with `since` the last
id of the page before (a grouped feed comes activity by activity, never group by group). Live
events that arrive meanwhile wait behind the recovery in the inbox, so the app gets each
activity once, oldest first: an id already delivered is never delivered again (it is an
update), whether it comes in `missed`, a further page or live.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .delivery import ZERO_ID, Activity, Ledger
from .errors import NotConnected, TidingsError

if TYPE_CHECKING:
    from .client import Tidings

log = logging.getLogger("tidings_client")
Callback = Callable[..., Awaitable[None] | None]
RETRY = 1.0  # seconds before a failed recovery is tried again (the socket still up)


async def _call(callback: Callback | None, *args: Any) -> None:
    if callback is not None:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result


class Subscription:
    """Made by `Feed.subscribe`; `unsubscribe()` ends it. `last_id` is the newest id
    delivered (kept in the client's storage)."""

    def __init__(
        self,
        client: Tidings,
        feed: str,
        on_activity: Callback,
        since: str | None = None,
        on_removed: Callback | None = None,
        on_update: Callback | None = None,
        on_error: Callback | None = None,
        presence: dict[str, Any] | None = None,
    ) -> None:
        self.client, self.feed = client, feed
        self.on_activity, self.on_removed = on_activity, on_removed
        self.on_update, self.on_error = on_update, on_error
        self.presence = presence
        self.ledger = Ledger(since)
        self.recoveries = 0  # completed (re)subscribes, the first included
        self.active = False
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._synced = False
        self._acked_on = 0  # the connection (its number) on which the last subscribe was acked
        self._held: list[dict[str, Any]] = []  # live events while a recovery is owed
        self._worker: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._saved: str | None = None  # the last id written to the client's storage

    @property
    def last_id(self) -> str | None:
        return None if self.ledger.last == ZERO_ID else self.ledger.last

    @property
    def _key(self) -> str:
        return f"tidings:last:{self.feed}"

    async def start(self) -> Subscription:
        """Subscribe (after the ack, with what was missed delivered); TidingsError if the
        server refuses."""
        try:
            if self.ledger.last is None:
                self.ledger.last = await self.client.storage.get(self._key)
            if self.ledger.last is None:  # a new subscription starts at the feed's newest
                newest = await self.client.rest.read(self.feed, {"limit": 1})
                results = newest.get("results") or []
                self.ledger.last = str(results[0]["id"]) if results else ZERO_ID
            self._saved = self.ledger.last  # where it starts: nothing handed over to keep yet
            started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.active = True
            self._worker = asyncio.create_task(self._work())
            self._inbox.put_nowait(("recover", started))
            await started
        except BaseException:
            await self._stop()
            raise
        return self

    # ------------------------------------------------------------------ from the connection

    def recover(self, connect: int | None = None) -> None:
        """Re-subscribe with `since`: after the socket's `connect`-th connect (skipped when
        the subscription was acked on that connection already), or a resync (None)."""
        if self.active:
            self._inbox.put_nowait(("recover", connect))

    def live(self, event: dict[str, Any]) -> None:
        if self.active:
            self._inbox.put_nowait(("live", event))

    # ------------------------------------------------------------------ the worker

    async def _work(self) -> None:
        while True:
            kind, data = await self._inbox.get()
            try:
                if kind == "recover":
                    await self._recover(data)
                elif self._synced:
                    await self._live(data)
                else:
                    self._held.append(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("subscription of %s: a callback failed", self.feed)
                await self._report(exc)

    async def _recover(self, data: asyncio.Future[None] | int | None) -> None:
        started = data if isinstance(data, asyncio.Future) else None
        if isinstance(data, int) and self._synced and data == self._acked_on:
            return  # subscribed on this very connection already
        self._synced = False
        try:
            await self._resubscribe()
        except Exception as exc:
            if started is not None and not started.done():
                started.set_exception(exc)
                return
            if not isinstance(exc, NotConnected):
                await self._report(exc)
                self._retry_later()
            return  # NotConnected: the next connect recovers
        self.recoveries += 1
        self._synced = True
        held, self._held = self._held, []
        for event in held:
            await self._live(event)
        if started is not None and not started.done():
            started.set_result(None)

    async def _resubscribe(self) -> None:
        since = self.ledger.since()
        while True:
            request: dict[str, Any] = {"feed": self.feed}
            if since is not None:
                request["since"] = since
            if self.presence is not None:
                request["presence"] = self.presence
            ack = await self.client.connection.call("subscribe", request)
            self._acked_on = self.client.connection.connects
            missed = [a for a in ack.get("missed") or [] if isinstance(a, dict)]
            await self._deliver(missed)
            if not (ack.get("more") and missed):
                return
            since = str(missed[-1]["id"])  # the next page: entries, not groups

    def _retry_later(self) -> None:
        if self._retry is None or self._retry.cancelled():
            loop = asyncio.get_running_loop()
            self._retry = loop.call_later(RETRY, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if not self._synced:
            self.recover(None)

    async def _live(self, event: dict[str, Any]) -> None:
        new = [a for a in event.get("new") or [] if isinstance(a, dict)]
        await self._deliver(new, live=True)
        deleted = [str(x) for x in event.get("deleted") or []]
        if deleted:
            await self._hand(self.on_removed, deleted, event)

    async def _deliver(self, activities: list[Activity], live: bool = False) -> None:
        """Each new one to `on_activity`, oldest first. One delivered already comes again
        when it was in `missed` and live (dropped), or when it was updated (to `on_update`,
        live only); one below the ledger's `since` that this client has not seen (an update of
        one delivered before a restart) goes to `on_update` too."""
        delivered = False
        for activity in self.ledger.sort(activities):
            activity_id = activity["id"]
            if self.ledger.is_new(activity_id):
                self.ledger.delivered(activity)
                delivered = True
                await self._hand(self.on_activity, activity)
            elif live and not self.ledger.unchanged(activity):
                self.ledger.record(activity)
                await self._hand(self.on_update, activity)
        if delivered:
            await self._save()

    async def _save(self) -> None:
        """Keep the last id handed over in the client's storage (once per change)."""
        last = self.ledger.last
        if last is not None and last != self._saved:
            await self.client.storage.set(self._key, last)
            self._saved = last

    async def _hand(self, callback: Callback | None, *args: Any) -> None:
        """Call the app; its failure goes to `on_error` and stops nothing (the activity
        counts as delivered: it is not handed over again)."""
        try:
            await _call(callback, *args)
        except Exception as exc:
            log.exception("a callback of the subscription of %s failed", self.feed)
            await self._report(exc)

    async def _report(self, exc: BaseException) -> None:
        try:
            await _call(self.on_error, exc)
        except Exception:
            log.exception("on_error of %s failed", self.feed)

    # ------------------------------------------------------------------ ending

    async def unsubscribe(self) -> None:
        """Stop: no callback runs after this returns."""
        if not self.active:
            return
        await self._stop()
        with contextlib.suppress(TidingsError, OSError, TimeoutError):
            if self.client.connection.state == "connected" and not self.client.subscribed(
                self.feed
            ):
                await self.client.connection.call("unsubscribe", {"feed": self.feed})

    async def end(self, reason: TidingsError) -> None:
        """Ended by the server (the token may no longer read the feed): `on_error(reason)`."""
        if self.active:
            await self._stop()
            await self._report(reason)

    async def _stop(self) -> None:
        self.active = False
        self.client._forget(self)
        if self._retry is not None:
            self._retry.cancel()
        if self._worker is not None and self._worker is not asyncio.current_task():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        # What was handed over is kept even when the stop cut the write of its position short:
        # the next start of the app must not hand it over again.
        await self._save()
