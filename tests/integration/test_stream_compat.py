"""What Stream's own SDK test suites expect of the service, through the official `stream-python`
SDK: a small fanout done before a write answers (reads see their writes), lookups of ids of any
UUID form, removals of unknown ids, and full updates of activities not stored yet.

Every test uses fresh feed ids (the `uid` fixture), since all tests share one server.
"""

from __future__ import annotations

import datetime as dt
import uuid
from itertools import pairwise
from typing import Any

import pytest
import requests
import stream
from stream.client import StreamClient

from harness.pool import ServerPool
from tests.support import API_KEY, API_SECRET, ServerProcess

FOLLOWERS = 40  # follower feeds of the small fanouts below (all in one fanout batch)
SYNC_MAX_FEEDS = 50  # fanout.sync_max_feeds of the `awaiting` server


@pytest.fixture(scope="module")
def awaiting(pool: ServerPool) -> ServerProcess:
    """A server whose budget for waiting on small fanouts (fanout.sync_budget_ms) is far above
    what these take even on a loaded machine: what is asserted is that the write waits, not
    how fast the fanout is (the budget's cut-off: tests/unit/fanout/test_completion.py)."""
    env = {
        "TIDINGS_FANOUT_SYNC_MAX_FEEDS": str(SYNC_MAX_FEEDS),
        "TIDINGS_FANOUT_SYNC_BUDGET_MS": "20000",
    }
    return pool.get(env)


@pytest.fixture
def ryw(awaiting: ServerProcess) -> StreamClient:
    return stream.connect(API_KEY, API_SECRET, base_url=awaiting.base_url)


