"""Faults of the fanout core: a failed batch must not stall
a node, a removed activity must never come back, leases must hold while jobs wait, repeat
follows must take no chunk slot, a feed follows a bounded number of feeds, and the follower
counter is repaired from the follows themselves.

Real server processes on the embedded store; the in-process tests drive the fanout runner on
the same real store (the only stand-in is a recording Broadcaster, our own port).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient

from harness.pool import ServerPool
from harness.server import Spawn
from tests.integration.fanout_support import (
    FOLLOWERS,
    SMALL,
    add_followers,
    api,
    assert_fanned_out_once,
    follower_feeds,
    jobs_of,
    post_activity,
    read_ids,
    wait_jobs_gone,
    wait_partway,
)
from tests.support import ServerProcess, Store, wait_until
from tidings.config import FanoutSettings
from tidings.domain.events import feed_update
from tidings.fanout.runner import ActivityRemoved, FanoutRunner
from tidings.fanout.switches import Plan
from tidings.feeds.announce import Announcer
from tidings.firehose.outbox import Firehose
from tidings.runtime.background import TaskSet
from tidings.store.mongo.activities import ActivityStore
from tidings.store.mongo.client import Database, ensure_indexes
from tidings.store.mongo.entry_writes import Entry
from tidings.store.mongo.follows import CHUNK_SIZE, FollowStore, Member
from tidings.store.mongo.jobs import Job, JobStore

Doc = dict[str, Any]


def follow(node: ServerProcess, source: str, target: str, **body: Any) -> Any:
    group, user = source.split(":", 1)
    return api(node, "POST", f"feed/{group}/{user}/follows/", json={"target": target, **body})


# --- a failed batch must not stall the node ----------------------------------------


def test_a_batch_failed_by_a_removal_does_not_stall_later_fanouts(
    spawn: Spawn,
    store: Store,
    mongo: MongoClient[Doc],
    uid: str,
) -> None:
    """Removing an activity while its fanout runs fails the batch in flight; the node must then
    still fan out (slots were leaked: the next job waited forever)."""
    env = {"TIDINGS_FANOUT_BATCH_SIZE": "100", "TIDINGS_FANOUT_CONCURRENCY": "1"}
    node = spawn(env)
    db = mongo[node.database]
    celeb, feeds = f"user:{uid}", follower_feeds(uid, FOLLOWERS)
    add_followers(store, db, celeb, feeds)

    aid = post_activity(node, celeb, {"actor": uid, "verb": "post", "object": "oops"})["id"]
    wait_partway(db, aid, 300, 2_700)
    group, user = celeb.split(":")
    removed = api(node, "DELETE", f"feed/{group}/{user}/{aid}/")
    assert removed.status_code == 200, removed.text
    wait_jobs_gone(db, aid, timeout=30)
    assert db["feed_entries"].count_documents({"activity_id": aid}) == 0
    assert node.log_path is not None
    log = node.log_path.read_text()
    assert "stopped: its activity was removed" in log  # not blamed on another node
    assert "taken over by another node" not in log

    later = post_activity(node, celeb, {"actor": uid, "verb": "post", "object": "fine"})["id"]
    wait_jobs_gone(db, later, timeout=30)
    assert_fanned_out_once(db, later, uid, feeds, origin=celeb)
    assert read_ids(node, feeds[-1]) == [later]


# --- in-process: the runner on the real store --------------------------------------------------


class Recorder:
    """The Broadcaster port, recording what it is asked to deliver."""

    def __init__(self) -> None:
        self.updates: list[tuple[list[str], dict[str, Any]]] = []

    async def feed_update(self, feeds: Sequence[str], event: dict[str, Any]) -> None:
        self.updates.append((list(feeds), event))

    async def pull_update(self, feed: str, event: dict[str, Any]) -> None:
        self.updates.append(([feed], event))

    async def follows_changed(self, source: str, target: str, following: bool) -> None:
        pass


def settings(**changes: Any) -> FanoutSettings:
    base: dict[str, Any] = {
        "batch_size": 100, "concurrency": 2, "lease_seconds": 30.0, "poll_seconds": 0.5,
        "default_copy_limit": 100, "max_copy_limit": 1000, "pull_threshold": 10_000,
        "push_threshold": 8_000, "max_following": 5_000,
    }  # fmt: skip
    base.update(changes)
    return FanoutSettings(**base)


@pytest.fixture
async def db(store: Store) -> AsyncIterator[Database]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(store.url, tz_aware=True)
    name = f"t_{uuid.uuid4().hex[:12]}"
    database = client[name]
    await ensure_indexes(database)
    yield database
    await client.drop_database(name)
    await client.close()


def make_runner(db: Database, recorder: Recorder, **changes: Any) -> FanoutRunner:
    jobs = JobStore(db, "node-a", timedelta(seconds=30))
    announcer = Announcer(Firehose(), recorder, TaskSet())
    return FanoutRunner(
        ActivityStore(db), FollowStore(db), jobs, recorder, settings(**changes), announcer
    )


async def bulk_followers(db: Database, target: str, feeds: list[str]) -> None:
    from harness.follows import add_followers_bulk

    assert await add_followers_bulk(db, target, feeds) == len(feeds)


async def test_a_failed_batch_frees_its_slots_and_does_not_move_the_cursor_past_its_chunk(
    db: Database, uid: str
) -> None:
    recorder = Recorder()
    runner = make_runner(db, recorder, concurrency=2, batch_size=100)
    celeb, feeds = f"user:{uid}", follower_feeds(uid, 4 * CHUNK_SIZE)
    await bulk_followers(db, celeb, feeds)
    chunk_of = {feed: i // CHUNK_SIZE for i, feed in enumerate(feeds)}
    job = await runner.jobs.create("add", "x", [celeb])
    failing = 2

    def make(source: str) -> Any:
        async def batch(members: list[Member]) -> None:
            chunks = {chunk_of[feed] for feed, _ in members}
            await asyncio.sleep(0.01)
            if failing in chunks:
                raise RuntimeError("store error")

        return batch

    async def plan(_: Job) -> Plan:
        return Plan(make)

    runner._plan = plan  # type: ignore[method-assign, assignment]
    # As many failures as the node has slots (each leaked one before).
    for n in range(2):
        job = job if n == 0 else await runner.jobs.create("add", "x", [celeb])
        await asyncio.wait_for(runner.run(job), 30)
        stored = await db["fanout_jobs"].find_one({"_id": job.id})
        assert stored is not None, "a failed job must stay, to be resumed"
        after = stored["cursor"]["after"]
        assert stored["cursor"]["source"] == 0
        assert after is None or after < failing, f"the cursor moved past the failed chunk: {after}"
    # Every slot is back: a job of the whole follower list runs to its end.
    failing = -1
    again = await runner.jobs.create("add", "y", [celeb])
    await asyncio.wait_for(runner.run(again), 10)  # stalled for good before
    assert await db["fanout_jobs"].find_one({"_id": again.id}) is None


async def test_a_cancelled_job_frees_its_slots(db: Database, uid: str) -> None:
    recorder = Recorder()
    runner = make_runner(db, recorder, concurrency=2, batch_size=100)
    celeb, feeds = f"user:{uid}", follower_feeds(uid, 2 * CHUNK_SIZE)
    await bulk_followers(db, celeb, feeds)
    gate = asyncio.Event()

    def make(source: str) -> Any:
        async def batch(members: list[Member]) -> None:
            await gate.wait()

        return batch

    async def plan(_: Job) -> Plan:
        return Plan(make)

    runner._plan = plan  # type: ignore[method-assign, assignment]
    for _ in range(3):
        job = await runner.jobs.create("add", "x", [celeb])
        task = asyncio.ensure_future(runner.run(job))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stored = await db["fanout_jobs"].find_one({"_id": job.id})
        assert stored is not None and stored["cursor"] == {"source": 0, "after": None}
    gate.set()
    job = await runner.jobs.create("add", "y", [celeb])
    await asyncio.wait_for(runner.run(job), 30)
    assert await db["fanout_jobs"].find_one({"_id": job.id}) is None


# --- background work of the runner is logged when it fails, and drained ----------------


async def test_the_runners_background_failures_are_logged_and_shutdown_waits_for_its_work(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    runner = make_runner(db, Recorder())
    done = asyncio.Event()

    async def fails() -> None:
        raise RuntimeError("publish failed")

    async def slow() -> None:
        await asyncio.sleep(0.3)
        done.set()

    with caplog.at_level(logging.ERROR):
        runner.spawn(fails())
        runner.spawn(slow())
        await asyncio.sleep(0.05)
        assert any(r.exc_info and "publish failed" in str(r.exc_info[1]) for r in caplog.records), (
            "a failed background task went unnoticed"
        )
        await runner.close(grace=5)
    assert done.is_set(), "close did not wait for the runner's background work"


# --- a removed activity never comes back ------------------------------------------------


async def test_a_resumed_batch_emits_nothing_for_a_removed_activity(db: Database, uid: str) -> None:
    recorder = Recorder()
    runner = make_runner(db, recorder)
    activities = runner.activities
    celeb, feeds = f"user:{uid}", follower_feeds(uid, 10)
    aid = "0190d4c8-aaaa-7000-8000-" + uuid.uuid4().hex[:12]
    await db["activities"].insert_one(
        {"_id": aid, "feed": celeb, "to": [], "time": "2024", "data": "{}", "removed": True}
    )
    # What a first run stored before its node died: the copies are all there.
    await activities.insert_entries([Entry(f, aid, origin=celeb) for f in feeds])
    job = Job("j", "add", aid, [celeb], resumed=True)
    event = feed_update(celeb, new=[{"id": aid}])
    with pytest.raises(ActivityRemoved):
        await runner._add_batch(job, celeb, feeds, event, emit=True)
    assert recorder.updates == [], "announced `new` for a removed activity"


def test_a_follow_does_not_copy_an_activity_being_removed(
    server: ServerProcess,
    mongo: MongoClient[Doc],
    uid: str,
) -> None:
    """A removal tombstones the activity, then deletes its entries: a follow in between must
    not copy it (the removal's pass over the followers may be past the new follower)."""
    db = mongo[server.database]
    celeb, fan = f"user:{uid}", f"timeline:{uid}fan"
    kept = post_activity(server, celeb, {"actor": uid, "verb": "post", "object": "kept"})["id"]
    gone = post_activity(server, celeb, {"actor": uid, "verb": "post", "object": "gone"})["id"]
    db["activities"].update_one({"_id": gone}, {"$set": {"removed": True}})

    assert follow(server, fan, celeb).status_code == 201
    assert db["feed_entries"].count_documents({"feed": fan, "activity_id": gone}) == 0
    assert read_ids(server, fan) == [kept]


# --- leases hold while jobs wait; takeovers only what a node can run --------------------


JOBS = 30  # queued behind one slot: seconds of batches, well past a lease of 2 s


def test_waiting_jobs_keep_their_lease_and_a_node_claims_only_what_it_can_run(
    spawn: Spawn,
    store: Store,
    mongo: MongoClient[Doc],
    uid: str,
) -> None:
    # Half a chunk of followers in small batches: the jobs share the one slot batch by batch,
    # and each moves its cursor (which alone renewed its lease before) only once its chunk is
    # done.
    env = {
        "TIDINGS_FANOUT_BATCH_SIZE": "10",
        "TIDINGS_FANOUT_CONCURRENCY": "1",
        "TIDINGS_FANOUT_LEASE_SECONDS": "2",
        "TIDINGS_FANOUT_POLL_SECONDS": "0.2",
        "TIDINGS_FANOUT_SYNC_MAX_FEEDS": "0",  # the posts answer at once, their jobs queue
    }
    first = spawn(env)
    second = spawn(env, database=first.database)
    db = mongo[first.database]
    celeb, feeds = f"user:{uid}", follower_feeds(uid, CHUNK_SIZE // 2)
    add_followers(store, db, celeb, feeds)

    ids = [
        post_activity(first, celeb, {"actor": uid, "verb": "post", "object": f"o:{n}"})["id"]
        for n in range(JOBS)
    ]
    posted = time.monotonic()  # the last job waits from here on (posting may take seconds)
    owners: dict[str, set[str]] = {aid: set() for aid in ids}
    home = db["fanout_jobs"].find_one({"activity_id": {"$in": ids}})
    assert home is not None
    first_node = home["owner"]

    def watch(until: float, on_tick: Any = None, left: int = 0) -> None:
        while time.monotonic() < until:
            docs = list(db["fanout_jobs"].find({"activity_id": {"$in": ids}}))
            if len(docs) <= left:
                return
            for doc in docs:
                owners[doc["activity_id"]].add(doc["owner"])
            if on_tick is not None:
                on_tick(docs)
            time.sleep(0.05)

    # The jobs wait for the one slot longer than a lease: the live owner still holds them.
    watch(posted + 2.6)
    moved = {aid: sorted(o) for aid, o in owners.items() if o != {first_node}}
    assert not moved, f"{len(moved)} jobs taken over from a live node"
    assert db["fanout_jobs"].count_documents({"activity_id": {"$in": ids}}) >= 3

    first.kill()
    most = 0

    def claimed(docs: list[Doc]) -> None:
        nonlocal most
        now = datetime.now(UTC)
        held = [d for d in docs if d["owner"] != first_node and d["lease_until"] > now]
        most = max(most, len(held))

    watch(time.monotonic() + 90, claimed)
    assert not any(jobs_of(db, aid) for aid in ids)
    assert most == 1, f"the second node (concurrency 1) held {most} jobs at once"
    for aid in ids:
        assert_fanned_out_once(db, aid, uid, feeds, origin=celeb)
    assert read_ids(second, feeds[-1]) == sorted(ids, reverse=True)


# --- a repeat follow takes no chunk slot -------------------------------------------------


def test_repeat_follows_take_no_chunk_slot(
    server: ServerProcess,
    mongo: MongoClient[Doc],
    uid: str,
) -> None:
    db = mongo[server.database]
    celeb, fan = f"user:{uid}", f"timeline:{uid}fan"
    for _ in range(5):
        assert follow(server, fan, celeb, activity_copy_limit=0).status_code == 201
    meta = db["feeds"].find_one({"_id": celeb})
    assert meta is not None
    assert (meta["slots"], meta["followers"]) == (1, 1)
    assert db["follower_chunks"].count_documents({"target": celeb}) == 1
    assert db["follows"].count_documents({"target": celeb}) == 1


def test_follow_unfollow_cycles_reuse_the_room_they_free(
    server: ServerProcess,
    mongo: MongoClient[Doc],
    uid: str,
) -> None:
    """Slots never shrink, so a follow reuses the room an unfollow left in a chunk: cycling
    follows must not make every fanout of the target read ever more (empty) chunks."""
    db = mongo[server.database]
    celeb = f"user:{uid}"
    stay = f"timeline:{uid}stay"
    assert follow(server, stay, celeb, activity_copy_limit=0).status_code == 201
    for n in range(6):
        fan = f"timeline:{uid}c{n}"
        assert follow(server, fan, celeb, activity_copy_limit=0).status_code == 201
        group, user = fan.split(":")
        gone = api(server, "DELETE", f"feed/{group}/{user}/follows/{celeb}/")
        assert gone.status_code == 200, gone.text
    last = f"timeline:{uid}last"
    assert follow(server, last, celeb, activity_copy_limit=0).status_code == 201
    meta = db["feeds"].find_one({"_id": celeb})
    assert meta is not None
    assert (meta["slots"], meta["followers"]) == (2, 2), meta
    [chunk] = db["follower_chunks"].find({"target": celeb})
    assert sorted(m["s"] for m in chunk["m"]) == sorted([stay, last])

    aid = post_activity(server, celeb, {"actor": uid, "verb": "post", "object": "o"})["id"]
    wait_jobs_gone(db, aid, timeout=20)
    assert read_ids(server, stay) == [aid] and read_ids(server, last) == [aid]
    assert read_ids(server, f"timeline:{uid}c0") == []


# --- what a feed follows, paged and capped ---------------------------------------------


def test_a_feed_follows_at_most_max_following_feeds(
    pool: ServerPool,
    mongo: MongoClient[Doc],
    uid: str,
) -> None:
    node = pool.get(SMALL)  # fanout.max_following = 4
    db = mongo[node.database]
    fan = f"timeline:{uid}"
    targets = [f"user:{uid}t{n}" for n in range(5)]
    for target in targets[:4]:
        assert follow(node, fan, target).status_code == 201
    refused = follow(node, fan, targets[4])
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["exception"] == "InputException" and body["code"] == 4
    assert "target" in body["exception_fields"]
    assert db["follows"].count_documents({"source": fan}) == 4
    assert db["feeds"].find_one({"_id": targets[4]}) is None, "the refused follow stored a slot"
    # Following a feed already followed is still fine (it changes nothing).
    assert follow(node, fan, targets[1]).status_code == 201
    group, user = fan.split(":")
    listed = api(node, "GET", f"feed/{group}/{user}/follows/", params={"limit": 2, "offset": 2})
    assert [r["target_id"] for r in listed.json()["results"]] == [targets[1], targets[0]]


def test_following_pages_newest_first(
    server: ServerProcess,
    mongo: MongoClient[Doc],
    uid: str,
) -> None:
    fan = f"timeline:{uid}"
    targets = [f"user:{uid}t{n}" for n in range(12)]
    for target in targets:
        assert follow(server, fan, target, activity_copy_limit=0).status_code == 201
    group, user = fan.split(":")
    pages = []
    for offset in (0, 5, 10):
        answer = api(
            server, "GET", f"feed/{group}/{user}/follows/", params={"limit": 5, "offset": offset}
        )
        assert answer.status_code == 200, answer.text
        pages.append([r["target_id"] for r in answer.json()["results"]])
    assert pages == [targets[::-1][:5], targets[::-1][5:10], targets[::-1][10:]]


# --- the follower counter is repaired from the follows ---------------------------------


def test_a_drifted_follower_counter_is_repaired_before_it_switches_a_feed(
    pool: ServerPool,
    mongo: MongoClient[Doc],
    uid: str,
) -> None:
    """A crash between an unfollow's delete and its count leaves the counter too high; a
    counter past `pull_threshold` (3) must not switch a feed of two followers to pull."""
    node = pool.get({"TIDINGS_FANOUT_PULL_THRESHOLD": "3", "TIDINGS_FANOUT_PUSH_THRESHOLD": "2"})
    db = mongo[node.database]
    celeb = f"user:{uid}"
    assert follow(node, f"timeline:{uid}f0", celeb).status_code == 201
    db["feeds"].update_one({"_id": celeb}, {"$set": {"followers": 100}})  # the drift

    assert follow(node, f"timeline:{uid}f1", celeb).status_code == 201
    wait_until(lambda: not list(db["fanout_jobs"].find({"sources": celeb})), 20, 0.1)
    meta = db["feeds"].find_one({"_id": celeb})
    assert meta is not None
    assert meta["followers"] == 2, meta
    assert meta["mode"] == "push" and not meta.get("switching"), meta


def test_a_follower_counter_left_off_by_a_crash_mid_follow_is_recounted(
    spawn: Spawn,
    mongo: MongoClient[Doc],
    uid: str,
) -> None:
    """A node dying between a follow's document and its count leaves the counter low (a retry
    finds the follow and counts nothing), one dying mid-unfollow leaves it high: what the store
    holds then is written here directly, and a node recounts it from the follows."""
    node = spawn({"TIDINGS_FANOUT_LEASE_SECONDS": "1", "TIDINGS_FANOUT_POLL_SECONDS": "0.2"})
    db = mongo[node.database]
    low, high = f"user:{uid}low", f"user:{uid}high"
    for target in (low, high):
        for n in range(3):
            assert follow(node, f"timeline:{uid}f{n}", target).status_code == 201
    now = datetime.now(UTC)
    db["feeds"].update_one({"_id": low}, {"$inc": {"followers": -1}, "$set": {"changed_at": now}})
    db["feeds"].update_one({"_id": high}, {"$inc": {"followers": 5}, "$set": {"changed_at": now}})
    assert follow(node, f"timeline:{uid}f1", low).status_code == 201  # the retry: no count

    def counters() -> tuple[int, int]:
        docs = {d["_id"]: d["followers"] for d in db["feeds"].find({"_id": {"$in": [low, high]}})}
        return docs[low], docs[high]

    wait_until(lambda: counters() == (3, 3), 15, 0.1, what=f"recounted followers, {counters()}")
    assert (
        db["feeds"].count_documents({"_id": {"$in": [low, high]}, "changed_at": {"$exists": 1}})
        == 0
    )
