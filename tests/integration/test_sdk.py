"""The official `stream-python` SDK against Tidings, with only `base_url` changed.

Every test uses fresh feed ids (the `uid` fixture), since all tests share one server.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pymongo
import pytest
import stream
from stream.client import StreamClient
from stream.exceptions import (
    ApiKeyException,
    DoesNotExistException,
    FeedConfigException,
    InputException,
    NotAllowedException,
    SignatureException,
)

from harness.common import SERVER_TOKEN, token
from harness.pool import ServerPool
from tests.support import API_KEY, API_SECRET, ServerProcess, Store, wait_until

UTC = dt.UTC
WAIT = 15.0  # bound on every wait for a fanout


def ids(feed: Any, **params: Any) -> list[str]:
    return [a["id"] for a in feed.get(**params)["results"]]


def eventually(check: Callable[[], bool], what: str) -> None:
    wait_until(check, WAIT, 0.05, what=what)


def public(added: dict[str, Any]) -> dict[str, Any]:
    """An add's answer as a read returns it: without the answer's `duration`."""
    return {k: v for k, v in added.items() if k != "duration"}


# --- add and read --------------------------------------------------------------------------


def test_add_activity_answers_the_stored_activity(client: StreamClient, uid: str) -> None:
    feed = client.feed("user", uid)
    added = feed.add_activity(
        {"actor": f"user:{uid}", "verb": "post", "object": "photo:1", "extra": {"a": [1, "b"]}}
    )
    assert added["actor"] == f"user:{uid}"
    assert added["extra"] == {"a": [1, "b"]}
    assert added["origin"] is None
    assert isinstance(added["id"], str) and added["id"]
    assert isinstance(added["time"], dt.datetime)  # ISO without offset: the SDK parses it
    assert added["duration"].endswith("ms")
    results = feed.get()["results"]
    assert results == [public(added)]


def test_numbers_for_actor_verb_object_target_come_back_as_strings(
    client: StreamClient, uid: str
) -> None:
    feed = client.feed("user", uid)
    added = feed.add_activity({"actor": 42, "verb": 7, "object": 3, "target": 9, "score": 5})
    for got in (added, feed.get()["results"][0]):
        assert (got["actor"], got["verb"], got["object"], got["target"]) == ("42", "7", "3", "9")
        assert got["score"] == 5  # custom fields keep their JSON type


def test_time_round_trips_to_the_microsecond(client: StreamClient, uid: str) -> None:
    feed = client.feed("user", uid)
    when = dt.datetime(2021, 3, 4, 5, 6, 7, 891011)
    added = feed.add_activity({"actor": uid, "verb": "post", "object": "o", "time": when})
    expected = when.replace(tzinfo=UTC)
    assert added["time"] == expected
    assert feed.get()["results"][0]["time"] == expected
    # A time with an offset is stored in UTC.
    shifted = feed.add_activity(
        {"actor": uid, "verb": "post", "object": "o2", "time": "2021-03-04T07:06:07.5+02:00"}
    )
    assert shifted["time"] == dt.datetime(2021, 3, 4, 5, 6, 7, 500000, tzinfo=UTC)


def test_add_activities_batch_gets_times_in_order_and_reads_newest_first(
    client: StreamClient, uid: str
) -> None:
    feed = client.feed("user", uid)
    batch = [{"actor": uid, "verb": "post", "object": f"o{i}"} for i in range(4)]
    answer = feed.add_activities(batch)
    added = answer["activities"]
    assert [a["object"] for a in added] == ["o0", "o1", "o2", "o3"]
    times = [a["time"] for a in added]
    assert times == sorted(times) and len(set(times)) == 4
    assert len({a["id"] for a in added}) == 4
    results = feed.get()["results"]
    assert [a["object"] for a in results] == ["o3", "o2", "o1", "o0"]
    assert [a["id"] for a in results] == [a["id"] for a in reversed(added)]


def test_add_activities_with_their_own_times_read_in_time_order(
    client: StreamClient, uid: str
) -> None:
    feed = client.feed("user", uid)
    base = dt.datetime(2024, 6, 1, 12, 0, 0)
    offsets = [5, 0, 9, 2]
    batch = [
        {"actor": uid, "verb": "post", "object": f"o{m}", "time": base + dt.timedelta(minutes=m)}
        for m in offsets
    ]
    added = feed.add_activities(batch)["activities"]
    assert [a["time"] for a in added] == [
        (base + dt.timedelta(minutes=m)).replace(tzinfo=UTC) for m in offsets
    ]
    assert [a["object"] for a in feed.get()["results"]] == ["o9", "o5", "o2", "o0"]


def test_get_pages_with_limit_offset_and_id_bounds(client: StreamClient, uid: str) -> None:
    feed = client.feed("user", uid)
    feed.add_activities([{"actor": uid, "verb": "post", "object": f"o{i}"} for i in range(5)])
    every = ids(feed)
    assert len(every) == 5
    assert ids(feed, limit=2) == every[:2]
    assert ids(feed, limit=2, offset=1) == every[1:3]
    assert ids(feed, offset=4) == every[4:]
    assert ids(feed, offset=5) == []
    assert ids(feed, id_lt=every[1]) == every[2:]
    assert ids(feed, id_lte=every[1]) == every[1:]
    assert ids(feed, id_gt=every[2]) == every[:2]
    assert ids(feed, id_gte=every[2]) == every[:3]
    assert ids(feed, id_lt=every[0], limit=2) == every[1:3]
    assert ids(feed, id_gt=every[4], id_lt=every[0]) == every[1:4]


def test_next_is_a_relative_url_until_the_last_page(client: StreamClient, uid: str) -> None:
    feed = client.feed("user", uid)
    feed.add_activities([{"actor": uid, "verb": "post", "object": f"o{i}"} for i in range(5)])
    seen: list[str] = []
    page = feed.get(limit=2)
    pages = 1
    while True:
        seen += [a["id"] for a in page["results"]]
        if not page["next"]:
            break
        expected = f"/api/v1.0/feed/user/{uid}/?id_lt={seen[-1]}&limit=2"
        assert page["next"] == expected
        parts = urlsplit(page["next"])
        page = feed.get(**dict(parse_qsl(parts.query)))
        pages += 1
        assert pages <= 5
    assert page["next"] == ""
    assert pages == 3
    assert seen == ids(feed)
    # A page that holds exactly what is left has no next.
    assert feed.get(limit=5)["next"] == ""
    assert feed.get(limit=4)["next"] != ""


def test_back_dated_activity_lands_in_its_place(client: StreamClient, uid: str) -> None:
    feed = client.feed("user", uid)
    now = dt.datetime.now(UTC).replace(tzinfo=None)
    newer = feed.add_activity({"actor": uid, "verb": "post", "object": "now", "time": now})
    older = feed.add_activity(
        {"actor": uid, "verb": "post", "object": "old", "time": now - dt.timedelta(hours=1)}
    )
    middle = feed.add_activity(
        {"actor": uid, "verb": "post", "object": "mid", "time": now - dt.timedelta(minutes=1)}
    )
    assert ids(feed) == [newer["id"], middle["id"], older["id"]]
    # Ids sort by time too.
    assert sorted([older["id"], middle["id"], newer["id"]]) == [
        older["id"],
        middle["id"],
        newer["id"],
    ]


def test_same_foreign_id_and_time_replaces_the_activity(client: StreamClient, uid: str) -> None:
    feed, timeline = client.feed("user", uid), client.feed("timeline", uid)
    timeline.follow("user", uid)
    when = dt.datetime(2022, 5, 6, 7, 8, 9, 123456)
    first = feed.add_activity(
        {"actor": uid, "verb": "post", "object": "v1", "foreign_id": "post:1", "time": when,
         "old_field": 1}
    )  # fmt: skip
    second = feed.add_activity(
        {"actor": uid, "verb": "edit", "object": "v2", "foreign_id": "post:1", "time": when,
         "new_field": 2}
    )  # fmt: skip
    assert second["id"] == first["id"]
    results = feed.get()["results"]
    assert len(results) == 1
    got = results[0]
    assert got["id"] == first["id"]
    assert (got["verb"], got["object"], got["new_field"]) == ("edit", "v2", 2)
    assert "old_field" not in got
    # Follower feeds hold it once too, with the new fields.
    eventually(lambda: ids(timeline) == [first["id"]], "the fanout to timeline")
    in_timeline = timeline.get()["results"]
    assert [a["object"] for a in in_timeline] == ["v2"]
    assert in_timeline[0]["origin"] == f"user:{uid}"
    # Same foreign id at another time is another activity.
    third = feed.add_activity(
        {"actor": uid, "verb": "post", "object": "v3", "foreign_id": "post:1",
         "time": when + dt.timedelta(seconds=1)}
    )  # fmt: skip
    assert third["id"] != first["id"]
    assert ids(feed) == [third["id"], first["id"]]


def test_same_time_and_content_in_two_followed_feeds_lands_once(
    client: StreamClient, uid: str, store: Store, server: ServerProcess
) -> None:
    timeline = client.feed("timeline", uid)
    timeline.follow("user", f"{uid}-a")
    timeline.follow("user", f"{uid}-b")
    activity = {"actor": uid, "verb": "post", "object": "same", "time": dt.datetime(2023, 1, 2)}
    in_a = client.feed("user", f"{uid}-a").add_activity(activity)
    in_b = client.feed("user", f"{uid}-b").add_activity(activity)
    assert in_a["id"] == in_b["id"]
    jobs = pymongo.MongoClient(store.url)[server.database]["fanout_jobs"]
    try:
        eventually(
            lambda: jobs.count_documents({"activity_id": in_a["id"]}) == 0,
            "both fanouts to finish",
        )
    finally:
        jobs.database.client.close()
    results = timeline.get()["results"]
    assert [a["id"] for a in results] == [in_a["id"]]
    assert results[0]["origin"] in (f"user:{uid}-a", f"user:{uid}-b")


# --- to and origin -------------------------------------------------------------------------


def test_to_is_stored_and_returned_bare(client: StreamClient, uid: str) -> None:
    feed = client.feed("user", uid)
    # The SDK sends each `to` entry as "raid:<id> <token>".
    added = feed.add_activity(
        {"actor": uid, "verb": "post", "object": "o", "to": [f"raid:{uid}", f"user:{uid}-x"]}
    )
    assert added["to"] == [f"raid:{uid}", f"user:{uid}-x"]
    for feed_id in (f"user:{uid}", f"raid:{uid}", f"user:{uid}-x"):
        group, user_id = feed_id.split(":")
        results = client.feed(group, user_id).get()["results"]
        assert [a["id"] for a in results] == [added["id"]], feed_id
        assert results[0]["to"] == [f"raid:{uid}", f"user:{uid}-x"]
        assert results[0]["origin"] is None, feed_id


def test_origin_is_the_followed_feed_in_follower_feeds(client: StreamClient, uid: str) -> None:
    timeline = client.feed("timeline", uid)
    timeline.follow("user", uid)
    added = client.feed("user", uid).add_activity({"actor": uid, "verb": "post", "object": "o"})
    eventually(lambda: ids(timeline) == [added["id"]], "the fanout to timeline")
    got = timeline.get()["results"][0]
    assert got["origin"] == f"user:{uid}"
    assert public(added) == {**got, "origin": None}
    assert client.feed("user", uid).get()["results"][0]["origin"] is None


# --- remove --------------------------------------------------------------------------------


def _follower_and_to_setup(client: StreamClient, uid: str, **extra: Any) -> tuple[Any, ...]:
    """user:<uid> (followed by timeline:<uid>) adds `gone` with raid:<uid> (followed by
    timeline:<uid>-r) in its `to`; every one of those feeds holds it."""
    user, timeline, raid = (
        client.feed("user", uid),
        client.feed("timeline", uid),
        client.feed("raid", uid),
    )
    raid_follower = client.feed("timeline", f"{uid}-r")
    timeline.follow("user", uid)
    raid_follower.follow("raid", uid)
    keep = user.add_activity({"actor": uid, "verb": "post", "object": "keep"})
    gone = user.add_activity(
        {"actor": uid, "verb": "post", "object": "gone", "to": [f"raid:{uid}"], **extra}
    )
    eventually(lambda: ids(timeline) == [gone["id"], keep["id"]], "the fanout to timeline")
    eventually(lambda: ids(raid_follower) == [gone["id"]], "the fanout of the `to` feed")
    assert raid_follower.get()["results"][0]["origin"] == f"raid:{uid}"
    assert ids(raid) == [gone["id"]]
    return user, timeline, raid, raid_follower, keep, gone


def test_remove_activity_by_id_removes_it_everywhere(client: StreamClient, uid: str) -> None:
    user, timeline, raid, raid_follower, keep, gone = _follower_and_to_setup(client, uid)
    answer = user.remove_activity(gone["id"])
    assert answer["removed"] == gone["id"]
    assert ids(user) == [keep["id"]]
    assert ids(raid) == []
    eventually(lambda: ids(timeline) == [keep["id"]], "the removal from timeline")
    eventually(lambda: ids(raid_follower) == [], "the removal from the `to` feed's follower")


def test_remove_activity_by_foreign_id_removes_it_everywhere(
    client: StreamClient, uid: str
) -> None:
    user, timeline, raid, raid_follower, keep, gone = _follower_and_to_setup(
        client, uid, foreign_id=f"post:{uid}"
    )
    assert gone["foreign_id"] == f"post:{uid}"
    answer = user.remove_activity(foreign_id=f"post:{uid}")
    assert answer["removed"] == f"post:{uid}"
    assert ids(user) == [keep["id"]]
    assert ids(raid) == []
    eventually(lambda: ids(timeline) == [keep["id"]], "the removal from timeline")
    eventually(lambda: ids(raid_follower) == [], "the removal from the `to` feed's follower")


def test_remove_unknown_foreign_id_changes_nothing(client: StreamClient, uid: str) -> None:
    feed = client.feed("user", uid)
    added = feed.add_activity({"actor": uid, "verb": "post", "object": "o", "foreign_id": "f:1"})
    answer = feed.remove_activity(foreign_id="f:unknown")
    assert "removed" in answer
    assert ids(feed) == [added["id"]]
    # Another feed's foreign id is not this feed's.
    client.feed("user", f"{uid}-other").remove_activity(foreign_id="f:1")
    assert ids(feed) == [added["id"]]


# --- follow and unfollow -------------------------------------------------------------------


def test_follow_copies_the_latest_activities_and_twice_changes_nothing(
    client: StreamClient, uid: str
) -> None:
    user, timeline = client.feed("user", uid), client.feed("timeline", uid)
    user.add_activities([{"actor": uid, "verb": "post", "object": f"o{i}"} for i in range(4)])
    own = ids(user)
    timeline.follow("user", uid, activity_copy_limit=2)
    results = timeline.get()["results"]
    assert [a["id"] for a in results] == own[:2]
    assert {a["origin"] for a in results} == {f"user:{uid}"}
    timeline.follow("user", uid, activity_copy_limit=10)
    assert ids(timeline) == own[:2]
    assert len(user.followers()["results"]) == 1
    assert len(timeline.following()["results"]) == 1


def test_follow_with_copy_limit_zero_copies_nothing(client: StreamClient, uid: str) -> None:
    user, timeline = client.feed("user", uid), client.feed("timeline", uid)
    user.add_activity({"actor": uid, "verb": "post", "object": "o"})
    timeline.follow("user", uid, activity_copy_limit=0)
    assert ids(timeline) == []
    assert [r["target_id"] for r in timeline.following()["results"]] == [f"user:{uid}"]


def test_follow_copies_only_the_targets_own_activities(client: StreamClient, uid: str) -> None:
    """What user:a got by following user:b is not copied on to a new follower of user:a."""
    a, b = client.feed("user", f"{uid}-a"), client.feed("user", f"{uid}-b")
    a.follow("user", f"{uid}-b")
    from_b = b.add_activity({"actor": uid, "verb": "post", "object": "b"})
    eventually(lambda: ids(a) == [from_b["id"]], "the fanout to user:a")
    own = a.add_activity({"actor": uid, "verb": "post", "object": "a"})
    timeline = client.feed("timeline", uid)
    timeline.follow("user", f"{uid}-a", activity_copy_limit=10)
    assert ids(timeline) == [own["id"]]


def test_unfollow_removes_what_the_follow_brought(client: StreamClient, uid: str) -> None:
    user, other = client.feed("user", uid), client.feed("user", f"{uid}-2")
    timeline = client.feed("timeline", uid)
    copied = user.add_activity({"actor": uid, "verb": "post", "object": "copied"})
    timeline.follow("user", uid)
    timeline.follow("user", f"{uid}-2")
    fanned = user.add_activity({"actor": uid, "verb": "post", "object": "fanned"})
    from_other = other.add_activity({"actor": uid, "verb": "post", "object": "other"})
    expected = [from_other["id"], fanned["id"], copied["id"]]
    eventually(lambda: ids(timeline) == expected, "the fanout to timeline")

    timeline.unfollow("user", uid)
    assert ids(timeline) == [from_other["id"]]
    assert [r["target_id"] for r in timeline.following()["results"]] == [f"user:{uid}-2"]
    assert user.followers()["results"] == []
    # New activities of the unfollowed feed no longer arrive.
    late = user.add_activity({"actor": uid, "verb": "post", "object": "late"})
    marker = other.add_activity({"actor": uid, "verb": "post", "object": "marker"})
    eventually(lambda: marker["id"] in ids(timeline), "the fanout of the marker")
    assert late["id"] not in ids(timeline)


def test_unfollow_keep_history_keeps_what_the_follow_brought(
    client: StreamClient, uid: str
) -> None:
    user, timeline = client.feed("user", uid), client.feed("timeline", uid)
    copied = user.add_activity({"actor": uid, "verb": "post", "object": "copied"})
    timeline.follow("user", uid)
    fanned = user.add_activity({"actor": uid, "verb": "post", "object": "fanned"})
    eventually(lambda: ids(timeline) == [fanned["id"], copied["id"]], "the fanout")
    timeline.unfollow("user", uid, keep_history=True)
    assert ids(timeline) == [fanned["id"], copied["id"]]
    assert timeline.following()["results"] == []


def test_followers_and_following_list_newest_follow_first(client: StreamClient, uid: str) -> None:
    target = client.feed("user", uid)
    sources = [f"{uid}-{i}" for i in range(3)]
    for source in sources:
        client.feed("timeline", source).follow("user", uid)
    rows = target.followers()["results"]
    assert [r["feed_id"] for r in rows] == [f"timeline:{s}" for s in reversed(sources)]
    for row in rows:
        assert set(row) == {"feed_id", "target_id", "created_at", "updated_at"}
        assert row["target_id"] == f"user:{uid}"
        assert isinstance(row["created_at"], dt.datetime)  # the SDK parsed the time
        assert isinstance(row["updated_at"], dt.datetime)
    assert [r["feed_id"] for r in target.followers(limit=2)["results"]] == [
        f"timeline:{sources[2]}",
        f"timeline:{sources[1]}",
    ]
    assert [r["feed_id"] for r in target.followers(limit=2, offset=2)["results"]] == [
        f"timeline:{sources[0]}"
    ]
    asked = [f"timeline:{sources[0]}", f"timeline:{uid}-nobody"]
    assert [r["feed_id"] for r in target.followers(feeds=asked)["results"]] == asked[:1]

    follower = client.feed("timeline", uid)
    targets = [f"{uid}-t{i}" for i in range(3)]
    for t in targets:
        follower.follow("user", t)
    rows = follower.following()["results"]
    assert [r["target_id"] for r in rows] == [f"user:{t}" for t in reversed(targets)]
    assert {r["feed_id"] for r in rows} == {f"timeline:{uid}"}
    assert [r["target_id"] for r in follower.following(limit=1, offset=1)["results"]] == [
        f"user:{targets[1]}"
    ]
    asked = [f"user:{targets[0]}", f"user:{targets[2]}", f"user:{uid}-nobody"]
    got = [r["target_id"] for r in follower.following(feeds=asked)["results"]]
    assert got == [f"user:{targets[2]}", f"user:{targets[0]}"]


# --- Stream's exceptions -------------------------------------------------------------------


def test_missing_actor_raises_input_exception_naming_the_field(
    client: StreamClient, uid: str
) -> None:
    feed = client.feed("user", uid)
    with pytest.raises(InputException) as caught:
        feed.add_activity({"verb": "post", "object": "o"})
    assert caught.value.status_code == 400
    assert 'Field "actor"' in str(caught.value)  # built by the SDK from exception_fields
    assert ids(feed) == []


def test_unknown_api_key_raises_api_key_exception(server: ServerProcess, uid: str) -> None:
    wrong = stream.connect("not-the-key", API_SECRET, base_url=server.base_url)
    with pytest.raises(ApiKeyException) as caught:
        wrong.feed("user", uid).get()
    assert caught.value.status_code == 401


def test_wrong_secret_raises_signature_exception(
    client: StreamClient, server: ServerProcess, uid: str
) -> None:
    wrong = stream.connect(
        API_KEY, "another-secret-0123456789abcdef-01234", base_url=server.base_url
    )
    with pytest.raises(SignatureException) as caught:
        wrong.feed("user", uid).add_activity({"actor": uid, "verb": "post", "object": "o"})
    assert caught.value.status_code == 401
    assert ids(client.feed("user", uid)) == []


def test_token_for_another_feed_raises_not_allowed(client: StreamClient, uid: str) -> None:
    other = token({"resource": "feed", "action": "read", "feed_id": f"user{uid}-other"})
    with pytest.raises(NotAllowedException) as caught:
        client.get(f"feed/user/{uid}/", signature=other)
    assert caught.value.status_code == 403


def test_unknown_feed_group_raises_feed_config_exception(client: StreamClient, uid: str) -> None:
    with pytest.raises(FeedConfigException):
        client.feed("nosuchgroup", uid).get()
    with pytest.raises(FeedConfigException):
        client.feed("nosuchgroup", uid).add_activity({"actor": uid, "verb": "v", "object": "o"})
    with pytest.raises(FeedConfigException):
        client.feed("timeline", uid).follow("nosuchgroup", uid)
    with pytest.raises(FeedConfigException):
        client.feed("user", uid).add_activity(
            {"actor": uid, "verb": "v", "object": "o", "to": [f"nosuchgroup:{uid}"]}
        )
    assert ids(client.feed("user", uid)) == []
    assert client.feed("timeline", uid).following()["results"] == []


def test_unknown_route_raises_does_not_exist(client: StreamClient) -> None:
    with pytest.raises(DoesNotExistException) as caught:
        client.get("no/such/route/", signature=SERVER_TOKEN)
    assert caught.value.status_code == 404


@pytest.fixture(scope="module")
def unfollowable_server(pool: ServerPool, tmp_path_factory: pytest.TempPathFactory) -> Any:
    config: Path = tmp_path_factory.mktemp("unfollowable") / "tidings.toml"
    config.write_text('[feeds.notice]\ntype = "flat"\nfollowable = false\n')
    return pool.get({"TIDINGS_CONFIG": str(config)})


def test_following_a_non_followable_group_raises_feed_config_exception(
    unfollowable_server: ServerProcess, uid: str
) -> None:
    client = stream.connect(API_KEY, API_SECRET, base_url=unfollowable_server.base_url)
    notice = client.feed("notice", uid)
    added = notice.add_activity({"actor": uid, "verb": "post", "object": "o"})
    assert ids(notice) == [added["id"]]
    timeline = client.feed("timeline", uid)
    with pytest.raises(FeedConfigException):
        timeline.follow("notice", uid)
    assert timeline.following()["results"] == []
    assert ids(timeline) == []
    # A feed of the non-followable group may still follow others.
    notice.follow("user", uid)
    assert [r["target_id"] for r in notice.following()["results"]] == [f"user:{uid}"]
