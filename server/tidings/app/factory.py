"""The composition root: `create_app(settings)` picks every concrete class and wires them.

Each resource is one cleanup context, so shutdown undoes exactly what start did, in reverse:
the store (embedded process or MongoDB client), then the feed service and the fanout runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from ..api.cors import cors
from ..api.errors import stream_errors
from ..api.keys import (
    BROADCASTER,
    DATABASE,
    FIREHOSE,
    HEARTBEAT,
    HUB,
    NODE_ID,
    PRESENCE,
    PRESENCE_LINK,
    REACTIONS,
    REDIS,
    RUNNER,
    SERVICE,
    SETTINGS,
    SIO,
    STATS,
)  # fmt: skip
from ..api.routes import setup_routes
from ..bus.node_stats import StatsBoard
from ..bus.pubsub import RedisLink
from ..config import NOTIFICATION, Settings, allowed_origins
from ..domain.reactions import Bounds
from ..fanout.runner import FanoutRunner
from ..feeds.announce import Announcer
from ..feeds.context import FeedContext
from ..feeds.reactions import Reactions
from ..feeds.service import FeedService
from ..firehose.setup import running_firehose
from ..realtime.broadcaster import Broadcaster
from ..realtime.events.handlers import Handlers
from ..realtime.events.raid import RaidEvents
from ..realtime.presence.service import Presence
from ..realtime.transport.heartbeat import Heartbeat
from ..realtime.transport.hub import Hub
from ..realtime.transport.outlets import RoomEvents
from ..realtime.transport.protocol import close_frame
from ..realtime.transport.sio import create_sio, mount
from ..realtime.transport.sio_peers import SioPeers
from ..realtime.transport.slow_consumers import watch_slow_consumers
from ..realtime.transport.websocket import FastPath
from ..runtime.background import TaskSet
from ..store.memory.activity_cache import MB, ActivityCache
from ..store.memory.feed_heads import FeedHeads
from ..store.mongo import client as mongo
from ..store.mongo.activities import ActivityStore
from ..store.mongo.embedded import embedded_store
from ..store.mongo.follows import FollowStore
from ..store.mongo.groups import GroupStore
from ..store.mongo.jobs import JobStore
from ..store.mongo.migrations import migrate
from ..store.mongo.reactions import ReactionStore

log = logging.getLogger(__name__)
SOCKETS_GOODBYE_SECONDS = 2.0


def node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def _store(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with contextlib.AsyncExitStack() as stack:
        url = str(settings.mongodb.url)
        if not url:
            url = await stack.enter_async_context(
                embedded_store(settings.server.data_dir, settings.mongodb.embedded_cache_size)
            )
        client = mongo.connect(url, settings.mongodb)
        stack.push_async_callback(client.close)
        db = client[settings.mongodb.database]
        await mongo.ensure_indexes(db)
        await migrate(db)
        app[DATABASE] = db
        yield


async def _firehose(app: web.Application) -> AsyncIterator[None]:
    """Webhooks and SQS (stopped after the feeds: their last batches still write messages)."""
    settings = app[SETTINGS]
    async with running_firehose(
        settings.firehose, app[DATABASE], app[NODE_ID], settings.server.shutdown_timeout
    ) as firehose:
        app[FIREHOSE] = firehose
        yield


async def _feeds(app: web.Application) -> AsyncIterator[None]:
    settings, db, sio = app[SETTINGS], app[DATABASE], app[SIO]
    groups = GroupStore(db, settings.feeds)
    memory = settings.cache
    cache = ActivityCache(int(memory.activities_mb * MB), memory.max_staleness_seconds)
    heads = FeedHeads(int(memory.heads_mb * MB), memory.max_staleness_seconds)
    activities, follows = ActivityStore(db, groups, cache, heads), FollowStore(db)
    jobs = JobStore(db, app[NODE_ID], timedelta(seconds=settings.fanout.lease_seconds))
    broadcaster = app[BROADCASTER]
    notification = [n for n, g in settings.feeds.items() if g.type == NOTIFICATION]
    announcer = Announcer(app[FIREHOSE], broadcaster, TaskSet("announcement"))
    runner = FanoutRunner(activities, follows, jobs, broadcaster, settings.fanout, announcer)
    app[RUNNER] = runner
    writes = TaskSet("write")
    ctx = FeedContext(settings, activities, follows, jobs, runner, announcer, broadcaster)
    app[SERVICE] = FeedService(ctx, writes)
    bounds = Bounds(settings.activities.max_bytes, frozenset(settings.feeds.keys()))
    app[REACTIONS] = Reactions(ReactionStore(db), app[SERVICE], bounds, writes)
    broadcaster.keep_current(cache, heads, app[SERVICE].reads.no_pulls)
    broadcaster.count_groups(app[SERVICE].reads.counts_many, notification)  # merged groups too
    watcher = asyncio.create_task(runner.watch_abandoned())
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await writes.drain(settings.server.shutdown_timeout)  # they start fanout jobs: first
    await announcer.close(settings.server.shutdown_timeout)
    await runner.close(settings.server.shutdown_timeout)
    await sio.shutdown()


async def _realtime(app: web.Application) -> AsyncIterator[None]:
    """The Redis link between nodes (when configured), the fast path's heartbeat and the
    slow-consumer watch of python-socketio's sockets."""
    settings, sio = app[SETTINGS], app[SIO]
    if settings.realtime.gc_threshold:  # see tidings/config/default.toml
        gc.freeze()  # what start-up made lives as long as the process: never scan it again
        gc.set_threshold(settings.realtime.gc_threshold, *gc.get_threshold()[1:])
    link = app.get(REDIS)
    if link is not None:
        link.start()
    presence_link = app.get(PRESENCE_LINK)
    if presence_link is not None:
        presence_link.start()
    heartbeat = app[HEARTBEAT]
    heartbeat.start()
    realtime = settings.realtime
    watch = asyncio.create_task(
        watch_slow_consumers(sio, realtime.max_queue_packets, realtime.max_queue_bytes)
    )
    yield
    heartbeat.stop()
    watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch
    if presence_link is not None:
        await presence_link.close()
    if link is not None:
        await link.close()


