"""The Socket.IO events of namespace "/", once for every transport: connect (JWT), subscribe,
unsubscribe, token.refresh, token expiry, and pull-room membership.

`Handlers` knows peers and rooms, not wires: the fast WebSocket path (websocket.py) and the
python-socketio path (sio_peers.py) both call it, and give it an `Outlet` each to emit to and
disconnect one of their peers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..auth import Grant, decode_token
from ..config import Settings
from ..domain.errors import InputError, SignatureError, TidingsError
from ..domain.feeds import parse_feed_id
from ..domain.ids import is_activity_id
from ..fanout.service import FeedService
from ..metrics import SOCKETS, SUBSCRIPTIONS, TOKEN_EXPIRIES
from .expiry import TOKEN_EXPIRED, ExpiryTimers
from .peers import Peer, Rooms
from .pull_sources import PullSources
from .rooms import feed_room, pull_room

log = logging.getLogger(__name__)
Ack = dict[str, Any]
GRANT_CACHE = 4096  # verified tokens remembered (a reconnect storm decodes each token once)


class Outlet(Protocol):
    """How to reach one peer of a transport."""

    async def emit(self, peer: Peer, event: str, data: Any) -> None: ...

    async def disconnect(self, peer: Peer) -> None: ...


def _payload(data: Any, usage: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InputError(f"expected {usage}", {"data": [f"expected {usage}"]})
    return data


class Handlers:
    def __init__(self, settings: Settings, service: Callable[[], FeedService], rooms: Rooms):
        self._groups = settings.feeds.keys()
        self._secret = str(settings.auth.api_secret)
        self._max_missed = settings.realtime.max_missed
        self._service = service
        self.rooms = rooms
        self.outlets: dict[bool, Outlet] = {}  # by Peer.fast
        self.timers = ExpiryTimers(settings.realtime.token_grace_seconds, self._warn, self._drop)
        self._grants: dict[str, Grant] = {}
        self.pull_sources = PullSources()
        self._events: dict[str, Callable[[Peer, Any], Awaitable[Ack]]] = {
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "token.refresh": self.refresh,
        }

    # ------------------------------------------------------------------ connect / disconnect

    def authenticate(self, auth: Any) -> Grant:
        """The grant of the connect's `auth: {token}`; raises SignatureError."""
        token = auth.get("token") if isinstance(auth, dict) else None
        grant = self._grants.get(token) if isinstance(token, str) else None
        if grant is None:
            grant = decode_token(token, self._secret)
            if len(self._grants) >= GRANT_CACHE:
                self._grants.clear()
            self._grants[token] = grant  # type: ignore[index]  # decode_token refuses non-str
        elif grant.expired:
            raise SignatureError("token has expired")
        return grant

    def connected(self, peer: Peer, grant: Grant) -> None:
        peer.grant = grant
        self.timers.watch(peer)
        SOCKETS.inc()

    def disconnected(self, peer: Peer) -> None:
        """Idempotent: the peer leaves every room and is forgotten."""
        if peer.grant is None:
            return
        peer.grant = None
        self.timers.forget(peer)
        self.rooms.leave_all(peer)
        SOCKETS.dec()

    async def _warn(self, peer: Peer) -> None:
        if peer.grant is not None:
            await self.outlets[peer.fast].emit(peer, TOKEN_EXPIRED, {"grace": self.timers.grace})

    async def _drop(self, peer: Peer) -> None:
        if peer.grant is not None:
            log.info("disconnecting socket %s: its token expired and was not refreshed", peer.sid)
            TOKEN_EXPIRIES.inc()
            await self.outlets[peer.fast].disconnect(peer)

    # ------------------------------------------------------------------------------ events

    async def handle(self, peer: Peer, event: Any, data: Any) -> Ack | None:
        """Run the handler of `event`; its ack, or None for an event this server ignores.
        Errors map to acks here, in this one place."""
        handler = self._events.get(event) if isinstance(event, str) else None
        if handler is None or peer.grant is None:
            return None
        try:
            return await handler(peer, data)
        except TidingsError as exc:
            return {"ok": False, "error": exc.ack()}
        except Exception:
            log.exception("%s failed for socket %s", event, peer.sid)
            return {"ok": False, "error": TidingsError("internal error").ack()}

    def _grant(self, peer: Peer) -> Grant:
        grant = peer.grant
        if grant is None or grant.expired:
            raise SignatureError("token has expired; send token.refresh with a new one")
        return grant

    async def subscribe(self, peer: Peer, data: Any) -> Ack:
        data = _payload(data, "{feed, since?}")
        feed = parse_feed_id(data.get("feed"), self._groups)
        try:
            self._grant(peer).require("feed", "read", feed)
        except TidingsError:
            SUBSCRIPTIONS.labels("refused").inc()
            raise
        since = data.get("since")
        if since is not None and not (isinstance(since, str) and is_activity_id(since)):
            raise InputError("since must be an activity id", {"since": ["not an activity id"]})
        # Join first, then read: an activity stored in between is in both (clients dedupe by id)
        # rather than in neither.
        name = str(feed)
        self.rooms.join(peer, feed_room(name))
        sources = await self.pull_sources.get(name, lambda: self._service().pull_sources(feed))
        for source in sources:
            if peer.grant is None:  # disconnected meanwhile: it left every room already
                break
            if feed_room(name) in peer.rooms:
                self.rooms.add_pull(peer, pull_room(source), name)
        SUBSCRIPTIONS.labels("ok").inc()
        ack: Ack = {"ok": True, "feed": name, "missed": [], "more": False}
        if since is not None:
            missed = await self._service().missed(feed, since, self._max_missed)
            ack.update(missed=missed.activities, more=missed.more)
        return ack

    async def unsubscribe(self, peer: Peer, data: Any) -> Ack:
        feed = str(parse_feed_id(_payload(data, "{feed}").get("feed"), self._groups))
        self.rooms.leave(peer, feed_room(feed))
        self.rooms.drop_feed_pulls(peer, feed)
        return {"ok": True}

    async def refresh(self, peer: Peer, data: Any) -> Ack:
        grant = decode_token(_payload(data, "{token}").get("token"), self._secret)
        feeds = [parse_feed_id(feed, self._groups) for feed in peer.feeds()]
        dropped = [str(feed) for feed in feeds if not grant.allows("feed", "read", feed)]
        for feed in dropped:
            self.rooms.leave(peer, feed_room(feed))
            self.rooms.drop_feed_pulls(peer, feed)
        peer.grant = grant
        self.timers.watch(peer)
        return {"ok": True, "expires_at": grant.expires_at, "dropped": dropped}

    # -------------------------------------------------------------------------- pull rooms

    def follows_changed(self, source: str, target: str, following: bool) -> None:
        """This node's sockets subscribed to `source` join (leave) the pull room of `target`."""
        self.pull_sources.changed(source)
        room = pull_room(target)
        for peer in list(self.rooms.members(feed_room(source))):
            if following:
                self.rooms.add_pull(peer, room, source)
            else:
                self.rooms.drop_pull(peer, room, source)