def awaited(server: ServerProcess) -> dict[str, float]:
    """The server's counts of writes by what their answer waited for (done, budget, large)."""
    prefix = 'tidings_fanout_awaited_total{outcome="'
    counts = {"done": 0.0, "budget": 0.0, "large": 0.0}
    for line in requests.get(server.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(prefix):
            outcome, _, value = line[len(prefix) :].partition('"} ')
            counts[outcome] = float(value)
    return counts


def first_ids(client: StreamClient, feed_id: str, limit: int = 1) -> list[str]:
    slug, user_id = feed_id.split(":")
    return [a["id"] for a in client.feed(slug, user_id).get(limit=limit)["results"]]


def first_group_ids(client: StreamClient, feed_id: str) -> list[str]:
    """The activity ids of the newest group of an aggregated or notification feed."""
    slug, user_id = feed_id.split(":")
    groups = client.feed(slug, user_id).get(limit=1)["results"]
    return [a["id"] for a in groups[0]["activities"]] if groups else []


def follow_all(client: StreamClient, followers: list[str], target: str) -> None:
    client.follow_many([{"source": f, "target": target} for f in followers], activity_copy_limit=0)


def post(feed: Any, uid: str, **extra: Any) -> dict[str, Any]:
    return dict(feed.add_activity({"actor": uid, "verb": "post", "object": "o", **extra}))


# --- read-your-writes ----------------------------------------------------------------------


def test_follower_feeds_hold_an_add_when_it_answers(ryw: StreamClient, uid: str) -> None:
    """The README's quick start: a read right after the add sees it in every follower feed."""
    followers = [f"timeline:{uid}-{n}" for n in range(FOLLOWERS)]
    follow_all(ryw, followers, f"user:{uid}")
    user = ryw.feed("user", uid)
    for _ in range(3):
        added = post(user, uid)
        for follower in (followers[-1], followers[0], followers[FOLLOWERS // 2]):
            assert first_ids(ryw, follower) == [added["id"]]


def test_grouped_followers_hold_an_add_when_it_answers(ryw: StreamClient, uid: str) -> None:
    followers = [f"timeline_aggregated:{uid}-{n}" for n in range(FOLLOWERS // 2)]
    followers += [f"notification:{uid}-{n}" for n in range(FOLLOWERS // 2)]
    follow_all(ryw, followers, f"user:{uid}")
    added = post(ryw.feed("user", uid), uid)
    for follower in (followers[0], followers[-1]):
        assert first_group_ids(ryw, follower) == [added["id"]]


def test_add_to_many_followers_hold_it_when_it_answers(ryw: StreamClient, uid: str) -> None:
    owners = [f"user:{uid}-a", f"user:{uid}-b"]
    for owner in owners:
        follow_all(ryw, [f"timeline:{owner[5:]}-{n}" for n in range(FOLLOWERS // 2)], owner)
    ryw.add_to_many({"actor": uid, "verb": "post", "object": "o", "foreign_id": f"m:{uid}"}, owners)
    [stored] = ryw.feed("user", f"{uid}-a").get(limit=1)["results"]
    for owner in owners:
        assert first_ids(ryw, f"timeline:{owner[5:]}-{FOLLOWERS // 2 - 1}") == [stored["id"]]


def test_to_feeds_followers_lose_a_removal_when_it_answers(ryw: StreamClient, uid: str) -> None:
    """Stream's `test_add_activity_to`: the `to` feed's followers hold the add at once, and
    lose it at once when it is removed."""
    user, team = ryw.feed("user", uid), ryw.feed("user", f"{uid}-team")
    followers = [f"user:{uid}-f{n}" for n in range(FOLLOWERS)]
    follow_all(ryw, followers, team.id)
    added = post(user, uid, to=[team.id])
    assert first_ids(ryw, team.id) == [added["id"]]
    follower = ryw.feed("user", f"{uid}-f{FOLLOWERS - 1}").get(limit=1)["results"]
    assert [(a["id"], a["origin"]) for a in follower] == [(added["id"], team.id)]
    user.remove_activity(added["id"])
    assert first_ids(ryw, team.id) == []
    for feed in (followers[-1], followers[0]):
        assert first_ids(ryw, feed) == []


def test_grouped_followers_lose_a_removal_when_it_answers(ryw: StreamClient, uid: str) -> None:
    """Stream's `test_follow_and_delete`: an aggregated feed that copied an activity when it
    followed no longer shows it once its removal answered."""
    user = ryw.feed("user", uid)
    added = post(user, uid)
    followers = [f"timeline_aggregated:{uid}-{n}" for n in range(FOLLOWERS // 2)]
    followers += [f"notification:{uid}-{n}" for n in range(FOLLOWERS // 2)]
    ryw.follow_many([{"source": f, "target": user.id} for f in followers])
    assert first_group_ids(ryw, followers[-1]) == [added["id"]]
    user.remove_activity(added["id"])
    for follower in (followers[-1], followers[0]):
        assert first_group_ids(ryw, follower) == []


def test_only_fanouts_up_to_sync_max_feeds_are_waited_for(
    awaiting: ServerProcess, ryw: StreamClient, uid: str
) -> None:
    """A fanout to more than `fanout.sync_max_feeds` follower feeds answers at once, as every
    write did before: the server counts which writes waited (`done`) and which did not
    (`large`)."""
    small, large = ryw.feed("user", f"{uid}-s"), ryw.feed("user", f"{uid}-l")
    follow_all(ryw, [f"timeline:{uid}-s{n}" for n in range(SYNC_MAX_FEEDS)], small.id)
    follow_all(ryw, [f"timeline:{uid}-l{n}" for n in range(SYNC_MAX_FEEDS + 1)], large.id)
    counts = [awaited(awaiting)]
    for feed in (small, large):
        added = post(feed, uid)
        counts.append(awaited(awaiting))
        feed.remove_activity(added["id"])
        counts.append(awaited(awaiting))
    steps = [{k: after[k] - before[k] for k in after} for before, after in pairwise(counts)]
    waited = {"done": 1.0, "budget": 0.0, "large": 0.0}
    answered = {"done": 0.0, "budget": 0.0, "large": 1.0}
    assert steps == [waited, waited, answered, answered]


# --- lookups and removals by id --------------------------------------------------------------


@pytest.mark.parametrize("make", [uuid.uuid1, uuid.uuid4], ids=["uuid1", "uuid4"])
def test_get_activities_of_unknown_ids_of_any_uuid_version_finds_nothing(
    client: StreamClient, make: Any
) -> None:
    """Stream's `test_get_activities_empty_ids`: its ids are UUIDv1."""
    assert client.get_activities(ids=[str(make())])["results"] == []


def test_get_activities_finds_a_stored_id_in_any_uuid_spelling(
    client: StreamClient, uid: str
) -> None:
    added = post(client.feed("user", uid), uid)
    spelled = uuid.UUID(added["id"]).hex.upper()
    assert [a["id"] for a in client.get_activities(ids=[spelled])["results"]] == [added["id"]]


def test_removing_an_unknown_activity_id_answers_200(client: StreamClient, uid: str) -> None:
    """Stream's JS `permissions.js`: alice removes an unknown id from her own feed."""
    feed = client.feed("user", uid)
    kept = post(feed, uid)
    unknown = str(uuid.uuid1())
    assert feed.remove_activity(unknown)["removed"] == unknown
    assert first_ids(client, feed.id, 5) == [kept["id"]]


# --- full updates --------------------------------------------------------------------------


def test_update_activities_of_an_activity_not_stored_stores_it(
    client: StreamClient, uid: str
) -> None:
    """Stream's `test_update_activities_create`: the update is accepted and the activity is
    stored (found by its foreign_id and time), in no feed; a later add of the same foreign_id
    and time puts it in a feed, as any add does."""
    when = dt.datetime(2024, 5, 6, 7, 8, 9, 123456)
    activity = {"actor": "user:1", "verb": "do", "object": "object:1", "foreign_id": f"o:{uid}"}
    updated = client.update_activities([{**activity, "time": when.isoformat(), "score": 3}])
    assert [a["foreign_id"] for a in updated["activities"]] == [f"o:{uid}"]
    found = client.get_activities(foreign_id_times=[(f"o:{uid}", when)])["results"]
    assert [(a["foreign_id"], a["score"]) for a in found] == [(f"o:{uid}", 3)]
    assert updated["activities"][0]["id"] == found[0]["id"]
    feed = client.feed("user", uid)
    assert first_ids(client, feed.id) == []
    added = feed.add_activity({**activity, "time": when, "score": 4})
    assert added["id"] == found[0]["id"]
    assert [a["score"] for a in feed.get()["results"]] == [4]
    client.update_activities([{**activity, "time": when.isoformat(), "score": 5}])
    assert [a["score"] for a in feed.get()["results"]] == [5]