async def _stats(app: web.Application) -> AsyncIterator[None]:
    """This node's report for the dashboard, written to Redis every few seconds."""
    task = asyncio.create_task(app[STATS].run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _presence_goodbye(app: web.Application) -> None:
    """On SIGTERM, before the sockets are closed: this node's members leave every node at
    once (instead of when its presence entries expire)."""
    presence_link = app.get(PRESENCE_LINK)
    if presence_link is not None:
        await presence_link.close()


async def _goodbye_sockets(app: web.Application) -> None:
    """On SIGTERM, close every Socket.IO connection (clients reconnect to another node and
    recover with `since`), so that the shutdown does not wait out `server.shutdown_timeout`
    for connections that never end by themselves."""
    app[HUB].close_all(close_frame(1001))
    eio = app[SIO].eio
    if not eio.sockets:  # engineio's disconnect-all fails on an empty server
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SOCKETS_GOODBYE_SECONDS):
            await eio.disconnect()


def create_app(settings: Settings) -> web.Application:
    max_body = settings.server.max_body_bytes
    app = web.Application(middlewares=[cors, stream_errors], client_max_size=max_body)
    app[SETTINGS] = settings
    app[NODE_ID] = node = node_id()  # one per process: it owns leases and signs its publishes
    realtime = settings.realtime
    sio = create_sio(settings)
    hub = Hub(realtime.max_queue_packets, realtime.write_buffer_bytes, realtime.max_queue_bytes)
    link = None
    if settings.redis.url:
        link = app[REDIS] = RedisLink(str(settings.redis.url), settings.redis.channel)
    presence_groups = [name for name, group in settings.feeds.items() if group.presence]
    presence = app[PRESENCE] = Presence(
        node, presence_groups, realtime.presence_ttl, realtime.presence_info_bytes,
        RoomEvents(hub, sio), link,
    )  # fmt: skip
    if link is not None and presence.link is not None:
        app[PRESENCE_LINK] = presence.link
        link.on_up = presence.link.on_up
    raid = RaidEvents(settings, lambda: app[SERVICE], presence)
    handlers = Handlers(settings, lambda: app[SERVICE], hub, presence, raid.events())
    sio_peers = SioPeers(sio, handlers)
    heartbeat = Heartbeat(hub, realtime.ping_interval)
    fast = None
    if realtime.fast_websocket:
        fast = FastPath(hub, heartbeat, handlers, realtime.ping_interval, realtime.ping_timeout,
                        allowed_origins(settings), realtime.websocket_compression,
                        realtime.connect_timeout)  # fmt: skip
    groups = [name for name, group in settings.feeds.items() if group.realtime]
    app[SIO], app[HUB], app[HEARTBEAT] = sio, hub, heartbeat
    app[BROADCASTER] = Broadcaster(hub, sio_peers, handlers, link, groups, node)
    mount(app, sio, fast, realtime.websocket_compression)
    setup_routes(app)
    app[STATS] = StatsBoard(node, link, settings.redis.channel)
    app.cleanup_ctx.extend([_store, _realtime, _firehose, _feeds, _stats])
    app.on_shutdown.extend([_presence_goodbye, _goodbye_sockets])
    return app
