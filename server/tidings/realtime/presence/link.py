"""Presence across nodes, through Redis only (no store writes).

In Redis, under the `redis.channel` name as a hash tag (`{<channel>}:presence:...`, so that on a
Redis Cluster every key of presence is in one hash slot, the channel's own, where the scripts
below may use them together):
- `nodes`: a sorted set of the live nodes, each scored with the time (Redis's clock, ms) its
  entries expire; every node refreshes its own every `min(1, ttl/4)` seconds, well inside
  `realtime.presence_ttl`;
- `node:<node>`: a hash of that node's members, `[feed, user_id]` -> `[info, connections,
  since]`, expiring with the node (refreshed with it).

On the bus: `PresenceSet`, `PresenceSync` and `PresenceGone` (bus/messages.py). A node's
messages go out in order, through one sender, each in one pipeline with its hash writes.

A node that dies stops refreshing: once its time has passed, a node that sees it in `nodes`
runs the `CLAIM` script, naming the keys it touches (`nodes` and the dead node's hash), which
removes it from `nodes` (and its hash) atomically if its time has still passed, so exactly one
node claims each death, and that node publishes `p.gone`: every node then drops the dead node's
entries and tells its own sockets the leaves of the users no other node has. A node that stops
cleanly publishes `p.gone` for itself at once. A node whose view holds a node that is not in
`nodes` twice in a row drops it too (a `p.gone` that was lost, a Redis restarted empty).

After an outage (and at start) every node registers, republishes its members (`p.sync`) and
asks the others for theirs. Reaping waits a grace period after a recovery, so that no node is
claimed before it could register again; a node that is claimed while alive anyway (it hears
`p.gone` about itself) registers and republishes, and its members join again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Protocol

from redis.exceptions import RedisError

from ...bus.messages import LinkUp, PresenceGone, PresenceSet, PresenceSync
from ...bus.redis_bus import PUBLISH_TIMEOUT, RETRY_MAX, RedisBus
from ...metrics import PRESENCE_NODES_GONE
from .view import Entry, Key, View


class Members(Protocol):
    """What the link needs of this node's presence (service.py's Presence)."""

    node: str
    ttl: float
    view: View

    def local_entries(self) -> dict[Key, Entry]: ...

    def isolate(self) -> None: ...

    def node_gone(self, node: str) -> None: ...

    def remote_set(self, message: PresenceSet) -> None: ...

    def remote_sync(self, message: PresenceSync) -> None: ...

    def remote_gone(self, message: PresenceGone) -> None: ...


log = logging.getLogger(__name__)
REDIS_FAILURES = (RedisError, OSError, TimeoutError)

# KEYS[1] = nodes, KEYS[2] = this node's hash; ARGV = node, ttl in ms.
REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]))
return now
"""
# KEYS[1] = nodes, KEYS[1 + i] = the hash of node ARGV[i]. Claims (removes) each of those nodes
# whose time has still passed (another node may have claimed it first, or it refreshed since),
# and answers the nodes claimed.
CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local claimed = {}
for i, node in ipairs(ARGV) do
  local expires = redis.call('ZSCORE', KEYS[1], node)
  if expires and tonumber(expires) <= now then
    redis.call('ZREM', KEYS[1], node)
    redis.call('DEL', KEYS[1 + i])
    table.insert(claimed, node)
  end
end
return claimed
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(feed: str, user_id: str) -> str:
    return json.dumps([feed, user_id])


