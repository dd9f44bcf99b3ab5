"""Durability of the fanout: an acknowledged insert reaches every follower
feed exactly once, whether its node is killed mid-fanout (another node resumes the job from its
cursor once the lease runs out) or stopped gracefully (the lease is released at once); removals
fan out to every follower too, and a retried insert (same foreign_id + time) changes nothing.

Followers are written straight into the store (harness/follows.py): that is test
setup, the fanout itself runs in real server processes on a real store.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pymongo import MongoClient

from harness.server import Spawn
from tests.integration.fanout_support import (
    FOLLOWERS,
    Doc,
    add_followers,
    api,
    assert_fanned_out_once,
    entry_count,
    follower_entries,
    follower_feeds,
    jobs_of,
    post_activity,
    read_ids,
    wait_jobs_gone,
    wait_partway,
)
from tests.support import ServerProcess, Store

# --- tests ---------------------------------------------------------------------------------


def test_crash_mid_fanout_is_resumed_by_another_node(
    spawn: Spawn, store: Store, mongo: MongoClient[Doc], uid: str
) -> None:
    env = {
        "TIDINGS_FANOUT_BATCH_SIZE": "100",
        "TIDINGS_FANOUT_CONCURRENCY": "2",
        "TIDINGS_FANOUT_LEASE_SECONDS": "3",
        "TIDINGS_FANOUT_POLL_SECONDS": "0.5",
    }
    first = spawn(env)
    db = mongo[first.database]
    celeb, feeds = f"user:{uid}", follower_feeds(uid, FOLLOWERS)
    add_followers(store, db, celeb, feeds)

    added = post_activity(first, celeb, {"actor": uid, "verb": "announce", "object": "concert:1"})
    aid = added["id"]
    wait_partway(db, aid, 300, 2_700)
    first.kill()

    at_crash = entry_count(db, aid) - 1  # less the entry of the origin feed
    assert 0 < at_crash < FOLLOWERS, "the fanout was not interrupted"
    [job] = jobs_of(db, aid)
    assert job["kind"] == "add" and job["sources"] == [celeb]

    second = spawn(env, database=first.database)
    wait_jobs_gone(db, aid, timeout=120)

    assert_fanned_out_once(db, aid, uid, feeds, origin=celeb)
    assert entry_count(db, aid) == FOLLOWERS + 1
    for feed in (feeds[0], feeds[at_crash], feeds[-1]):
        assert read_ids(second, feed) == [aid]
    group, user = feeds[-1].split(":")
    [read] = api(second, "GET", f"feed/{group}/{user}/").json()["results"]
    assert read["origin"] == celeb and read["object"] == "concert:1"


def test_graceful_stop_releases_the_lease_at_once(
    spawn: Spawn, store: Store, mongo: MongoClient[Doc], uid: str
) -> None:
    env = {
        "TIDINGS_FANOUT_BATCH_SIZE": "100",
        "TIDINGS_FANOUT_CONCURRENCY": "2",
        # Far longer than the test may take: a job left leased would not be resumed in time.
        "TIDINGS_FANOUT_LEASE_SECONDS": "600",
        "TIDINGS_FANOUT_POLL_SECONDS": "0.5",
        "TIDINGS_SERVER_SHUTDOWN_TIMEOUT": "1",
    }
    # Every batch of the first node waits half a second: its 30 batches cannot all be done
    # within the 1 s grace of its stop, whatever the machine's load.
    first = spawn({**env, "TIDINGS_TEST_FAULT": "fanout.batch:pause"})
    db = mongo[first.database]
    celeb, feeds = f"user:{uid}", follower_feeds(uid, FOLLOWERS)
    add_followers(store, db, celeb, feeds)

    aid = post_activity(first, celeb, {"actor": uid, "verb": "raid", "object": "boss:7"})["id"]
    wait_partway(db, aid, 150, 2_700)
    [running] = jobs_of(db, aid)
    assert running["lease_until"] > datetime.now(UTC) + timedelta(seconds=300), running
    # Bounded well below the lease: a stop that hangs until it is killed is not graceful.
    assert first.stop(timeout=20) == 0

    # Not finished within the grace period: released for any node to take now.
    [job] = jobs_of(db, aid)
    assert job["owner"] == running["owner"]  # released, not taken by another
    assert job["lease_until"] == datetime(1970, 1, 1, tzinfo=UTC), job
    assert entry_count(db, aid) - 1 < FOLLOWERS

    second = spawn(env, database=first.database)
    # Well below the lease: only a released job can be resumed this soon.
    wait_jobs_gone(db, aid, timeout=30)
    assert_fanned_out_once(db, aid, uid, feeds, origin=celeb)
    assert read_ids(second, feeds[-1]) == [aid]


def test_removal_fans_out_to_every_follower(
    server: ServerProcess, store: Store, mongo: MongoClient[Doc], uid: str
) -> None:
    db = mongo[server.database]
    celeb, feeds = f"user:{uid}", follower_feeds(uid, 2_000)
    add_followers(store, db, celeb, feeds)
    aid = post_activity(server, celeb, {"actor": uid, "verb": "post", "object": "o:1"})["id"]
    wait_jobs_gone(db, aid)
    assert_fanned_out_once(db, aid, uid, feeds, origin=celeb)

    group, user = celeb.split(":")
    removed = api(server, "DELETE", f"feed/{group}/{user}/{aid}/")
    assert removed.status_code == 200, removed.text
    assert removed.json()["removed"] == aid
    wait_jobs_gone(db, aid)

    assert entry_count(db, aid) == 0
    assert follower_entries(db, aid, uid) == {}
    for feed in (celeb, feeds[0], feeds[-1]):
        assert read_ids(server, feed) == []


def test_retried_insert_is_stored_once_everywhere(
    server: ServerProcess, store: Store, mongo: MongoClient[Doc], uid: str
) -> None:
    db = mongo[server.database]
    celeb, feeds = f"user:{uid}", follower_feeds(uid, 2_000)
    add_followers(store, db, celeb, feeds)
    activity = {
        "actor": uid,
        "verb": "sell",
        "object": "tickets",
        "foreign_id": f"sale:{uuid.uuid4().hex}",
        "time": "2025-05-01T18:00:00.000000",  # in the past: a far-future time is refused
    }
    first = post_activity(server, celeb, activity)
    again = post_activity(server, celeb, activity)  # a retry, while the first fanout may run
    assert again["id"] == first["id"]
    aid = first["id"]
    wait_jobs_gone(db, aid)

    assert_fanned_out_once(db, aid, uid, feeds, origin=celeb)
    assert db["activities"].count_documents({"foreign_id": activity["foreign_id"]}) == 1
    assert read_ids(server, celeb) == [aid]
    assert read_ids(server, feeds[1234]) == [aid]


def test_removal_during_an_interrupted_fanout_is_not_undone_by_its_resumption(
    spawn: Spawn, store: Store, mongo: MongoClient[Doc], uid: str
) -> None:
    env = {
        "TIDINGS_FANOUT_BATCH_SIZE": "100",
        "TIDINGS_FANOUT_CONCURRENCY": "2",
        # Long enough for the removal to be done before the dead node's job is taken over.
        "TIDINGS_FANOUT_LEASE_SECONDS": "8",
        "TIDINGS_FANOUT_POLL_SECONDS": "0.5",
    }
    first = spawn(env)
    db = mongo[first.database]
    celeb, feeds = f"user:{uid}", follower_feeds(uid, FOLLOWERS)
    add_followers(store, db, celeb, feeds)
    aid = post_activity(first, celeb, {"actor": uid, "verb": "post", "object": "oops"})["id"]
    wait_partway(db, aid, 300, 2_700)
    first.kill()

    second = spawn(env, database=first.database)
    group, user = celeb.split(":")
    removed = api(second, "DELETE", f"feed/{group}/{user}/{aid}/")
    assert removed.status_code == 200, removed.text
    wait_jobs_gone(db, aid, timeout=60)

    left = entry_count(db, aid)
    assert left == 0, f"{left} feeds still hold the removed activity"
    for feed in (celeb, feeds[0], feeds[-1]):
        assert read_ids(second, feed) == []
