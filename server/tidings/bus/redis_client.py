"""The node's Redis client, from `redis.url`: one Redis, a Sentinel-watched master or a Redis
Cluster; and the subscription the bus listens on.

On one Redis (or Sentinel's master) the bus uses plain pub/sub: PUBLISH and SUBSCRIBE on the
channel. On a Redis Cluster it uses sharded pub/sub (Redis 7 or later): SPUBLISH and SSUBSCRIBE,
so that the channel lives on the one shard that owns its hash slot. A plain PUBLISH on a cluster
is copied over the cluster bus to every node of every shard, whoever listens; a sharded one goes
to the owning shard alone, and its messages keep their order (one shard takes them all). The
listener holds one connection to the master of the channel's slot, found through the cluster
client; when that master fails over or the slot moves, the connection breaks or Redis
unsubscribes it, and the listener subscribes again wherever the slot is then.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import ParseResult, urlparse

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..config.values import cluster_nodes

CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 5.0  # any command of any connection (the listener waits with its own timeout)
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
# What the listener hears, by the kind of pub/sub: a message of the channel, the subscription
# confirmed, the subscription ended by Redis (a cluster's slot moved to another shard).
PLAIN = ("message", "subscribe", "unsubscribe")
SHARDED = ("smessage", "ssubscribe", "sunsubscribe")

Client = aioredis.Redis | RedisCluster


def is_cluster(url: str) -> bool:
    return urlparse(url).scheme in CLUSTER_SCHEMES


def _credentials(parsed: ParseResult) -> dict[str, Any]:
    """The user, password and TLS a `redis+…://` or `rediss+…://` URL names."""
    options: dict[str, Any] = {}
    if parsed.username:
        options["username"] = parsed.username
    if parsed.password:
        options["password"] = parsed.password
    if parsed.scheme.startswith("rediss"):
        options["ssl"] = True
    return options


def sentinel_url(url: str) -> tuple[list[tuple[str, int]], str | None, dict[str, Any]]:
    """`redis+sentinel://[user:password@]host1:port1,host2:port2/db/service` (or `rediss+`):
    the sentinels, the service (None: the channel names it) and the connection options."""
    parsed = urlparse(url)
    sentinels = []
    for host_port in parsed.netloc.rpartition("@")[2].split(","):
        host, _, port = host_port.rpartition(":")
        sentinels.append((host, int(port)))
    options = _credentials(parsed)
    db, _, service = parsed.path.strip("/").partition("/")
    if db:
        options["db"] = int(db)
    return sentinels, service or None, options


def cluster_options(url: str) -> dict[str, Any]:
    """The options of every connection to a cluster of `redis+cluster://` (or `rediss+`): its
    credentials, TLS, timeouts and keepalive (the seeds are in `cluster_nodes(url)`)."""
    parsed = urlparse(url)
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_keepalive": True,
        **_credentials(parsed),
    }
    return options


def connect(url: str, channel: str) -> Client:
    """The client of `redis.url` (no connection is made before its first command)."""
    scheme = urlparse(url).scheme
    if scheme in CLUSTER_SCHEMES:
        seeds = [ClusterNode(host, port) for host, port in cluster_nodes(url)]
        return RedisCluster(startup_nodes=seeds, health_check_interval=10, **cluster_options(url))
    if scheme in SENTINEL_SCHEMES:
        sentinels, service, options = sentinel_url(url)
        sentinel = Sentinel(sentinels, **options)  # type: ignore[no-untyped-call,unused-ignore]
        return cast(aioredis.Redis, sentinel.master_for(service or channel))
    tcp: dict[str, Any] = {}
    if scheme in ("redis", "rediss"):  # a Unix socket has no keepalive
        tcp["socket_keepalive"] = True
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        health_check_interval=10,
        **tcp,
        # A pooled connection that died with a restarted Redis fails once: retry on a new one.
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


async def forget_connections(client: Client) -> None:
    """Drop every pooled connection (Redis was unreachable: they are dead); a cluster also
    forgets its map of slots and asks for it again at the next command."""
    if isinstance(client, RedisCluster):
        await client.aclose()
    else:
        await client.connection_pool.disconnect()


async def publish_all(client: Client, messages: list[tuple[str, bytes]]) -> None:
    """Publish each `(channel, data)` of `messages` in one round trip, in order (channels of
    one slot, on a cluster)."""
    async with client.pipeline(transaction=False) as pipeline:
        for channel, data in messages:
            publish(pipeline, channel, data)
        await pipeline.execute()


def publish(target: Any, channel: str, data: bytes) -> Any:
    """PUBLISH `data` on `channel` through `target` (the client, or a pipeline of it): SPUBLISH
    on a cluster. Awaitable from a client; queued on a pipeline."""
    if isinstance(target, RedisCluster | ClusterPipeline):
        return target.spublish(channel, data)
    return target.publish(channel, data)


class Subscription:
    """The bus' channel, subscribed on one connection: `get_message`, `ping` and `aclose` as
    redis-py's PubSub has them; `message`, `confirmed` and `ended` name the kinds of what it
    hears (PLAIN or SHARDED)."""

    def __init__(self, pubsub: Any, kinds: tuple[str, str, str], own: Any = None) -> None:
        self.pubsub, self._own = pubsub, own
        self.message, self.confirmed, self.ended = kinds
        self._sharded = kinds is SHARDED

    @classmethod
    async def open(cls, client: Client, channel: str) -> Subscription:
        if not isinstance(client, RedisCluster):
            pubsub = client.pubsub()
            await pubsub.subscribe(channel)
            return cls(pubsub, PLAIN, None)
        await client.initialize()  # the map of slots: which master holds the channel
        node = client.get_node_from_key(channel)
        if node is None:
            raise RedisConnectionError(f"no node of the cluster serves the slot of {channel}")
        pool = aioredis.ConnectionPool(connection_class=node.connection_class,
                                       **node.connection_kwargs)  # fmt: skip
        own = aioredis.Redis(connection_pool=pool)
        subscription = cls(own.pubsub(), SHARDED, own)
        try:
            await subscription.pubsub.ssubscribe(channel)
        except BaseException:
            await subscription.aclose()
            raise
        return subscription

    async def add(self, channels: list[str]) -> None:
        """Subscribe to more channels (of the bus channel's slot, on a cluster): Redis confirms
        each with a message of kind `confirmed`."""
        if self._sharded:
            await self.pubsub.ssubscribe(*channels)
        else:
            await self.pubsub.subscribe(*channels)

    async def remove(self, channels: list[str]) -> None:
        """Unsubscribe from `channels`: Redis confirms each with a message of kind `ended`."""
        if self._sharded:
            await self.pubsub.sunsubscribe(*channels)
        else:
            await self.pubsub.unsubscribe(*channels)

    async def get_message(self, within: float) -> dict[str, Any] | None:
        """What Redis said next (None: nothing within `within` seconds)."""
        return cast(dict[str, Any] | None, await self.pubsub.get_message(timeout=within))

    async def ping(self) -> None:
        await self.pubsub.ping()

    async def aclose(self) -> None:
        try:
            await self.pubsub.aclose()
        finally:
            if self._own is not None:
                await self._own.connection_pool.disconnect()
                await self._own.aclose()
