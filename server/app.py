"""The composition root: `create_app(settings)` picks every concrete class and wires them.

Each resource is one cleanup context, so shutdown undoes exactly what start did, in reverse:
the store (embedded process or MongoDB client), then the feed service and the fanout runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from .api.errors import stream_errors
from .api.routes import setup_routes
from .config import Settings
from .fanout.runner import FanoutRunner
from .fanout.service import FeedService
from .keys import DATABASE, RUNNER, SERVICE, SETTINGS, SIO
from .realtime import handlers
from .realtime.broadcaster import SocketIOBroadcaster
from .realtime.pubsub import RESYNC, RedisPubSubManager
from .realtime.slow_consumers import watch_slow_consumers
from .realtime.transport import create_sio, no_websocket_compression
from .store import mongo
from .store.activities import ActivityStore
from .store.embedded import embedded_store
from .store.follows import FollowStore
from .store.jobs import JobStore

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
        client = mongo.connect(url)
        stack.push_async_callback(client.close)
        db = client[settings.mongodb.database]
        await mongo.ensure_indexes(db)
        app[DATABASE] = db
        yield


async def _feeds(app: web.Application) -> AsyncIterator[None]:
    settings, db, sio = app[SETTINGS], app[DATABASE], app[SIO]
    activities, follows = ActivityStore(db), FollowStore(db)
    jobs = JobStore(db, node_id(), timedelta(seconds=settings.fanout.lease_seconds))
    realtime_groups = [name for name, group in settings.feeds.items() if group.realtime]
    broadcaster = SocketIOBroadcaster(sio, realtime_groups)
    runner = FanoutRunner(activities, follows, jobs, broadcaster, settings.fanout)
    app[RUNNER] = runner
    app[SERVICE] = FeedService(settings, activities, follows, jobs, runner, broadcaster)
    watcher = asyncio.create_task(runner.watch_abandoned())
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await runner.close(settings.server.shutdown_timeout)
    await sio.shutdown()


async def _realtime(app: web.Application) -> AsyncIterator[None]:
    """The Redis link between nodes (when configured) and the slow-consumer watch."""
    settings, sio = app[SETTINGS], app[SIO]
    manager = sio.manager
    if isinstance(manager, RedisPubSubManager):
        manager.on_recovery = lambda: sio.emit(RESYNC, {"reason": "redis"}, ignore_queue=True)
        manager.start()
    watch = asyncio.create_task(watch_slow_consumers(sio, settings.realtime.max_queue_packets))
    yield
    watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch
    if isinstance(manager, RedisPubSubManager):
        await manager.close()


async def _goodbye_sockets(app: web.Application) -> None:
    """On SIGTERM, close every Socket.IO connection (clients reconnect to another node and
    recover with `since`), so that the shutdown does not wait out `server.shutdown_timeout`
    for connections that never end by themselves."""
    eio = app[SIO].eio
    if not eio.sockets:  # engineio's disconnect-all fails on an empty server
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SOCKETS_GOODBYE_SECONDS):
            await eio.disconnect()


def create_app(settings: Settings) -> web.Application:
    middlewares = [stream_errors]
    if not settings.realtime.websocket_compression:
        middlewares.insert(0, no_websocket_compression)
    app = web.Application(middlewares=middlewares, client_max_size=settings.server.max_body_bytes)
    app[SETTINGS] = settings
    sio = create_sio(settings)
    app[SIO] = sio
    sio.attach(app)
    handlers.register(sio, settings, lambda: app[SERVICE])
    setup_routes(app)
    app.cleanup_ctx.extend([_store, _realtime, _feeds])
    app.on_shutdown.append(_goodbye_sockets)
    return app
