"""Active feeds first: within a push, the follower feeds someone watches (a socket subscribed on
any node) or read lately are written, and their events sent, before the others; nothing is
skipped or doubled, also across a kill -9 mid-fanout.

The order is shown without timing: the fanout node holds every batch at a fault point
(runtime/faults.py `hold`) until the test lets it go, one batch at a time (concurrency 1). While
the first batch after the active one is held, the active feeds hold the activity and their
sockets have the event, and no other follower feed holds it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import redis
from pymongo import MongoClient

from harness.redis import RedisServer
from harness.server import Spawn
from tests.integration.fanout_support import (
    Doc,
    api,
    assert_fanned_out_once,
    entry_count,
    follower_entries,
    follower_feeds,
    jobs_of,
    post_activity,
    wait_jobs_gone,
)
from tests.integration.nodes import Sub, add_followers, poll, subscriber
from tests.support import ServerProcess, Store, wait_until

FOLLOWERS = 2_000  # 4 chunks, 20 batches of 100
WATCHED = slice(1_990, 2_000)  # the last ten follower feeds have a socket each
READ = [1_200, 1_400, 1_600, 1_800, 1_985]  # these were read lately
BATCHES = {"TIDINGS_FANOUT_BATCH_SIZE": "100", "TIDINGS_FANOUT_CONCURRENCY": "1"}
POINT = "fanout.batch"


def holding(folder: Path) -> dict[str, str]:
    """Every fanout batch of the node waits at its start until the test lets it go."""
    return {"TIDINGS_TEST_FAULT": f"{POINT}:hold", "TIDINGS_TEST_HOLD_DIR": str(folder)}


def held(folder: Path, n: int) -> None:
    wait_until(lambda: (folder / f"{POINT}.{n}.held").exists(), 30, 0.01,
               what=f"batch {n} to be held")  # fmt: skip


def release(folder: Path, n: int) -> None:
    (folder / f"{POINT}.{n}.release").touch()


def read(node: ServerProcess, feed: str) -> None:
    group, user = feed.split(":", 1)
    assert api(node, "GET", f"feed/{group}/{user}/").status_code == 200


async def watch(subs: list[Sub], node: ServerProcess, feeds: list[str]) -> None:
    for feed in feeds:
        await subscriber(subs, node, [feed])


def active_feeds(feeds: list[str]) -> list[str]:
    return [*feeds[WATCHED], *(feeds[n] for n in READ)]


async def first_written(
    folder: Path, db: Any, aid: str, uid: str, active: list[str], subs: list[Sub]
) -> None:
    """The first batch writes the active feeds, and their sockets get the event, before any
    other follower feed holds the activity."""
    await asyncio.to_thread(held, folder, 1)
    assert entry_count(db, aid) == 1  # the origin feed's, written by the insert
    release(folder, 1)
    await asyncio.to_thread(held, folder, 2)  # the next batch waits: nothing else is written
    assert set(follower_entries(db, aid, uid)) == set(active)
    assert entry_count(db, aid) == 1 + len(active)
    for sub in subs:
        await sub.wait_update(aid, "while the other follower feeds do not hold it yet")
    assert entry_count(db, aid) == 1 + len(active)


async def test_the_watched_and_lately_read_feeds_are_written_first(
    spawn: Spawn, store: Store, mongo: MongoClient[Doc], uid: str, tmp_path: Path
) -> None:
    node = spawn({**BATCHES, **holding(tmp_path)})
    db = mongo[node.database]
    celeb, feeds = f"user:{uid}", follower_feeds(uid, FOLLOWERS)
    await add_followers(store, db, celeb, feeds)
    subs: list[Sub] = []
    try:
        await watch(subs, node, feeds[WATCHED])
        for n in READ:
            await asyncio.to_thread(read, node, feeds[n])
        aid = post_activity(node, celeb, {"actor": uid, "verb": "post", "object": "o:1"})["id"]

        await first_written(tmp_path, db, aid, uid, active_feeds(feeds), subs)

        (tmp_path / f"{POINT}.open").touch()
        await asyncio.to_thread(wait_jobs_gone, db, aid)
        assert_fanned_out_once(db, aid, uid, feeds, origin=celeb)
        await asyncio.sleep(0.5)  # time for an event sent twice to arrive
        for sub in subs:
            assert len(sub.updates_of(aid)) == 1, sub.updates_of(aid)
    finally:
        for sub in subs:
            await sub.close()


async def test_feeds_watched_on_another_node_are_written_first(
    spawn: Spawn, store: Store, mongo: MongoClient[Doc], redis_server: RedisServer, uid: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    cluster = {"TIDINGS_REDIS_URL": redis_server.url, "TIDINGS_REDIS_CHANNEL": f"t{uid}"}
    fanout = spawn({**BATCHES, **cluster, **holding(tmp_path)})
    watching = spawn({**BATCHES, **cluster}, database=fanout.database)
    db = mongo[fanout.database]
    celeb, feeds = f"user:{uid}", follower_feeds(uid, FOLLOWERS)
    await add_followers(store, db, celeb, feeds)
    active = active_feeds(feeds)
    link = redis.Redis.from_url(redis_server.url)
    subs: list[Sub] = []
    try:
        await watch(subs, watching, feeds[WATCHED])
        for n in READ:
            await asyncio.to_thread(read, watching, feeds[n])

        async def told() -> bool:  # the watching node tells the others within a second
            scores = link.zmscore(f"t{uid}:active", active)
            return all(score is not None for score in scores)

        await poll(told, "the watching node to tell which feeds are active")
        aid = post_activity(fanout, celeb, {"actor": uid, "verb": "post", "object": "o:1"})["id"]

        await first_written(tmp_path, db, aid, uid, active, subs)

        (tmp_path / f"{POINT}.open").touch()
        await asyncio.to_thread(wait_jobs_gone, db, aid)
        assert_fanned_out_once(db, aid, uid, feeds, origin=celeb)
        await asyncio.sleep(0.5)  # time for an event sent twice to arrive
        for sub in subs:
            assert len(sub.updates_of(aid)) == 1, sub.updates_of(aid)
    finally:
        for sub in subs:
            await sub.close()
        link.close()


async def test_a_kill_after_the_active_feeds_loses_and_doubles_nothing(
    spawn: Spawn, store: Store, mongo: MongoClient[Doc], uid: str, tmp_path: Path
) -> None:
    env = {**BATCHES, "TIDINGS_FANOUT_LEASE_SECONDS": "3"}
    first = spawn({**env, **holding(tmp_path)})
    db = mongo[first.database]
    celeb, feeds = f"user:{uid}", follower_feeds(uid, FOLLOWERS)
    await add_followers(store, db, celeb, feeds)
    subs: list[Sub] = []
    try:
        await watch(subs, first, feeds[WATCHED])
        for n in READ:
            await asyncio.to_thread(read, first, feeds[n])
        aid = post_activity(first, celeb, {"actor": uid, "verb": "post", "object": "o:1"})["id"]
        await first_written(tmp_path, db, aid, uid, active_feeds(feeds), subs)
        # The five batches of the first chunk's other feeds: the cursor moves past it.
        for n in range(2, 7):
            release(tmp_path, n)
        await asyncio.to_thread(held, tmp_path, 7)
        [job] = jobs_of(db, aid)
        assert job["cursor"] == {"source": 0, "after": 0}, job["cursor"]
        assert entry_count(db, aid) == 1 + len(active_feeds(feeds)) + 500
    finally:
        for sub in subs:
            await sub.close()
    first.kill()

    spawn(env, database=first.database)  # takes the job over once its lease ran out
    wait_jobs_gone(db, aid, timeout=60)
    assert_fanned_out_once(db, aid, uid, feeds, origin=celeb)
    assert entry_count(db, aid) == FOLLOWERS + 1
