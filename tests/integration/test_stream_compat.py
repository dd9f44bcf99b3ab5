"""What Stream's own SDK test suites expect of the service, through the official `stream-python`
SDK: a small fanout done before a write answers (reads see their writes), lookups of ids of any
UUID form, removals of unknown ids, and full updates of activities not stored yet.

Every test uses fresh feed ids (the `uid` fixture), since all tests share one server.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from stream.client import StreamClient

FOLLOWERS = 40  # follower feeds of the small fanouts below (all in one fanout batch)


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


def test_follower_feeds_hold_an_add_when_it_answers(client: StreamClient, uid: str) -> None:
    """The README's quick start: a read right after the add sees it in every follower feed."""
    followers = [f"timeline:{uid}-{n}" for n in range(FOLLOWERS)]
    follow_all(client, followers, f"user:{uid}")
    user = client.feed("user", uid)
    for _ in range(3):
        added = post(user, uid)
        for follower in (followers[-1], followers[0], followers[FOLLOWERS // 2]):
            assert first_ids(client, follower) == [added["id"]]


def test_grouped_followers_hold_an_add_when_it_answers(client: StreamClient, uid: str) -> None:
    followers = [f"timeline_aggregated:{uid}-{n}" for n in range(FOLLOWERS // 2)]
    followers += [f"notification:{uid}-{n}" for n in range(FOLLOWERS // 2)]
    follow_all(client, followers, f"user:{uid}")
    added = post(client.feed("user", uid), uid)
    for follower in (followers[0], followers[-1]):
        assert first_group_ids(client, follower) == [added["id"]]


def test_to_feeds_followers_lose_a_removal_when_it_answers(client: StreamClient, uid: str) -> None:
    """Stream's `test_add_activity_to`: the `to` feed's followers hold the add at once, and
    lose it at once when it is removed."""
    user, team = client.feed("user", uid), client.feed("user", f"{uid}-team")
    followers = [f"user:{uid}-f{n}" for n in range(FOLLOWERS)]
    follow_all(client, followers, team.id)
    added = post(user, uid, to=[team.id])
    assert first_ids(client, team.id) == [added["id"]]
    follower = client.feed("user", f"{uid}-f{FOLLOWERS - 1}").get(limit=1)["results"]
    assert [(a["id"], a["origin"]) for a in follower] == [(added["id"], team.id)]
    user.remove_activity(added["id"])
    assert first_ids(client, team.id) == []
    for feed in (followers[-1], followers[0]):
        assert first_ids(client, feed) == []


def test_grouped_followers_lose_a_removal_when_it_answers(client: StreamClient, uid: str) -> None:
    """Stream's `test_follow_and_delete`: an aggregated feed that copied an activity when it
    followed no longer shows it once its removal answered."""
    user = client.feed("user", uid)
    added = post(user, uid)
    followers = [f"timeline_aggregated:{uid}-{n}" for n in range(FOLLOWERS // 2)]
    followers += [f"notification:{uid}-{n}" for n in range(FOLLOWERS // 2)]
    client.follow_many([{"source": f, "target": user.id} for f in followers])
    assert first_group_ids(client, followers[-1]) == [added["id"]]
    user.remove_activity(added["id"])
    for follower in (followers[-1], followers[0]):
        assert first_group_ids(client, follower) == []


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
