"""Socket.IO events of namespace "/": connect (JWT), subscribe, unsubscribe, token.refresh."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from ..auth import Grant, decode_token
from ..config import Settings
from ..domain.errors import InputError, SignatureError, TidingsError
from ..domain.feeds import FeedId, parse_feed_id
from ..domain.ids import is_activity_id
from ..fanout.service import FeedService
from ..metrics import SOCKETS, SUBSCRIPTIONS, TOKEN_EXPIRIES
from .expiry import TOKEN_EXPIRED, ExpiryTimers
from .rooms import feed_room, room_feed

log = logging.getLogger(__name__)
Ack = dict[str, Any]
Handler = Callable[[str, Any], Awaitable[Ack]]


def _acked(handler: Handler) -> Handler:
    """Map the error hierarchy to acks, in this one place."""

    async def wrapper(sid: str, data: Any = None) -> Ack:
        try:
            return await handler(sid, data)
        except TidingsError as exc:
            return {"ok": False, "error": exc.ack()}
        except Exception:
            log.exception("%s failed for socket %s", handler.__name__, sid)
            return {"ok": False, "error": TidingsError("internal error").ack()}

    wrapper.__name__ = handler.__name__
    return wrapper


def _payload(data: Any, usage: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InputError(f"expected {usage}", {"data": [f"expected {usage}"]})
    return data


def register(
    sio: socketio.AsyncServer, settings: Settings, service: Callable[[], FeedService]
) -> ExpiryTimers:
    """Register the handlers; `service` gives the feed service once the app has started."""
    groups = settings.feeds.keys()
    secret = str(settings.auth.api_secret)

    async def warn(sid: str) -> None:
        await sio.emit(TOKEN_EXPIRED, {"grace": timers.grace}, to=sid)

    async def drop(sid: str) -> None:
        log.info("disconnecting socket %s: its token expired and was not refreshed", sid)
        TOKEN_EXPIRIES.inc()
        await sio.disconnect(sid)

    timers = ExpiryTimers(settings.realtime.token_grace_seconds, warn, drop)

    async def grant_of(sid: str) -> Grant:
        grant: Grant = (await sio.get_session(sid))["grant"]
        if grant.expired:
            raise SignatureError("token has expired; send token.refresh with a new one")
        return grant

    def subscribed(sid: str) -> list[FeedId]:
        feeds = (room_feed(room) for room in sio.rooms(sid))
        return [parse_feed_id(feed, groups) for feed in feeds if feed is not None]

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            grant = decode_token(token, secret)
        except TidingsError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.detail, exc.ack()) from exc
        await sio.save_session(sid, {"grant": grant})
        timers.watch(sid, grant)
        SOCKETS.inc()

    async def disconnect(sid: str, reason: Any = None) -> None:
        timers.forget(sid)
        SOCKETS.dec()

    @_acked
    async def subscribe(sid: str, data: Any) -> Ack:
        data = _payload(data, "{feed, since?}")
        feed = parse_feed_id(data.get("feed"), groups)
        grant = await grant_of(sid)
        try:
            grant.require("feed", "read", feed)
        except TidingsError:
            SUBSCRIPTIONS.labels("refused").inc()
            raise
        since = data.get("since")
        if since is not None and not (isinstance(since, str) and is_activity_id(since)):
            raise InputError("since must be an activity id", {"since": ["not an activity id"]})
        # Join first, then read: an activity stored in between is in both (clients dedupe by id)
        # rather than in neither.
        await sio.enter_room(sid, feed_room(str(feed)))
        SUBSCRIPTIONS.labels("ok").inc()
        ack: Ack = {"ok": True, "feed": str(feed), "missed": [], "more": False}
        if since is not None:
            missed = await service().missed(feed, since, settings.realtime.max_missed)
            ack.update(missed=missed.activities, more=missed.more)
        return ack

    @_acked
    async def unsubscribe(sid: str, data: Any) -> Ack:
        feed = parse_feed_id(_payload(data, "{feed}").get("feed"), groups)
        await sio.leave_room(sid, feed_room(str(feed)))
        return {"ok": True}

    @_acked
    async def refresh(sid: str, data: Any) -> Ack:
        grant = decode_token(_payload(data, "{token}").get("token"), secret)
        dropped = [feed for feed in subscribed(sid) if not grant.allows("feed", "read", feed)]
        for feed in dropped:
            await sio.leave_room(sid, feed_room(str(feed)))
        await sio.save_session(sid, {"grant": grant})
        timers.watch(sid, grant)
        return {"ok": True, "expires_at": grant.expires_at, "dropped": [str(f) for f in dropped]}

    for event, handler in [
        ("connect", connect),
        ("disconnect", disconnect),
        ("subscribe", subscribe),
        ("unsubscribe", unsubscribe),
        ("token.refresh", refresh),
    ]:
        sio.on(event, handler)
    return timers
