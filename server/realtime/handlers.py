"""Socket.IO events of namespace "/": connect (JWT), subscribe, unsubscribe (DESIGN.md)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from ..auth import Grant, decode_token
from ..config import Settings
from ..domain.errors import InputError, SignatureError, TidingsError
from ..domain.feeds import parse_feed_id
from ..domain.ids import is_activity_id
from ..fanout.service import FeedService
from ..metrics import SOCKETS, SUBSCRIPTIONS
from .rooms import feed_room

log = logging.getLogger(__name__)
Ack = dict[str, Any]


def _acked(handler: Callable[[str, Any], Awaitable[Ack]]) -> Callable[[str, Any], Awaitable[Ack]]:
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


def register(
    sio: socketio.AsyncServer, settings: Settings, service: Callable[[], FeedService]
) -> None:
    """Register the handlers; `service` gives the feed service once the app has started."""
    groups = settings.feeds.keys()
    secret = str(settings.auth.api_secret)

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            grant = decode_token(token, secret)
        except TidingsError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.detail, exc.ack()) from exc
        await sio.save_session(sid, {"grant": grant})
        SOCKETS.inc()

    async def disconnect(sid: str, reason: Any = None) -> None:
        SOCKETS.dec()

    @_acked
    async def subscribe(sid: str, data: Any) -> Ack:
        if not isinstance(data, dict):
            raise InputError("subscribe takes {feed, since?}", {"feed": ["missing"]})
        feed = parse_feed_id(data.get("feed"), groups)
        grant: Grant = (await sio.get_session(sid))["grant"]
        if grant.expired:
            raise SignatureError("token has expired; reconnect with a new one")
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
        if not isinstance(data, dict):
            raise InputError("unsubscribe takes {feed}", {"feed": ["missing"]})
        feed = parse_feed_id(data.get("feed"), groups)
        await sio.leave_room(sid, feed_room(str(feed)))
        return {"ok": True}

    for event, handler in [
        ("connect", connect),
        ("disconnect", disconnect),
        ("subscribe", subscribe),
        ("unsubscribe", unsubscribe),
    ]:
        sio.on(event, handler)