class PresenceLink:
    def __init__(self, presence: Members, link: RedisBus) -> None:
        self.presence, self.link = presence, link
        self.node = presence.node
        self.ttl_ms = int(presence.ttl * 1000)
        self.interval = min(1.0, presence.ttl / 4)
        prefix = f"{{{link.channel}}}:presence:"
        self.nodes_key, self.hash_prefix = prefix + "nodes", prefix + "node:"
        self.hash_key = self.hash_prefix + self.node
        self._outbox: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._dirty = False  # a write failed: republish everything once Redis takes it
        self._reap_after = 0.0
        self._recovering = False  # up again after an outage: reap after a grace period
        self._absent: dict[str, int] = {}
        self._closed = False
        link.on(PresenceSet, presence.remote_set)
        link.on(PresenceSync, presence.remote_sync)
        link.on(PresenceGone, presence.remote_gone)
        link.on(LinkUp, lambda _: self.on_up())

    @property
    def up(self) -> bool:
        return self.link.up

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._send_loop()), asyncio.create_task(self._tick())]

    # ---------------------------------------------------------------------------- outgoing

    def set(self, feed: str, user_id: str, entry: Entry | None) -> None:
        self._queue(("set", feed, user_id, entry))

    def sync(self, ask: bool = False) -> None:
        self._queue(("sync", ask))

    def rejoin(self) -> None:
        """Another node claimed this one dead: register and republish at once."""
        self._queue(("rejoin",))

    def _queue(self, item: tuple[Any, ...]) -> None:
        if not self._closed:
            self._outbox.append(item)
            self._wake.set()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            items, self._outbox = self._outbox, []
            if not self.up:
                self._dirty = True  # republished when Redis is back (on_up does)
                continue
            try:
                await asyncio.wait_for(self._send(items), PUBLISH_TIMEOUT)
            except REDIS_FAILURES as exc:
                log.debug("presence: cannot write to Redis: %r", exc)
                self._dirty = True
            except Exception:  # a bug: logged loud, and the loop goes on
                log.exception("presence: writing to Redis failed")
                self._dirty = True

    async def _send(self, items: list[tuple[Any, ...]]) -> None:
        redis = self.link.client()
        if any(item[0] == "rejoin" for item in items):
            await self._register()
        async with redis.pipeline(transaction=False) as pipe:
            for item in items:
                if item[0] == "set":
                    _, feed, user_id, entry = item
                    if entry is None:
                        pipe.hdel(self.hash_key, _field(feed, user_id))
                        wire = None
                    else:
                        wire = entry.wire()
                        pipe.hset(self.hash_key, _field(feed, user_id), json.dumps(wire))
                    message: Any = PresenceSet(self.node, feed, user_id, wire)
                elif item[0] == "gone":
                    message = PresenceGone(self.node, item[1])
                else:  # sync (also after a rejoin): everything, replacing the hash
                    entries = self.presence.local_entries()
                    pipe.delete(self.hash_key)
                    if entries:
                        pipe.hset(self.hash_key, mapping={
                            _field(*key): json.dumps(e.wire()) for key, e in entries.items()
                        })  # fmt: skip
                    members = [[*key, *e.wire()] for key, e in entries.items()]
                    ask = item[0] == "sync" and bool(item[1])
                    message = PresenceSync(self.node, members, ask)
                self.link.publish_in(pipe, message)
            pipe.pexpire(self.hash_key, self.ttl_ms)
            await pipe.execute()

    async def _register(self) -> int:
        """Refresh this node's time in `nodes` and its hash's expiry; Redis's clock (ms)."""
        now = await self.link.client().eval(  # type: ignore[misc,unused-ignore]
            REFRESH, 2, self.nodes_key, self.hash_key, self.node, self.ttl_ms
        )
        return int(now)

    # ------------------------------------------------------------------------ the cluster

    async def on_up(self) -> None:
        """Redis is (again) reachable: register, republish, ask the others for theirs."""
        loop = asyncio.get_running_loop()
        if self._recovering:  # the others need time to register again before any reaping
            self._reap_after = loop.time() + self.presence.ttl + RETRY_MAX + 1
        self._recovering = True
        try:
            await asyncio.wait_for(self._register(), PUBLISH_TIMEOUT)
        except REDIS_FAILURES as exc:
            log.debug("presence: cannot register: %r", exc)
        self._dirty = False
        self.sync(ask=True)

    async def _tick(self) -> None:
        """Refresh this node's entries, claim dead nodes, fall back to local presence while
        Redis is down for more than a TTL."""
        loop = asyncio.get_running_loop()
        down_since: float | None = None
        while True:
            await asyncio.sleep(self.interval)
            if not self.up:
                down_since = loop.time() if down_since is None else down_since
                if loop.time() - down_since > self.presence.ttl:
                    self.presence.isolate()
                continue
            down_since = None
            try:
                await asyncio.wait_for(self._refresh(loop.time()), PUBLISH_TIMEOUT)
            except REDIS_FAILURES as exc:
                log.debug("presence: cannot refresh: %r", exc)
                self._dirty = True
            except Exception:  # a bug: logged loud, and the loop goes on
                log.exception("presence: refreshing the entries failed")
                self._dirty = True

    async def _refresh(self, now: float) -> None:
        redis_now = await self._register()
        if self._dirty:
            self._dirty = False
            self.sync()
        if now < self._reap_after:
            return
        nodes: list[tuple[bytes, float]] = await self.link.client().zrange(  # type: ignore[assignment,unused-ignore]
            self.nodes_key, 0, -1, withscores=True
        )
        alive = [_text(node) for node, expires in nodes if expires > redis_now]
        late = [_text(node) for node, expires in nodes if expires <= redis_now]
        late = [node for node in late if node != self.node]
        claimed = await self._claim(late) if late else []
        for dead in claimed:
            log.warning("presence: node %s stopped refreshing its entries: its members leave",
                        dead)  # fmt: skip
            self.presence.node_gone(dead)
            PRESENCE_NODES_GONE.labels("claimed").inc()
            self._queue(("gone", dead))
        live = set(alive)
        for node in self.presence.view.nodes() - live - {self.node}:
            self._absent[node] = self._absent.get(node, 0) + 1
            if self._absent[node] >= 2:  # its p.gone never came, or Redis lost it
                self.presence.node_gone(node)
                PRESENCE_NODES_GONE.labels("swept").inc()
        self._absent = {n: c for n, c in self._absent.items() if n not in live and c < 2}

    async def _claim(self, late: list[str]) -> list[str]:
        """Of the nodes whose time had passed, the ones this node claimed."""
        keys = [self.nodes_key, *(self.hash_prefix + node for node in late)]
        claimed = await self.link.client().eval(  # type: ignore[misc,unused-ignore]
            CLAIM, len(keys), *keys, *late
        )
        return [_text(node) for node in claimed]

    async def close(self) -> None:
        """A clean stop: this node's members leave every node at once."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self.up:
            return
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                async with self.link.client().pipeline(transaction=False) as pipe:
                    pipe.zrem(self.nodes_key, self.node)
                    pipe.delete(self.hash_key)
                    self.link.publish_in(pipe, PresenceGone(self.node, self.node))
                    await pipe.execute()
        except REDIS_FAILURES as exc:
            log.warning("presence: could not tell the other nodes this one stops (%r): its "
                        "members leave when its entries expire", exc)  # fmt: skip
