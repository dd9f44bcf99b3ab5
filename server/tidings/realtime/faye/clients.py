"""Faye clients: each a `Peer` of the node's one room registry, reached through `Clients`.

A client is made by a handshake and lives while it connects: a client that has not been seen
(no connect pending, none begun) for twice the connect timeout is forgotten, as the faye
server forgets it, and leaves its rooms. Its subscriptions are the feed rooms (and the pull
rooms) a socket's subscribe joins, so the broadcaster's `feed.update` reaches it wherever it
was published, through `emit` (this is the `Outlet` of Faye peers): the event becomes Stream's
message on the feed's channel, put in the client's inbox, which its connect (long-polling) or
its WebSocket takes.

A client whose inbox holds more than `MAX_INBOX` messages is not reading: it is forgotten (its
next connect is answered `401 Unknown client`, and the SDK hands-shakes and subscribes again).
On `resync` (the bus says events to its rooms may have been lost) each subscription is sent
what its feed holds past the last activity it was sent (`new`), read from the store.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from ...domain.events import FEED_UPDATE, RESYNC, feed_update
from ...domain.feeds import FeedId
from ...domain.ids import id_floor
from ...metrics import DELIVERIES
from ...runtime.background import spawn
from ..transport.peers import Peer, Rooms
from . import protocol as p

log = logging.getLogger(__name__)
MAX_INBOX = 1000  # messages waiting for a client that does not read; more: it is forgotten
MAX_CLIENTS = 100_000  # clients of one node; a handshake past it is refused
SWEEP_SECONDS = 5.0  # how often forgotten clients are looked for
Missed = Callable[[FeedId, str, int], Awaitable[Any]]  # FeedService.missed


class FayeClient(Peer):
    """One Faye client. `channels`: subscribed feed -> its channel; `last`: the newest activity
    sent on each, where a resync starts."""

    __slots__ = ("channels", "connecting", "inbox", "last", "seen", "waiter")

    def __init__(self, sid: str, outlet: Clients) -> None:
        super().__init__(sid, outlet)
        self.channels: dict[str, str] = {}
        self.last: dict[str, str] = {}
        self.inbox: deque[p.Message] = deque()
        self.waiter: asyncio.Future[None] | None = None  # the connect waiting for messages
        self.connecting = 0
        self.seen = time.monotonic()


class Clients:
    """The Faye clients of this node (by `clientId`), and the `Outlet` that reaches them."""

    def __init__(
        self, rooms: Rooms, app_id: str, timeout: float, missed: Missed, max_missed: int
    ) -> None:
        self.rooms, self.app_id, self.timeout = rooms, app_id, timeout
        self._missed, self._max_missed = missed, max_missed
        self.clients: dict[str, FayeClient] = {}

    # ------------------------------------------------------------------------------ registry

    def create(self) -> FayeClient | None:
        """A new client, None when this node holds `MAX_CLIENTS` already."""
        if len(self.clients) >= MAX_CLIENTS:
            return None
        client = FayeClient(secrets.token_hex(16), self)
        self.clients[client.sid] = client
        return client

    def get(self, client_id: Any) -> FayeClient | None:
        return self.clients.get(client_id) if isinstance(client_id, str) else None

    def forget(self, client: FayeClient) -> None:
        """Idempotent: the client leaves every room, and a connect it has pending ends."""
        if self.clients.pop(client.sid, None) is None:
            return
        self.rooms.leave_all(client)
        client.grant = None
        client.channels.clear()
        client.inbox.clear()
        _wake(client)

    def sweep(self) -> None:
        """Forget the clients not seen for twice the connect timeout."""
        cutoff = time.monotonic() - 2 * self.timeout
        for client in list(self.clients.values()):
            if not client.connecting and client.seen < cutoff:
                self.forget(client)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.sweep()

    def close(self) -> None:
        for client in list(self.clients.values()):
            self.forget(client)

    # ------------------------------------------------------------------------- subscriptions

    def subscribed(self, client: FayeClient, feed: str, channel: str) -> None:
        client.channels[feed] = channel
        client.last.setdefault(feed, id_floor(datetime.now(UTC)))

    def unsubscribed(self, client: FayeClient, feed: str) -> None:
        client.channels.pop(feed, None)
        client.last.pop(feed, None)

    # --------------------------------------------------------------------------------- outlet

    async def emit(self, peer: Peer, event: str, data: Any) -> None:
        if not isinstance(peer, FayeClient) or peer.sid not in self.clients:
            return
        if event == FEED_UPDATE and isinstance(data, dict):
            self.deliver(peer, data)
        elif event == RESYNC:
            spawn(self.resync(peer))

    async def disconnect(self, peer: Peer) -> None:
        if isinstance(peer, FayeClient):
            self.forget(peer)

    def deliver(self, client: FayeClient, event: dict[str, Any]) -> None:
        """A `feed.update` (naming the subscribed feed) as Stream's message on its channel."""
        feed = str(event.get("feed"))
        channel = client.channels.get(feed)
        if channel is None:
            return
        for activity in event.get("new") or ():
            if isinstance(activity, dict) and str(activity.get("id", "")) > client.last[feed]:
                client.last[feed] = str(activity["id"])
        self.put(client, {"channel": channel, "data": p.stream_data(event, self.app_id)})
        DELIVERIES.labels("faye").inc()

    def put(self, client: FayeClient, message: p.Message) -> None:
        if len(client.inbox) >= MAX_INBOX:
            log.warning("forgetting Faye client %s: %d messages unread", client.sid, MAX_INBOX)
            self.forget(client)
            return
        client.inbox.append(message)
        _wake(client)

    async def resync(self, client: FayeClient) -> None:
        """Each subscription gets what its feed holds past the last activity it was sent."""
        for feed, since in list(client.last.items()):
            group, _, user_id = feed.partition(":")
            missed = await self._missed(FeedId(group, user_id), since, self._max_missed)
            if missed.activities and feed in client.channels and client.sid in self.clients:
                self.deliver(client, feed_update(feed, new=missed.activities))

    # ------------------------------------------------------------------------------- connect

    async def connect(self, client: FayeClient, hold: float) -> list[p.Message]:
        """The messages for `client`, waiting up to `hold` seconds for the first. A newer
        connect of the same client ends this one (it answers what it has: nothing)."""
        client.seen = time.monotonic()
        if not client.inbox and hold > 0:
            _wake(client)  # an older connect still waiting answers now
            waiter = client.waiter = asyncio.get_running_loop().create_future()
            client.connecting += 1
            try:
                async with asyncio.timeout(hold):
                    await waiter
            except TimeoutError:
                pass
            finally:
                client.connecting -= 1
                if client.waiter is waiter:
                    client.waiter = None
        client.seen = time.monotonic()
        messages = list(client.inbox)
        client.inbox.clear()
        return messages


def _wake(client: FayeClient) -> None:
    waiter = client.waiter
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
