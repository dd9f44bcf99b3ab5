"""Counting calls in fixed windows, cluster-wide in Redis, in this node's memory while Redis is
down.

A window is `window_seconds` long and aligned to the clock (window n covers [n·W, (n+1)·W)), so
every node agrees on when it resets without asking anybody (nodes' clocks are kept by NTP) and
`X-Ratelimit-Reset` is known before Redis answers. A call counts once in each scope that limits
its class: one `INCR` per scope (with its expiry set when the counter is made, `limits`' own
script), sent at once, so a call waits for one round trip to Redis whatever the number of
scopes. The fixed window is the cheapest of `limits`' strategies (a moving window keeps a
timestamp per call, a sliding window reads two counters) and it is what Stream does: "rate
limits are reset at the end of each time window". Its known cost: a client may make up to twice
its limit across the boundary of two windows.

While Redis is down (the bus says so), or for `RETRY_SECONDS` after a call to it failed, calls
are counted in this node's memory: each node then allows a client the whole limit, and the
limits are back to cluster-wide when Redis is. `state` says which (on `/readyz`). Memory keeps
one table of counters per window and drops a window's table whole once it is over (`limits`'
own memory storage looks at every key's expiry after each increment: a cost that grows with
the number of clients, on every call).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from limits.aio.storage import RedisClusterStorage, RedisStorage, Storage
from limits.errors import StorageError
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from ..bus.redis_client import cluster_options
from ..config import url_location
from ..config.limits import CLASSES, SCOPES, LimitSettings
from ..metrics import RATE_COUNTED, RATE_LIMITED

log = logging.getLogger(__name__)
REDIS_TIMEOUT = 0.5  # seconds a call waits for Redis' counts before it counts in memory
RETRY_SECONDS = 2.0  # after a failure, Redis is asked again this long after
CLUSTER, LOCAL, OFF = "cluster", "local", "off"
IN_REDIS, IN_MEMORY = RATE_COUNTED.labels("redis"), RATE_COUNTED.labels("memory")


class Link(Protocol):
    """The node's link to Redis (the bus): whether it is up, its URL and its client."""

    url: str

    @property
    def up(self) -> bool: ...

    def client(self) -> aioredis.Redis | RedisCluster: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """A counted call: whether it may go on, and the headers Stream answers about its limit
    (the scope with the fewest calls left: the one that refuses first)."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # unix seconds: when the window ends
    scope: str

    def headers(self) -> dict[str, str]:
        return {
            "X-Ratelimit-Limit": str(self.limit),
            "X-Ratelimit-Remaining": str(self.remaining),
            "X-Ratelimit-Reset": str(self.reset),
        }


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes a call, by scope: the API key, the token's user (None: the token names none),
    the client's address. A scope whose identity is None does not count the call."""

    key: str | None
    user: str | None
    ip: str | None

    def of(self, scope: str) -> str | None:
        return self.key if scope == "key" else self.user if scope == "user" else self.ip


class MemoryCounts:
    """This node's counters, by window: a past window's are dropped whole at the first count
    of a later one."""

    def __init__(self) -> None:
        self._windows: dict[int, dict[str, int]] = {}

    def incr(self, window: int, key: str) -> int:
        counts = self._windows.get(window)
        if counts is None:
            for past in [w for w in self._windows if w < window]:
                del self._windows[past]
            counts = self._windows[window] = {}
        count = counts[key] = counts.get(key, 0) + 1
        return count

    def __len__(self) -> int:
        return sum(len(counts) for counts in self._windows.values())


class Limiter:
    def __init__(self, settings: LimitSettings, prefix: str, link: Link | None = None) -> None:
        """`prefix`: of the keys in Redis (the bus' channel, so that two clusters sharing one
        Redis count apart); `link`: None for one node alone (memory is then the cluster)."""
        self.settings = settings
        self.window = settings.window_seconds
        self._link = link
        self._memory = MemoryCounts()
        self._redis: Storage | None = None
        self._prefix = f"{prefix}:limits"
        self._failed_at = -RETRY_SECONDS
        # each class's limited scopes, with their limits
        self._limits = {
            kind: [(s, n) for s in SCOPES if (n := settings.limit(kind, s))] for kind in CLASSES
        }

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    @property
    def state(self) -> str:
        """`cluster`: counted in Redis for every node; `local`: in this node's memory (one node,
        or Redis down); `off`: nothing is limited."""
        if not self.settings.enabled:
            return OFF
        return CLUSTER if self._use_redis() else LOCAL

    def _use_redis(self) -> bool:
        link = self._link
        return link is not None and link.up and time.monotonic() - self._failed_at >= RETRY_SECONDS

    def _storage(self) -> Storage:
        if self._redis is None and self._link is not None:
            client = self._link.client()
            if isinstance(client, RedisCluster):
                # limits' cluster storage has a client of its own: the bus' seeds and options.
                # Each counter is one key, in a script that names it: any slot will do.
                url = f"async+redis+cluster://{url_location(self._link.url)}"
                self._redis = RedisClusterStorage(
                    url, implementation="redispy", wrap_exceptions=True,
                    key_prefix=self._prefix, **cluster_options(self._link.url),
                )  # fmt: skip
            else:
                # the bus' connections (its URL, Sentinel or not, its timeouts), shared
                pool: Any = client.connection_pool  # limits types options as scalars
                self._redis = RedisStorage(
                    "async+redis://", implementation="redispy", connection_pool=pool,
                    wrap_exceptions=True, key_prefix=self._prefix,
                )  # fmt: skip
        assert self._redis is not None
        return self._redis

    async def hit(self, kind: str, caller: Caller, now: float | None = None) -> Verdict | None:
        """Count one call of class `kind` by `caller` in every scope that limits it; None when
        none does (limits off, or no scope of the caller limited)."""
        if not self.settings.enabled:
            return None
        counted = [
            (scope, limit, who)
            for scope, limit in self._limits[kind]
            if (who := caller.of(scope)) is not None
        ]
        if not counted:
            return None
        now = time.time() if now is None else now
        window = int(now // self.window)
        # `<class>/<scope>/<who>/<window>`: class, scope and window say where `who` ends
        keys = [f"{kind}/{scope}/{who}/{window}" for scope, limit, who in counted]
        counts = await self._count(window, keys)
        reset = (window + 1) * self.window
        left = [(limit - count, limit, scope) for (scope, limit, _), count
                in zip(counted, counts, strict=True)]  # fmt: skip
        remaining, limit, scope = min(left)
        if remaining < 0:
            RATE_LIMITED.labels(kind, scope).inc()
        return Verdict(remaining >= 0, limit, max(0, remaining), reset, scope)

    async def _count(self, window: int, keys: Sequence[str]) -> list[int]:
        """Each key's counter after this call's increment: in Redis when it may be used, else
        (or when it fails, within REDIS_TIMEOUT) in memory."""
        if self._use_redis():
            storage = self._storage()
            try:
                async with asyncio.timeout(REDIS_TIMEOUT):
                    counts = await asyncio.gather(*(storage.incr(key, self.window) for key in keys))
                IN_REDIS.inc()
                return list(counts)
            except (StorageError, RedisError, OSError, TimeoutError) as exc:
                if time.monotonic() - self._failed_at >= RETRY_SECONDS:
                    log.warning("rate limits counted in this node's memory: Redis: %s", exc)
                self._failed_at = time.monotonic()
        IN_MEMORY.inc()
        return [self._memory.incr(window, key) for key in keys]
