"""What `tidings import` and `tidings export` run on: the store (a running server's, or the
embedded one started here), and the few objects they need, built with constructors only.

An import writes through the same repositories and the same follow use case as a node, wired
with no sockets, no bus and no firehose endpoint (transfer/quiet.py): historic data announces
nothing. A fanout mode switch that its follows call for is a durable job, started here and
finished by any node should the import end first.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from ..config import Settings, url_location
from ..domain.activities import Limits
from ..domain.reactions import Bounds
from ..fanout.runner import FanoutRunner
from ..feeds.announce import Announcer
from ..feeds.context import FeedContext
from ..feeds.following import FollowService
from ..firehose.outbox import Firehose
from ..runtime.background import TaskSet
from ..store.mongo import client as mongo
from ..store.mongo import embedded
from ..store.mongo.activities import ActivityStore
from ..store.mongo.client import Database
from ..store.mongo.collections import EntryStore
from ..store.mongo.dump import Dump
from ..store.mongo.follows import FollowStore
from ..store.mongo.groups import GroupStore
from ..store.mongo.imports import ImportWrites
from ..store.mongo.jobs import JobStore
from ..store.mongo.migrations import migrate
from ..store.mongo.reactions import ReactionStore
from ..store.mongo.users import UserStore
from ..transfer.exporter import Sources
from ..transfer.importer import Importer, Stores
from ..transfer.quiet import Quiet
from ..transfer.records import Rules
from .factory import node_id, open_store

CLOSE_SECONDS = 30.0  # a mode switch started by the import, given this long to finish


@contextlib.asynccontextmanager
async def offline_store(settings: Settings) -> AsyncIterator[Database]:
    """The store named by `mongodb.url`, else the embedded store a server on `server.data_dir`
    runs, else the embedded store started here (no server may run on it meanwhile)."""
    url = str(settings.mongodb.url) or embedded.running_url(settings.server.data_dir)
    if not url:
        async with open_store(settings) as db:
            yield db
        return
    client = mongo.connect(url, settings.mongodb)
    try:
        db = client[settings.mongodb.database]
        await mongo.ensure_indexes(db)
        await migrate(db)
        yield db
    finally:
        await client.close()


def rules_of(settings: Settings) -> Rules:
    bounds, fanout = settings.activities, settings.fanout
    limits = Limits(
        settings.feeds.keys(), bounds.max_bytes, bounds.max_to, bounds.max_batch,
        bounds.max_batch_bytes, bounds.max_future_seconds,
    )  # fmt: skip
    followable = [name for name, group in settings.feeds.items() if group.followable]
    return Rules(
        limits, Bounds(bounds.max_bytes, frozenset(settings.feeds.keys())),
        settings.objects.max_bytes, followable, fanout.default_copy_limit, fanout.max_copy_limit,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def importing(settings: Settings) -> AsyncIterator[Importer]:
    async with offline_store(settings) as db:
        activities = ActivityStore(db, GroupStore(db, settings.feeds))
        follows = FollowStore(db)
        jobs = JobStore(db, node_id(), timedelta(seconds=settings.fanout.lease_seconds))
        quiet = Quiet()
        announcer = Announcer(Firehose(), quiet, TaskSet("announcement"))
        runner = FanoutRunner(activities, follows, jobs, quiet, settings.fanout, announcer)
        ctx = FeedContext(settings, activities, follows, jobs, runner, announcer, quiet)
        reactions = ReactionStore(db)
        stores = Stores(
            activities, UserStore(db), EntryStore(db), ImportWrites(db, reactions),
            FollowService(ctx),
        )  # fmt: skip
        try:
            yield Importer(stores, rules_of(settings), _target(settings))
        finally:
            await runner.close(CLOSE_SECONDS)


def _target(settings: Settings) -> str:
    """The store and database, without credentials: what a checkpoint belongs to."""
    url = str(settings.mongodb.url)  # the embedded store's port changes with each start
    where = url_location(url) if url else f"embedded:{settings.server.data_dir}"
    return f"{where}/{settings.mongodb.database}"


@contextlib.asynccontextmanager
async def exporting(settings: Settings) -> AsyncIterator[Sources]:
    async with offline_store(settings) as db:
        yield Sources(Dump(db), UserStore(db), EntryStore(db), ReactionStore(db))
