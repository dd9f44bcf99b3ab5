"""The composition root: `create_app(settings)` opens the store, picks every concrete class and
builds the object graph with constructors only.

The store and the firehose are open before the graph is built (everything else is made from
them) and close last. The other resources are cleanup contexts, so shutdown undoes exactly
what start did, in reverse: the node stats, the feeds (writes drained, then announcements,
then the fanout runner), the bus and the sockets' heartbeat, then the firehose and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from typing import Any

from aiohttp import web

from ..api.admin import create_admin
from ..api.app import OTHER_VERSIONS, PREFIX, create_api, create_media, create_other_versions
from ..api.dashboard import setup_dashboard
from ..api.encoding import encoded_once
from ..api.keys import (
    BROADCASTER,
    BUS,
    DATABASE,
    ENRICHER,
    FIREHOSE,
    HEARTBEAT,
    HUB,
    LIMITER,
    MEDIA,
    NODE_ID,
    OBJECTS,
    PRESENCE,
    PREVIEWS,
    PRIVACY,
    REACTIONS,
    RUNNER,
    SERVICE,
    SETTINGS,
    SIO,
    STATS,
)  # fmt: skip
from ..api.metering import metered
from ..api.ops import setup_ops
from ..bus.base import Bus, LocalBus
from ..bus.node_stats import StatsBoard
from ..bus.redis_bus import RedisBus
from ..config import NOTIFICATION, Settings, allowed_origins
from ..config.media import S3
from ..domain.media import MEDIA_PATH
from ..domain.reactions import Bounds, SentCounts
from ..fanout.runner import FanoutRunner
from ..feeds.announce import Announcer
from ..feeds.context import FeedContext
from ..feeds.enrich import Enricher
from ..feeds.privacy import DataPrivacy
from ..feeds.reactions import Reactions
from ..feeds.reads import Reads
from ..feeds.service import FeedService
from ..firehose.outbox import Firehose
from ..firehose.setup import running_firehose
from ..media.service import MediaService
from ..objects.collections import Collections
from ..objects.service import Objects
from ..objects.users import Users
from ..og.previews import LinkPreviews, open_session
from ..ratelimit import Limiter
from ..realtime.active_feeds import WatchedFeeds
from ..realtime.broadcaster import Broadcaster
from ..realtime.events.handlers import Handlers
from ..realtime.events.raid import RaidEvents
from ..realtime.events.watches import Watches
from ..realtime.faye.clients import Clients as FayeClients
from ..realtime.faye.server import Bayeux
from ..realtime.faye.transports import FayeEndpoint
from ..realtime.presence.service import Presence
from ..realtime.transport.heartbeat import Heartbeat
from ..realtime.transport.hub import Hub
from ..realtime.transport.outlets import RoomEvents
from ..realtime.transport.protocol import close_frame
from ..realtime.transport.sio import create_sio, mount
from ..realtime.transport.sio_peers import SioEvents, SioPeers
from ..realtime.transport.slow_consumers import watch_slow_consumers
from ..realtime.transport.websocket import FastPath
from ..runtime.background import TaskSet
from ..runtime.loop_watch import LoopWatch
from ..store.blobs.gridfs import GridFsBlobs
from ..store.blobs.s3 import S3Blobs, s3_client
from ..store.memory.activity_cache import MB, ActivityCache
from ..store.memory.enriched_parts import SharedParts
from ..store.memory.feed_heads import FeedHeads
from ..store.memory.object_cache import ObjectCache
from ..store.memory.reaction_cache import VERSIONED_MAX_AGE, ReactionCache, ShownReactions
from ..store.memory.recent_reads import RecentReads
from ..store.mongo import client as mongo
from ..store.mongo.activities import ActivityStore
from ..store.mongo.client import Database
from ..store.mongo.collections import EntryStore
from ..store.mongo.embedded import embedded_store
from ..store.mongo.follows import FollowStore
from ..store.mongo.groups import GroupStore
from ..store.mongo.jobs import JobStore
from ..store.mongo.migrations import migrate
from ..store.mongo.reactions import ReactionStore
from ..store.mongo.users import UserStore

log = logging.getLogger(__name__)
SOCKETS_GOODBYE_SECONDS = 2.0
CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Database]:
    """The database, migrated, with its indexes (on the embedded store when no URL is set)."""
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
        yield db


async def open_media(
    settings: Settings, db: Database, stack: contextlib.AsyncExitStack
) -> tuple[MediaService, LinkPreviews]:
    """Uploads (GridFS in the store, or an S3 bucket) and the link previews' HTTP session,
    closed with `stack`."""
    media = settings.media
    blobs: GridFsBlobs | S3Blobs = GridFsBlobs(db)
    if media.store == S3:
        client = await stack.enter_async_context(s3_client(media))
        blobs = S3Blobs(client, media.s3_bucket, media.s3_prefix)
    session = await stack.enter_async_context(open_session(settings.og))
    uploads = MediaService(blobs, media, str(settings.auth.api_secret))
    return uploads, LinkPreviews(session, settings.og)


def _closing(stack: contextlib.AsyncExitStack) -> CleanupContext:
    async def close(app: web.Application) -> AsyncIterator[None]:
        yield
        await stack.aclose()

    return close


async def create_app(settings: Settings) -> web.Application:
    """The application of one node: its store and firehose open, its graph built."""
    node = node_id()  # one per process: it owns leases and signs its messages
    resources = contextlib.AsyncExitStack()
    try:
        db = await resources.enter_async_context(open_store(settings))
        firehose = await resources.enter_async_context(
            running_firehose(settings.firehose, db, node, settings.server.shutdown_timeout)
        )
        uploads, previews = await open_media(settings, db, resources)
        app = build(settings, node, db, firehose)
        app[MEDIA], app[PREVIEWS] = uploads, previews
    except BaseException:
        await resources.aclose()
        raise
    app.cleanup_ctx.insert(0, _closing(resources))  # the first made, the last undone
    return app


def build(settings: Settings, node: str, db: Database, firehose: Firehose) -> web.Application:
    """Every object of the node, each given what it needs when it is made."""
    max_body = settings.server.max_body_bytes
    app = web.Application(middlewares=[metered], client_max_size=max_body)  # every body's limit
    redis, realtime, memory = settings.redis, settings.realtime, settings.cache
    bus: Bus = (
        RedisBus(node, str(redis.url), redis.channel, redis.routed_rooms)
        if redis.url
        else LocalBus(node)
    )
    # The store, behind the caches that keep it fast.
    cache = ActivityCache(int(memory.activities_mb * MB), memory.max_staleness_seconds, bus)
    heads = FeedHeads(int(memory.heads_mb * MB), memory.max_staleness_seconds, bus=bus)
    activities = ActivityStore(db, GroupStore(db, settings.feeds), cache, heads)
    follows = FollowStore(db)
    jobs = JobStore(db, node, timedelta(seconds=settings.fanout.lease_seconds))
    recent = RecentReads(settings.fanout.active_seconds)  # the feeds read lately
    reads = Reads(activities, follows, bus, recent)
    # The sockets of this node, and what reaches them on every node.
    sio = create_sio(settings)
    hub = Hub(realtime.max_queue_packets, realtime.write_buffer_bytes, realtime.max_queue_bytes,
              bus)  # fmt: skip
    sio_peers = SioPeers(sio, settings.limits.trust_forwarded_for)
    groups = [name for name, group in settings.feeds.items() if group.realtime]
    notification = [n for n, g in settings.feeds.items() if g.type == NOTIFICATION]
    sent_counts = SentCounts()  # reactions' counts this node sent: they never go back
    broadcaster = Broadcaster(
        hub, sio_peers, bus, groups, notification, reads.counts_many, sent_counts
    )
    # The use cases.
    announcer = Announcer(firehose, broadcaster, TaskSet("announcement"))
    link = bus if isinstance(bus, RedisBus) else None
    watched = WatchedFeeds(hub, recent, link, redis.channel, settings.fanout.active_seconds)
    runner = FanoutRunner(activities, follows, jobs, broadcaster, settings.fanout, announcer,
                          watched)  # fmt: skip
    ctx = FeedContext(settings, activities, follows, jobs, runner, announcer, broadcaster)
    writes = TaskSet("write")  # every write under way, drained at shutdown
    service = FeedService(ctx, reads, writes)
    bounds = Bounds(settings.activities.max_bytes, frozenset(settings.feeds.keys()))
    # What enriched reads look up, in memory within the same bound as pages (max_staleness).
    fresh = memory.max_staleness_seconds
    reaction_store = ReactionStore(db, ObjectCache(fresh))
    users, entries = UserStore(db, ObjectCache(fresh)), EntryStore(db, ObjectCache(fresh))
    reactions = Reactions(reaction_store, service, bounds, writes, users)
    objects = Objects(
        Users(users, follows, settings.objects), Collections(entries, settings.objects)
    )
    latest = ReactionCache(VERSIONED_MAX_AGE)  # proved current by versions (reaction_cache.py)
    shown = ShownReactions(encoded_once)  # reactions as enriched pages show them, encoded
    enricher = Enricher(users, entries, activities, reaction_store, latest, shown, SharedParts())
    # What the sockets ask.
    presence_groups = [name for name, group in settings.feeds.items() if group.presence]
    presence = Presence(node, presence_groups, realtime.presence_ttl,
                        realtime.presence_info_bytes, RoomEvents(hub, sio), bus)  # fmt: skip
    raid = RaidEvents(settings, service, presence)
    watches = Watches(settings, reactions, hub, sent_counts, bus)
    limiter = Limiter(settings.limits, redis.channel, link)  # the REST API's and the sockets'
    handlers = Handlers(settings, service, hub, bus, presence,
                        {**raid.events(), **watches.events()}, limiter)  # fmt: skip
    SioEvents(sio_peers, handlers)
    heartbeat = Heartbeat(hub, realtime.ping_interval)
    fast = None
    if realtime.fast_websocket:
        fast = FastPath(hub, heartbeat, handlers, realtime.ping_interval, realtime.ping_timeout,
                        allowed_origins(settings), realtime.websocket_compression,
                        realtime.connect_timeout, settings.limits.trust_forwarded_for)  # fmt: skip
    faye_clients = FayeClients(hub, realtime.faye_app_id, realtime.faye_timeout, service.missed,
                               realtime.max_missed)  # fmt: skip
    faye = FayeEndpoint(settings, Bayeux(settings, faye_clients, handlers))
    stats = StatsBoard(node, bus if isinstance(bus, RedisBus) else None, redis.channel)
    app[SETTINGS], app[NODE_ID], app[DATABASE], app[FIREHOSE] = settings, node, db, firehose
    app[BUS], app[SIO], app[HUB], app[HEARTBEAT] = bus, sio, hub, heartbeat
    app[PRESENCE], app[RUNNER], app[SERVICE], app[STATS] = presence, runner, service, stats
    app[BROADCASTER], app[OBJECTS], app[REACTIONS] = broadcaster, objects, reactions
    app[ENRICHER], app[PRIVACY] = enricher, DataPrivacy(service, reactions)
    app[LIMITER] = limiter
    mount(app, sio, fast, realtime.websocket_compression)
    app.add_subapp(PREFIX, create_api())
    app.add_subapp(OTHER_VERSIONS, create_other_versions())
    app.add_subapp("/admin", create_admin())
    app.add_subapp(MEDIA_PATH, create_media())
    setup_ops(app)
    setup_dashboard(app)
    faye.mount(app)
    background = [_background(f) for f in (watched.run, stats.run, LoopWatch().run)]
    app.cleanup_ctx.extend([_realtime, _feeds, *background, faye.running])
    app.on_shutdown.extend([_presence_goodbye, _goodbye_sockets, faye.goodbye])
    return app


async def _feeds(app: web.Application) -> AsyncIterator[None]:
    """The fanout runner's watch for abandoned jobs; at shutdown, the writes under way first
    (they start fanout jobs), then the announcements, then the runner."""
    settings, service, runner = app[SETTINGS], app[SERVICE], app[RUNNER]
    watcher = asyncio.create_task(runner.watch_abandoned())
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    timeout = settings.server.shutdown_timeout
    await service.writes.drain(timeout)
    await service.announcer.close(timeout)
    await runner.close(timeout)
    await app[SIO].shutdown()


async def _realtime(app: web.Application) -> AsyncIterator[None]:
    """The bus between nodes, presence across them, the fast path's heartbeat and the
    slow-consumer watch of python-socketio's sockets."""
    settings, sio, bus, presence = app[SETTINGS], app[SIO], app[BUS], app[PRESENCE]
    if settings.realtime.gc_threshold:  # see tidings/config/default.toml
        gc.freeze()  # what start-up made lives as long as the process: never scan it again
        gc.set_threshold(settings.realtime.gc_threshold, *gc.get_threshold()[1:])
    bus.start()
    presence.start()
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
    await presence.close()
    await bus.close()


def _background(run: Callable[[], Coroutine[Any, Any, None]]) -> CleanupContext:
    """A task that runs as long as the node does (which feeds are active, told to Redis; this
    node's report for the dashboard; the event loop's gauges)."""

    async def running(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return running


async def _presence_goodbye(app: web.Application) -> None:
    """On SIGTERM, before the sockets are closed: this node's members leave every node at
    once (instead of when its presence entries expire)."""
    await app[PRESENCE].close()


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
