"""The bus between nodes on Redis pub/sub, that keeps local delivery going when Redis fails.

`RedisBus` publishes messages (messages.py) on `redis.channel`, or on the channels of their rooms
when they are for a few rooms' sockets (routes.py), and hands every message of the other nodes
to the handlers of its kind, on redis-py's `redis.asyncio` (one Redis, Sentinel's master, or a
Redis Cluster's sharded pub/sub: redis_client.py). For "no lost activity under Redis faults":
- an `ECHO` message is handled on this node at once, whether Redis takes it or not (the
  emitting node delivers to its own sockets itself); while Redis is down, publishing is skipped
  at once instead of retried per message, so a fanout is not slowed down by an outage;
- one log line when Redis goes away and one when it is back, not one per emit;
- reconnection is retried every `RETRY_MAX` seconds at most;
- when Redis comes back, `LinkUp(after_outage=True)` is handled: every node tells its own sockets
  to resync, since they may have missed events published by other nodes meanwhile, and they
  re-subscribe with `since`;
- the listener survives any error (not only Redis's): it counts as Redis being down (`up` false,
  with a traceback in the log for an error that is not a connection's), and it starts again;
- a message this node did not publish (Redis down, or the publish failed while the listener was
  up) was missed by the other nodes: this node owes them a resync, and publishes `Resync(rooms)`
  (naming the rooms `owed` by the messages missed, or every room past MAX_OWED_ROOMS) as soon as
  Redis takes it again. A message whose loss costs the others nothing (cache drops: the caches
  do not depend on them) owes nothing;
- a dead link is found within seconds, also when nothing says so (a half-open connection, a
  path that drops everything): the listener pings Redis every PING_SECONDS and counts the link
  down when nothing came back for DEAD_SECONDS; every connection has a socket timeout and TCP
  keepalive. `Subscribed` is handled each time the listener is subscribed (again), before
  anything is delivered: the caches trust nothing read before.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Collection, Iterable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ..config import url_location
from ..metrics import BUS_RECEIVED, REDIS_UP
from ..runtime.background import spawn
from .base import Handler, Handlers, M
from .messages import LinkUp, Message, Resync, Subscribed, decode, encode
from .redis_client import (
    CONNECT_TIMEOUT,
    Client,
    Subscription,
    connect,
    forget_connections,
    publish_all,
)
from .redis_client import publish as publish_on
from .routes import Routes

log = logging.getLogger(__name__)
RETRY_MIN, RETRY_MAX = 0.1, 2.0
PUBLISH_TIMEOUT = CONNECT_TIMEOUT
PING_SECONDS = 1.0  # the listener pings Redis this often ...
DEAD_SECONDS = 3.0  # ... and counts the link down when nothing came back for this long
MAX_OWED_ROOMS = 10_000  # rooms named in one owed resync; past it, every socket resyncs


class RedisBus:
    def __init__(self, node: str, url: str, channel: str, routed_rooms: int = 0) -> None:
        """`routed_rooms`: the most rooms of an event published room by room, to the nodes
        that hold them (routes.py; 0: every event to every node)."""
        self.node, self.url, self.channel = node, url, channel
        self.routes = Routes(channel, routed_rooms)
        self._handlers = Handlers()
        self.up = False
        self._redis: Client | None = None
        self._was_down = False
        self._publish_failing = False
        self._listener: asyncio.Task[None] | None = None
        self._owed = False  # events were not published: the other nodes must resync ...
        self._owed_rooms: set[str] | None = set()  # ... the sockets of these rooms (None: all)
        self._repaying: asyncio.Task[None] | None = None

    @property
    def state(self) -> str:
        return "ok" if self.up else "down"

    def _client(self) -> Client:
        if self._redis is None:
            self._redis = connect(self.url, self.channel)
        return self._redis

    def client(self) -> Client:
        """The Redis client (a `RedisCluster` on a cluster), for what else is kept in Redis
        (presence entries): its callers handle Redis errors themselves."""
        return self._client()

    def publish_in(self, pipeline: Any, message: Message) -> None:
        """Queue `message` on `pipeline` (of this bus' client), for a caller that publishes it
        with other writes of its own, in order, as presence does."""
        publish_on(pipeline, self.channel, encode(message, self.node))

    def on(self, kind: type[M], handler: Handler[M]) -> None:
        self._handlers.on(kind, handler)

    def opened(self, room: str) -> None:
        self.routes.opened(room)

    def closed(self, room: str) -> None:
        self.routes.closed(room)

    async def heard(self, rooms: Iterable[str]) -> None:
        if self.up:
            await self.routes.heard(rooms)

    async def publish(self, message: Message, owed: Collection[str] | None = ()) -> None:
        """Publish for the other nodes (an `ECHO` message is handled here meanwhile). Whether
        Redis is up is the listener's to say: while it is down this returns at once (the other
        nodes' sockets in `owed` recover through `since`, once this node tells them to resync;
        None: every socket, empty: the message's loss costs them nothing)."""
        if not message.ECHO:
            await self._publish(message, owed)
            return
        # Published first, so that the other nodes handle it while this one does.
        publishing = asyncio.ensure_future(self._publish(message, owed))
        try:
            await self._handlers.handle(message)
        finally:
            await publishing

    def _wire(self, message: Message) -> list[tuple[str, bytes]]:
        """What to publish of `message`: on the channel of each of its rooms, or on the bus's."""
        rooms = self.routes.split(message)
        if rooms is None:
            return [(self.channel, encode(message, self.node))]
        wire = []
        for room in rooms:
            alone = dataclasses.replace(message, rooms=[room])  # type: ignore[call-arg]
            wire.append((self.routes.channel(room), encode(alone, self.node)))
        return wire

    async def _publish(self, message: Message, rooms: Collection[str] | None) -> None:
        if not self.up:
            self._owe(rooms)
            return
        if await self._send(self._wire(message)):
            self._publish_failing = False
            return
        self._owe(rooms)
        if not self._publish_failing:
            log.error(
                "cannot publish to Redis at %s: this event reaches this node's sockets only; "
                "the other nodes are told to resync once Redis takes messages again",
                url_location(self.url),
            )
        self._publish_failing = True

    async def _send(self, messages: list[tuple[str, bytes]]) -> bool:
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                if len(messages) == 1:
                    await publish_on(self._client(), *messages[0])
                else:
                    await publish_all(self._client(), messages)
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("publish failed: %r", exc)
            return False
        return True

    def _owe(self, rooms: Collection[str] | None) -> None:
        """The other nodes missed an event of this node to `rooms`: make their sockets there
        resync (once) soon."""
        if rooms is not None and not rooms:
            return
        if rooms is None or self._owed_rooms is None:
            self._owed_rooms = None
        else:
            self._owed_rooms.update(rooms)
            if len(self._owed_rooms) > MAX_OWED_ROOMS:
                self._owed_rooms = None
        self._owed = True
        self._repay_soon()

    def _repay_soon(self) -> None:
        if self._repaying is None:
            self._repaying = spawn(self._repay())

    async def _repay(self) -> None:
        """Publish `Resync` once Redis takes it (while the listener is up)."""
        delay = RETRY_MIN
        try:
            while self._owed:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                if not self.up:
                    continue
                # Events skipped from now on owe a new one.
                rooms, self._owed_rooms, self._owed = self._owed_rooms, set(), False
                named = None if rooms is None else sorted(rooms)
                if await self._send([(self.channel, encode(Resync(named), self.node))]):
                    self._publish_failing = False
                    log.warning("told the other nodes to resync: they missed events of this "
                                "node while it could not publish")  # fmt: skip
                else:
                    self._owe(rooms)
        finally:
            self._repaying = None

    def start(self) -> None:
        """Listen from now on (a node with no sockets of its own still publishes)."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        """Subscribe and hand messages over, for as long as the node runs: any error is an
        outage (`up` false), retried with backoff; the listener never dies of one."""
        delay = RETRY_MIN
        while True:
            pubsub = None
            try:
                if self._was_down:  # pooled connections are dead: start afresh, but before
                    # subscribing (the pool hands out the subscription's connection too)
                    await _quietly(forget_connections(self._client()))
                pubsub = await Subscription.open(self._client(), self.channel)
                await _confirmed(pubsub)
                self.routes.attach(pubsub)
                await self._came_back()
                delay = RETRY_MIN
                await self._receive(pubsub)
            except (RedisError, OSError) as exc:
                self._went_down(exc)
            except Exception as exc:  # a bug of redis-py or of Tidings: the same, logged loud
                log.exception("the Redis listener failed; it starts again")
                self._went_down(exc)
            finally:
                self.routes.detach()
                if pubsub is not None:
                    await _quietly(pubsub.aclose())
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _receive(self, pubsub: Subscription) -> None:
        """Hand messages over until the link dies: an error, nothing back from Redis (not even
        the answer to a ping) for DEAD_SECONDS, or Redis ending the subscription (a cluster
        moved the channel's slot)."""
        loop = asyncio.get_running_loop()
        heard = pinged = loop.time()
        while True:
            message = await pubsub.get_message(PING_SECONDS)
            now = loop.time()
            if message is not None:
                heard = now
                kind = message.get("type")
                if kind == pubsub.message:
                    await self._deliver(message["data"])
                elif kind == pubsub.confirmed:
                    if (late := self.routes.confirmed(message["channel"])) is not None:
                        spawn(self._handlers.handle(Resync([late])))  # here, for its sockets
                elif kind == pubsub.ended and not self.routes.left(message["channel"]):
                    log.warning("Redis ended the subscription to %s (its hash slot moved to "
                                "another shard): subscribing again", self.channel)  # fmt: skip
                    raise RedisConnectionError("Redis ended the subscription")
            if now - heard > DEAD_SECONDS:
                raise RedisConnectionError(f"no answer from Redis for {DEAD_SECONDS} s")
            if self.routes.broken:
                raise RedisConnectionError("a subscription to rooms' channels failed")
            if now - pinged >= PING_SECONDS:
                pinged = now
                await pubsub.ping()
                await self.routes.sweep()

    async def _deliver(self, data: bytes) -> None:
        try:
            sender, message = decode(data)
        except ValueError:  # one bad message must not stop the listener
            log.exception("not a message of Tidings on the Redis channel")
            return
        if sender != self.node:  # this node handled its own already
            BUS_RECEIVED.labels(message.KIND).inc()
            await self._handlers.handle(message)

    def _went_down(self, exc: BaseException) -> None:
        if self.up or not self._was_down:
            log.error(
                "Redis at %s is unreachable (%s): delivering to this node's sockets only "
                "until it is back", url_location(self.url), exc.__class__.__name__,
            )  # fmt: skip
        self.up = False
        self._was_down = True
        REDIS_UP.set(0)

    async def _came_back(self) -> None:
        await self._handlers.handle(Subscribed())
        recovered = self._was_down
        self._publish_failing = False
        self.up = True
        REDIS_UP.set(1)
        self._was_down = False
        if recovered:
            log.warning(
                "Redis at %s is reachable again: cross-node delivery resumed",
                url_location(self.url),
            )
        if self._owed:
            self._repay_soon()
        spawn(self._handlers.handle(LinkUp(after_outage=recovered)))

    async def close(self) -> None:
        """Stop listening and close the connections, bounded: a link frozen half-open must not
        hold a node's shutdown."""
        if self._repaying is not None:
            self._repaying.cancel()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.wait([self._listener], timeout=PUBLISH_TIMEOUT)
        if self._redis is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PUBLISH_TIMEOUT):
                    await _quietly(self._redis.aclose())


async def _confirmed(pubsub: Subscription) -> None:
    """Wait for Redis to confirm the subscription: until then a message published (by another
    connection, another node) is not delivered to it, so "back" would be said too early (a
    resync, a presence republish answered before this node listens)."""
    async with asyncio.timeout(PUBLISH_TIMEOUT):
        while True:
            message = await pubsub.get_message(PUBLISH_TIMEOUT)
            if message is not None and message.get("type") == pubsub.confirmed:
                return


async def _quietly(closing: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await closing
