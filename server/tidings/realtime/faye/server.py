"""The Bayeux server: what each `/meta/*` message does, whatever transport carried it.

`/meta/subscribe` carries Stream's auth extension, as stream-js installs it on its Faye client:
`ext: {user_id, api_key, signature}`, `signature` being the feed's token (a JWT). Every channel
of a subscribe must be a feed channel of this app (`/site-{app_id}-feed-{slug}{user_id}`) whose
feed that token may read (`Grant.require(feed, read)`, as the REST API checks a read), with this
server's api key; otherwise nothing of it is subscribed and it fails `403`. A subscribed
channel is the feed's room and the pull rooms that feed brings, joined as a socket's subscribe
joins them (realtime/events/handlers.py), so every update of the feed reaches the client on
every node. Clients may not publish: on Stream's channels only the server does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...config import Settings
from ...domain.errors import TidingsError
from ...domain.feeds import FeedId
from ...metrics import SUBSCRIPTIONS
from ..events.handlers import Handlers
from . import protocol as p
from .clients import Clients, FayeClient

log = logging.getLogger(__name__)


class Bayeux:
    def __init__(self, settings: Settings, clients: Clients, handlers: Handlers) -> None:
        self.clients, self.handlers = clients, handlers
        self.app_id = clients.app_id
        self.timeout = clients.timeout
        self.interval = 0.0  # reconnect at once after a connect's answer (faye's default)
        self._api_key = settings.auth.api_key
        self._groups = settings.feeds.keys()

    async def process(self, messages: list[p.Message]) -> list[p.Message]:
        """The replies to one request's messages (and the deliveries its connect took), all
        handled at once: a connect held open does not hold up a subscribe sent with it."""
        answers = await asyncio.gather(*(self.handle(m) for m in messages))
        return [reply for replies in answers for reply in replies]

    async def handle(self, message: p.Message) -> list[p.Message]:
        answer = p.reply(message)
        more: list[p.Message] = []
        try:
            channel = message.get("channel")
            if channel == p.HANDSHAKE:
                self._handshake(message, answer)
            elif channel == p.CONNECT:
                more = await self._connect(message, answer)
            elif channel == p.SUBSCRIBE:
                await self._subscribe(message, answer)
            elif channel == p.UNSUBSCRIBE:
                self._unsubscribe(message, answer)
            elif channel == p.DISCONNECT:
                self.clients.forget(self._client(message))
            elif not isinstance(channel, str) or not p.CHANNEL_RE.match(channel):
                raise p.BayeuxError(p.CHANNEL_INVALID, str(channel))
            else:  # a publish: Stream's channels carry the server's messages only
                raise p.BayeuxError(p.CHANNEL_FORBIDDEN, channel)
        except p.BayeuxError as exc:
            p.failed(answer, exc)
            if exc.code == p.CLIENT_UNKNOWN[0]:
                answer.pop("clientId", None)
        except Exception:
            log.exception("Faye message on %r failed", message.get("channel"))
            p.failed(answer, p.BayeuxError(p.SERVER_ERROR))
        return [p.advise(answer, self.interval, self.timeout), *more]

    def _client(self, message: p.Message) -> FayeClient:
        client_id = message.get("clientId")
        if not client_id:
            raise p.BayeuxError(p.PARAMETER_MISSING, "clientId")
        client = self.clients.get(client_id)
        if client is None:
            raise p.BayeuxError(p.CLIENT_UNKNOWN, str(client_id))
        return client

    def _handshake(self, message: p.Message, answer: p.Message) -> None:
        answer["version"] = p.BAYEUX_VERSION
        answer["supportedConnectionTypes"] = list(p.CONNECTION_TYPES)
        p.check_handshake(message)
        client = self.clients.create()
        if client is None:
            raise p.BayeuxError(p.SERVER_ERROR, text="too many clients on this node")
        answer["clientId"] = client.sid

    async def _connect(self, message: p.Message, answer: p.Message) -> list[p.Message]:
        client = self._client(message)
        p.check_connection_type(message)
        timeout = self.timeout
        advice = message.get("advice")
        if isinstance(advice, dict) and isinstance(advice.get("timeout"), (int, float)):
            timeout = max(0.0, min(timeout, advice["timeout"] / 1000))  # 0: answer at once
        return await self.clients.connect(client, timeout)

    async def _subscribe(self, message: p.Message, answer: p.Message) -> None:
        client = self._client(message)
        answer["subscription"] = message.get("subscription")
        channels = p.subscriptions(message)
        if len(set(client.channels.values()) | set(channels)) > p.MAX_SUBSCRIPTIONS:
            raise p.BayeuxError(p.BAD_REQUEST, text=f"at most {p.MAX_SUBSCRIPTIONS} channels")
        wanted = [(channel, self._authorised(channel, message.get("ext"))) for channel in channels]
        for channel, (feed, grant) in wanted:  # all authorised: now join
            if client.grant is None or client.grant.expired:
                client.grant = grant  # the client's grant: a subscription's (not None: alive)
            if not await self.handlers.join_feed(client, feed):
                raise p.BayeuxError(p.CLIENT_UNKNOWN, client.sid)
            self.clients.subscribed(client, str(feed), channel)
            SUBSCRIPTIONS.labels("ok").inc()

    def _authorised(self, channel: str, ext: Any) -> tuple[FeedId, Any]:
        """The feed of `channel` and the grant of the subscribe's signature, which must read
        it; a BayeuxError (403) otherwise."""
        feed = p.channel_feed(channel, self.app_id, self._groups)
        if feed is None:
            raise p.BayeuxError(p.CHANNEL_FORBIDDEN, channel, text="not a feed channel of this app")
        if not isinstance(ext, dict) or not ext.get("signature"):
            SUBSCRIPTIONS.labels("refused").inc()
            raise p.BayeuxError(p.CHANNEL_FORBIDDEN, channel, text="missing signature")
        if ext.get("api_key") != self._api_key:
            SUBSCRIPTIONS.labels("refused").inc()
            raise p.BayeuxError(p.CHANNEL_FORBIDDEN, channel, text="unknown api key")
        try:
            grant = self.handlers.authenticate({"token": ext["signature"]})
            grant.require("feed", "read", feed)
        except TidingsError as exc:
            SUBSCRIPTIONS.labels("refused").inc()
            raise p.BayeuxError(p.CHANNEL_FORBIDDEN, channel, text=_text(exc)) from None
        return feed, grant

    def _unsubscribe(self, message: p.Message, answer: p.Message) -> None:
        client = self._client(message)
        answer["subscription"] = message.get("subscription")
        for channel in p.subscriptions(message):
            feed = p.channel_feed(channel, self.app_id, self._groups)
            if feed is not None and str(feed) in client.channels:
                self.handlers.leave_feed(client, str(feed))
                self.clients.unsubscribed(client, str(feed))


def _text(exc: TidingsError) -> str:
    """An error's detail in the characters a Bayeux error may hold (`feed:id` loses its
    colon)."""
    return str(exc.ack().get("detail", "not allowed")).replace(": ", " - ").replace(":", " ")
