"""The Socket.IO events of namespace "/", once for every transport: connect (JWT), subscribe,
unsubscribe, token.refresh, token expiry, pull-room membership, and presence membership (the
raid rooms' other events, `presence` and `publish`, are raid.py's, registered with `extend`).

`Handlers` knows peers and rooms, not wires: the fast WebSocket path (websocket.py) and the
python-socketio path (sio_peers.py) both call it, and give it an `Outlet` each to emit to and
disconnect one of their peers.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ...auth import Grant, decode_token, shared_groups
from ...bus.base import Bus
from ...bus.messages import FollowChanged, LinkUp, Resync
from ...config import Settings
from ...domain.errors import InputError, RateLimitError, SignatureError, TidingsError
from ...domain.feeds import FeedId, parse_feed_id
from ...domain.ids import is_activity_id
from ...feeds.service import FeedService
from ...metrics import SOCKETS, SUBSCRIPTIONS, TOKEN_EXPIRIES
from ...ratelimit import Caller, Limiter
from ...runtime.faults import fault_pause
from ..presence.service import Presence
from ..transport.dispatch import Ack
from ..transport.peers import Peer, Rooms
from ..transport.rooms import feed_room, pull_room
from .expiry import TOKEN_EXPIRED, ExpiryTimers
from .pull_sources import PullSources

log = logging.getLogger(__name__)
GRANT_CACHE = 4096  # verified tokens remembered (a reconnect storm decodes each token once)
GRANT_CACHE_BYTES = 4 << 20  # ... holding at most this many characters of tokens in all
MAX_TOKEN = 8192  # longest token accepted, padding included (Stream's are a few hundred bytes)
MAX_DETAIL = 512  # longest `detail` (and field message) of an error ack: they may quote input
MAX_FIELDS = 16  # most `exception_fields` entries of an error ack
SUBSCRIBED, REFUSED = SUBSCRIPTIONS.labels("ok"), SUBSCRIPTIONS.labels("refused")  # bound once
LIMITED = {"subscribe": "subscribes", "publish": "publishes"}  # events the rate limits count
ANY_USER = "*"


def _cap(text: str, limit: int = MAX_DETAIL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_ack(exc: TidingsError) -> dict[str, Any]:
    """`exc.ack()` with its texts capped: error details quote what the client sent, and an
    ack must not echo a megabyte back. Every error a socket is answered goes through here."""
    ack = exc.ack()
    ack["detail"] = _cap(str(ack["detail"]))
    fields = ack.get("exception_fields")
    if fields:
        ack["exception_fields"] = {
            _cap(str(name), 64): [_cap(str(message)) for message in messages[:4]]
            for name, messages in list(fields.items())[:MAX_FIELDS]
        }
    return ack


def failure(exc: TidingsError) -> Ack:
    """The ack of an event that failed with `exc`."""
    return {"ok": False, "error": error_ack(exc)}


def refusal(exc: TidingsError) -> dict[str, Any]:
    """The data of a refused connect (`44{message, data}`, as socket.io's `connect_error`)."""
    data = error_ack(exc)
    return {"message": data["detail"], "data": data}


def normalised_token(auth: Any) -> str:
    """The token of a connect's `auth: {token}`, without `Bearer ` and whitespace; raises
    SignatureError for a missing one or one longer than MAX_TOKEN (padding included)."""
    token = auth.get("token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token:
        raise SignatureError("missing authentication token ({token: JWT})")
    if len(token) > MAX_TOKEN:
        raise SignatureError(f"token is longer than {MAX_TOKEN} characters")
    return token.strip().removeprefix("Bearer ").strip()


class GrantCache:
    """Verified tokens (normalised) -> grants, least recently used first out, bounded by
    entries and by the characters of the tokens it holds."""

    def __init__(self, entries: int = GRANT_CACHE, chars: int = GRANT_CACHE_BYTES) -> None:
        self.max_entries, self.max_chars = entries, chars
        self.chars = 0
        self._grants: OrderedDict[str, Grant] = OrderedDict()

    def get(self, token: str) -> Grant | None:
        grant = self._grants.get(token)
        if grant is not None:
            self._grants.move_to_end(token)
        return grant

    def put(self, token: str, grant: Grant) -> None:
        if token in self._grants:
            return
        self._grants[token] = grant
        self.chars += len(token)
        while len(self._grants) > self.max_entries or self.chars > self.max_chars:
            oldest, _ = self._grants.popitem(last=False)
            self.chars -= len(oldest)

    def __len__(self) -> int:
        return len(self._grants)


def payload(data: Any, usage: str) -> dict[str, Any]:
    """An event's argument, which must be an object (`usage` says what it holds)."""
    if not isinstance(data, dict):
        raise InputError(f"expected {usage}", {"data": [f"expected {usage}"]})
    return data


Event = Callable[[Peer, Any], Awaitable[Ack]]


def grant_of(peer: Peer) -> Grant:
    """The socket's grant; SignatureError once its token expired."""
    grant = peer.grant
    if grant is None or grant.expired:
        raise SignatureError("token has expired; send token.refresh with a new one")
    return grant


class Handlers:
    def __init__(
        self,
        settings: Settings,
        service: FeedService,
        rooms: Rooms,
        bus: Bus,
        presence: Presence | None = None,
        more: Mapping[str, Event] | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        """`more`: events beyond subscribe, unsubscribe and token.refresh (raid.py's),
        handled as these are (bounded, errors as acks). From `bus`: follow changes (pull
        rooms), and when follow changes may have been missed (the pull sources start
        afresh). `limiter`: the rate limits of subscribes and publishes."""
        self._limiter = limiter if limiter is not None and limiter.enabled else None
        self._api_key = settings.auth.api_key
        self._groups = settings.feeds.keys()
        self._secret = str(settings.auth.api_secret)
        self._shared = shared_groups(settings.feeds)  # others' feeds a user token reads
        self._max_missed = settings.realtime.max_missed
        self.max_in_flight = settings.realtime.max_events_in_flight
        self._service = service
        self.rooms, self._bus = rooms, bus
        self.timers = ExpiryTimers(settings.realtime.token_grace_seconds, self._warn, self._drop)
        self.grants = GrantCache()
        self.pull_sources = PullSources(self._pull_sources_of, settings.cache.max_staleness_seconds)
        self.presence = presence
        bus.on(FollowChanged, lambda m: self.follows_changed(m.source, m.target, m.following))
        bus.on(Resync, lambda _: self.pull_sources.clear())
        bus.on(LinkUp, lambda m: self.pull_sources.clear() if m.after_outage else None)
        self._events: dict[str, Event] = {
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "token.refresh": self.refresh,
            **(more or {}),
        }

    def event_names(self) -> list[str]:
        return list(self._events)

    # ------------------------------------------------------------------ connect / disconnect

    def authenticate(self, auth: Any) -> Grant:
        """The grant of the connect's `auth: {token}`; raises SignatureError. Cached by the
        token as verified (normalised), so padded copies of one token are one entry."""
        token = normalised_token(auth)
        grant = self.grants.get(token)
        if grant is None:
            grant = decode_token(token, self._secret, self._groups, self._shared)
            self.grants.put(token, grant)
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
        if self.presence is not None:
            self.presence.forget(peer)
        SOCKETS.dec()

    async def _warn(self, peer: Peer) -> None:
        if peer.grant is not None and peer.outlet is not None:
            await peer.outlet.emit(peer, TOKEN_EXPIRED, {"grace": self.timers.grace})

    async def _drop(self, peer: Peer) -> None:
        if peer.grant is not None and peer.outlet is not None:
            log.info("disconnecting socket %s: its token expired and was not refreshed", peer.sid)
            TOKEN_EXPIRIES.inc()
            await peer.outlet.disconnect(peer)

    # ------------------------------------------------------------------------------ events

    def knows(self, event: Any) -> bool:
        """Whether `event` is one this server answers (others get no ack, as in socket.io)."""
        return isinstance(event, str) and event in self._events

    def refusal(self, exc: TidingsError) -> dict[str, Any]:
        return refusal(exc)

    def busy(self) -> Ack:
        """The ack of an event refused because its socket has too many in flight."""
        return failure(RateLimitError(
            f"more than {self.max_in_flight} events of this socket in flight; retry later"
        ))  # fmt: skip

    async def handle(self, peer: Peer, event: Any, args: list[Any]) -> Ack | None:
        """Run the handler of `event` with the event's arguments `args` (one is expected); its
        ack, or None for an event this server ignores. At most `max_events_in_flight` of one
        socket run at once: a client that pipelines more (each `since` is a store read) is
        answered RateLimitReached at once instead of queueing work without bound.
        Errors map to acks here, in this one place."""
        handler = self._events.get(event) if isinstance(event, str) else None
        if handler is None or peer.grant is None:
            return None
        if peer.in_flight >= self.max_in_flight:
            return self.busy()
        peer.in_flight += 1
        try:
            if len(args) > 1:
                raise InputError(f"{event} takes one argument, not {len(args)}",
                                 {"data": ["expected one argument"]})  # fmt: skip
            if self._limiter is not None and event in LIMITED:
                await self._count(peer, LIMITED[event])
            return await handler(peer, args[0] if args else None)
        except TidingsError as exc:
            return failure(exc)
        except Exception:
            log.exception("%s failed for socket %s", event, peer.sid)
            return failure(TidingsError("internal error"))
        finally:
            peer.in_flight -= 1

    async def _count(self, peer: Peer, kind: str) -> None:
        """Count the event in the rate limits; RateLimitError past one. A token that names no
        user is not counted while `limits.exempt_server_tokens` is on."""
        limiter, grant = self._limiter, grant_of(peer)
        assert limiter is not None
        user = grant.user_id if grant.user_id != ANY_USER else None
        if user is None and limiter.settings.exempt_server_tokens:
            return
        verdict = await limiter.hit(kind, Caller(self._api_key, user, peer.address))
        if verdict is not None and not verdict.allowed:
            raise RateLimitError(
                f"rate limit reached: at most {verdict.limit} {kind} per window for this "
                f"{verdict.scope}; the window resets at {verdict.reset} (unix seconds)"
            )

    async def subscribe(self, peer: Peer, data: Any) -> Ack:
        data = payload(data, "{feed, since?}")
        feed = parse_feed_id(data.get("feed"), self._groups)
        grant = grant_of(peer)
        try:
            grant.require("feed", "read", feed)
        except TidingsError:
            REFUSED.inc()
            raise
        since = data.get("since")
        if since is not None and not (isinstance(since, str) and is_activity_id(since)):
            raise InputError("since must be an activity id", {"since": ["not an activity id"]})
        presence = self.presence
        member = None if presence is None else presence.member_of(grant, feed, data.get("presence"))
        # Join first, then read: an activity stored in between is in both (clients dedupe by id)
        # rather than in neither.
        name = str(feed)
        joined = await self.join_feed(peer, feed)
        if member is not None and presence is not None and joined:
            presence.join(peer, name, *member)
        SUBSCRIBED.inc()
        ack: Ack = {"ok": True, "feed": name, "missed": [], "more": False}
        if since is not None:
            await fault_pause("subscribe.missed")
            missed = await self._service.missed(feed, since, self._max_missed)
            ack.update(missed=missed.activities, more=missed.more)
        return ack

    async def join_feed(self, peer: Peer, feed: FeedId) -> bool:
        """`peer` (authorised to read `feed`) joins its room and the pull rooms it brings, as
        a subscribe does on any transport, and returns once their events reach this node (the
        bus routes them: bus/routes.py); False when it disconnected meanwhile."""
        name = str(feed)
        self.rooms.join(peer, feed_room(name))
        sources = await self.pull_sources.get(name)
        for source in sources:
            if peer.grant is None:  # disconnected meanwhile: it left every room already
                break
            if feed_room(name) in peer.rooms:
                self.rooms.add_pull(peer, pull_room(source), name)
        await self._bus.heard([feed_room(name), *map(pull_room, sources)])
        return peer.grant is not None and feed_room(name) in peer.rooms

    async def _pull_sources_of(self, feeds: list[str]) -> dict[str, list[str]]:
        return await self._service.pull_sources_of(feeds)

    def leave_feed(self, peer: Peer, feed: str) -> None:
        self.rooms.leave(peer, feed_room(feed))
        self.rooms.drop_feed_pulls(peer, feed)

    async def unsubscribe(self, peer: Peer, data: Any) -> Ack:
        feed = str(parse_feed_id(payload(data, "{feed}").get("feed"), self._groups))
        self.leave_feed(peer, feed)
        if self.presence is not None:
            self.presence.leave(peer, feed)
        return {"ok": True}

    async def refresh(self, peer: Peer, data: Any) -> Ack:
        token = normalised_token(payload(data, "{token}"))
        grant = decode_token(token, self._secret, self._groups, self._shared)
        feeds = [parse_feed_id(feed, self._groups) for feed in peer.feeds()]
        dropped = [str(feed) for feed in feeds if not grant.allows("feed", "read", feed)]
        for feed in dropped:
            self.leave_feed(peer, feed)
            if self.presence is not None:
                self.presence.leave(peer, feed)
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
