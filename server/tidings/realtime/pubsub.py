"""Cross-node delivery through Redis pub/sub, that keeps local delivery going when Redis fails.

`RedisLink` publishes the broadcaster's messages on `redis.channel` and hands every message of
the other nodes to `on_message`, on redis-py's `redis.asyncio`. For "no lost activity under
Redis faults":
- the emitting node delivers to its own sockets itself, before publishing (broadcaster.py); while
  Redis is down, publishing is skipped at once instead of retried per emit, so a fanout is not
  slowed down by an outage;
- one log line when Redis goes away and one when it is back, not one per emit;
- reconnection is retried every `RETRY_MAX` seconds at most;
- when Redis comes back, `on_recovery` runs: every node tells its own sockets `resync`, since they
  may have missed events published by other nodes meanwhile, and they re-subscribe with `since`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..background import spawn
from ..config import url_location
from ..metrics import REDIS_UP

log = logging.getLogger(__name__)
RETRY_MIN, RETRY_MAX = 0.1, 2.0
PUBLISH_TIMEOUT = 2.0
RESYNC = "resync"  # the event telling a node's sockets to re-subscribe with `since`
OnRecovery = Callable[[], Awaitable[None]]
OnMessage = Callable[[bytes], Awaitable[None]]


def _connect(url: str, channel: str) -> aioredis.Redis:
    if urlparse(url).scheme in ("redis+sentinel", "rediss+sentinel"):
        from socketio.redis_manager import parse_redis_sentinel_url

        sentinels, service, options = parse_redis_sentinel_url(url)
        sentinel = Sentinel(sentinels, **options)  # type: ignore[no-untyped-call]
        return cast(aioredis.Redis, sentinel.master_for(service or channel))
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=PUBLISH_TIMEOUT,
        health_check_interval=10,
        # A pooled connection that died with a restarted Redis fails once: retry on a new one.
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


class RedisLink:
    def __init__(self, url: str, channel: str) -> None:
        self.url, self.channel = url, channel
        self.up = False
        self._redis: aioredis.Redis | None = None
        self._was_down = False
        self._publish_failing = False
        self._listener: asyncio.Task[None] | None = None
        self.on_recovery: OnRecovery | None = None
        self.on_message: OnMessage | None = None

    @property
    def state(self) -> str:
        return "ok" if self.up else "down"

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = _connect(self.url, self.channel)
        return self._redis

    async def publish(self, data: bytes) -> None:
        """Publish for the other nodes. Whether Redis is up is the listener's to say: while it
        is down this returns at once (the other nodes' sockets recover through `since`)."""
        if not self.up:
            return
        try:
            await asyncio.wait_for(self._client().publish(self.channel, data), PUBLISH_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            if not self._publish_failing:
                log.error(
                    "cannot publish to Redis at %s (%s): this event reaches this node's "
                    "sockets only",
                    url_location(self.url),
                    exc.__class__.__name__,
                )
            self._publish_failing = True
        else:
            self._publish_failing = False

    def start(self) -> None:
        """Listen from now on (a node with no sockets of its own still publishes)."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        delay = RETRY_MIN
        while True:
            pubsub = self._client().pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                await self._came_back()
                delay = RETRY_MIN
                async for message in pubsub.listen():
                    if message.get("type") == "message" and self.on_message is not None:
                        await self._deliver(message["data"])
            except (RedisError, OSError) as exc:
                self._went_down(exc)
            finally:
                await _quietly(pubsub.aclose())  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _deliver(self, data: Any) -> None:
        assert self.on_message is not None
        try:
            await self.on_message(data)
        except Exception:  # one bad message must not stop the listener
            log.exception("cannot deliver a message from Redis")

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
        recovered = self._was_down
        if recovered:  # connections pooled before the outage are dead: start afresh
            await _quietly(self._client().connection_pool.disconnect())
        self._publish_failing = False
        self.up = True
        REDIS_UP.set(1)
        self._was_down = False
        if recovered:
            log.warning(
                "Redis at %s is reachable again: cross-node delivery resumed",
                url_location(self.url),
            )
            if self.on_recovery is not None:
                spawn(self.on_recovery())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._redis is not None:
            await _quietly(self._redis.aclose())


async def _quietly(closing: Awaitable[Any]) -> None:
    with contextlib.suppress(RedisError, OSError):
        await closing
