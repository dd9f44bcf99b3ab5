"""Aggregated and notification feeds as stream-python reads them.

The shared server runs the default config: `notification` (notification) and
`timeline_aggregated` (aggregated), both with Stream's default format (verb and day).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pymongo
import pytest
import requests
import stream
from stream.client import StreamClient
from stream.exceptions import FeedConfigException, InputException

from harness.common import SERVER_TOKEN
from harness.pool import ServerPool
from tests.integration.realtime_clients import PySubscriber, Rest
from tests.support import API_KEY, API_SECRET, ROOT, ServerProcess, Store, free_port, wait_until

DAY = "2026-11-30T"
WAIT = 15.0


def like(actor: str, second: int, verb: str = "like", **extra: Any) -> dict[str, Any]:
    return {"actor": actor, "verb": verb, "object": "photo:1", "time": f"{DAY}12:00:{second:02d}",
            **extra}  # fmt: skip


def eventually(check: Callable[[], bool], what: str) -> None:
    wait_until(check, WAIT, 0.05, what=what)


def groups_of(feed: Any, **params: Any) -> dict[str, dict[str, Any]]:
    return {g["group"]: g for g in feed.get(**params)["results"]}


def test_a_notification_feed_answers_groups_with_counts(client: StreamClient, uid: str) -> None:
    feed = client.feed("notification", uid)
    feed.add_activities([like("ann", 1), like("bob", 2), like("ann", 3), like("cy", 4, "follow")])
    answer = feed.get()
    assert answer["unseen"] == 2 and answer["unread"] == 2
    first, second = answer["results"]
    assert first["group"] == "follow_2026-11-30"  # newest updated first
    assert second["group"] == "like_2026-11-30"
    assert second["verb"] == "like"
    assert second["activity_count"] == 3 and second["actor_count"] == 2
    assert [a["actor"] for a in second["activities"]] == ["ann", "bob", "ann"]  # newest first
    assert second["id"] == second["activities"][0]["id"]
    assert second["is_seen"] is False and second["is_read"] is False
    assert str(second["updated_at"]).startswith("2026-11-30")
    assert str(second["created_at"]).startswith("2026-11-30")


def test_marks_answer_the_state_from_before_and_a_new_activity_unmarks(
    client: StreamClient, uid: str
) -> None:
    feed = client.feed("notification", uid)
    feed.add_activities([like("ann", 1), like("cy", 2, "follow")])
    before = feed.get(mark_seen=True)
    assert before["unseen"] == 2
    assert all(g["is_seen"] is False for g in before["results"])
    after = feed.get()
    assert after["unseen"] == 0 and after["unread"] == 2
    assert all(g["is_seen"] is True for g in after["results"])
    likes = groups_of(feed)["like_2026-11-30"]
    assert feed.get(mark_read=[likes["id"]])["unread"] == 2
    read = groups_of(feed)
    assert read["like_2026-11-30"]["is_read"] is True
    assert read["follow_2026-11-30"]["is_read"] is False
    assert feed.get()["unread"] == 1
    feed.add_activity(like("bob", 3))  # joins the likes: unseen and unread again
    again = feed.get()
    assert (again["unseen"], again["unread"]) == (1, 2)
    assert groups_of(feed)["like_2026-11-30"]["is_seen"] is False
    with pytest.raises(InputException):
        feed.get(mark_seen="not-a-group-id")


def test_an_aggregated_feed_has_groups_without_seen_and_read(
    client: StreamClient, uid: str
) -> None:
    feed = client.feed("timeline_aggregated", uid)
    feed.add_activities([like("ann", 1), like("bob", 2)])
    answer = feed.get()
    assert "unseen" not in answer and "unread" not in answer
    (group,) = answer["results"]
    assert group["activity_count"] == 2
    assert "is_seen" not in group and "is_read" not in group


def test_a_batch_groups_as_the_same_activities_added_one_by_one(
    client: StreamClient, uid: str
) -> None:
    """The store's groups against the same stream cut differently: one batch of 40 (more
    than a group keeps), and one by one in a shuffled order."""
    rng = random.Random(8)
    stream_ = [
        like(rng.choice("abcdefghij"), n % 60, rng.choice(["like", "follow"]), n=n)
        for n in range(40)
    ]
    for activity in stream_:
        activity["time"] = f"{DAY}12:{activity['n'] // 60:02d}:{activity['n'] % 60:02d}"
    at_once, one_by_one = client.feed("notification", f"a{uid}"), client.feed("notification", uid)
    at_once.add_activities(stream_)
    for activity in rng.sample(stream_, len(stream_)):
        one_by_one.add_activity(activity)
    assert one_by_one.get()["results"] == at_once.get()["results"]
    likes = groups_of(at_once)["like_2026-11-30"]
    assert len(likes["activities"]) == 15
    assert likes["activity_count"] == sum(a["verb"] == "like" for a in stream_)
    assert likes["actor_count"] == len({a["actor"] for a in stream_ if a["verb"] == "like"})
    oldest = min(a["n"] for a in stream_ if a["verb"] == "like")  # the oldest of all 40
    assert likes["created_at"].second == oldest and likes["created_at"] < likes["updated_at"]


def test_actor_count_stops_at_100_distinct_actors(client: StreamClient, uid: str) -> None:
    feed = client.feed("timeline_aggregated", uid)
    feed.add_activities([like(f"actor{n:03d}", n % 60, n=n) for n in range(60)])
    feed.add_activities([like(f"actor{n:03d}", n % 60, n=n) for n in range(60, 110)])
    (group,) = feed.get()["results"]
    assert group["activity_count"] == 110
    assert group["actor_count"] == 100


def test_concurrent_adds_into_a_new_group_all_count(client: StreamClient, uid: str) -> None:
    """Racing joins that create one group: the loser of the race to insert it joins it."""
    for round_ in range(3):
        feed = client.feed("notification", f"{uid}{round_}")
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(lambda n, f=feed: f.add_activity(like(f"actor{n}", n)), range(12)))
        (group,) = feed.get()["results"]
        assert (group["activity_count"], group["actor_count"]) == (12, 12)


def test_paging_on_group_ids(client: StreamClient, uid: str) -> None:
    feed = client.feed("notification", uid)
    feed.add_activities([like("ann", n, f"verb{n}") for n in range(1, 6)])
    first = feed.get(limit=2)
    assert [g["verb"] for g in first["results"]] == ["verb5", "verb4"]
    assert first["next"]
    rest = feed.get(limit=10, id_lt=first["results"][-1]["id"])
    assert [g["verb"] for g in rest["results"]] == ["verb3", "verb2", "verb1"]
    assert [g["verb"] for g in feed.get(limit=2, offset=2)["results"]] == ["verb3", "verb2"]


def test_a_retried_add_changes_nothing(client: StreamClient, uid: str) -> None:
    feed = client.feed("notification", uid)
    feed.add_activity(like("ann", 1, foreign_id="like:1"))
    feed.get(mark_seen=True, mark_read=True)
    feed.add_activity(like("ann", 1, foreign_id="like:1"))  # same time + foreign_id: same id
    answer = feed.get()
    (group,) = answer["results"]
    assert group["activity_count"] == 1
    assert (answer["unseen"], answer["unread"]) == (0, 0)


def test_removal_takes_an_activity_out_of_its_group(client: StreamClient, uid: str) -> None:
    feed = client.feed("notification", uid)
    added = feed.add_activities([like("ann", 1), like("bob", 2), like("cy", 3, "follow")])
    ann, bob, follow = (a["id"] for a in added["activities"])
    feed.remove_activity(bob)
    likes = groups_of(feed)["like_2026-11-30"]
    assert likes["activity_count"] == 1 and likes["actor_count"] == 1
    assert likes["id"] == ann
    feed.remove_activity(follow)
    assert set(groups_of(feed)) == {"like_2026-11-30"}
    feed.remove_activity(ann)
    assert feed.get()["results"] == []


def test_activities_arriving_by_to_are_grouped(client: StreamClient, uid: str) -> None:
    user = client.feed("user", f"a{uid}")
    user.add_activity(like(f"a{uid}", 1, to=[f"notification:{uid}"]))
    user.add_activity(like(f"b{uid}", 2, to=[f"notification:{uid}"]))
    (group,) = client.feed("notification", uid).get()["results"]
    assert group["activity_count"] == 2 and group["actor_count"] == 2


def test_a_grouped_feed_follows_a_flat_one_and_cannot_be_followed(
    client: StreamClient, uid: str
) -> None:
    author = client.feed("user", f"a{uid}")
    author.add_activity(like(f"a{uid}", 1))  # before the follow: copied by it
    timeline = client.feed("timeline_aggregated", uid)
    timeline.follow("user", f"a{uid}")

    def count() -> int:
        found = timeline.get()["results"]
        return found[0]["activity_count"] if found else 0

    eventually(lambda: count() == 1, "the follow's copy grouped")
    author.add_activity(like(f"a{uid}", 2))  # by the fanout
    eventually(lambda: count() == 2, "the fanout's entry grouped")
    timeline.unfollow("user", f"a{uid}")
    eventually(lambda: timeline.get()["results"] == [], "the unfollow empties the group")
    with pytest.raises(FeedConfigException):
        client.feed("timeline", uid).follow("notification", f"n{uid}")


# --- a server with its own feed groups -----------------------------------------------------

CONFIG = """
[feeds.short]
type = "notification"
aggregation_format = "{{ actor }}"
max_length = 3

[feeds.scores]
type = "aggregated"
aggregation_format = "{{ verb }}-{{ 100 // points }}"
"""


@pytest.fixture(scope="module")
def own_server(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("feed_types") / "tidings.toml"
    config.write_text(CONFIG)
    process = ServerProcess(store.url, env={"TIDINGS_CONFIG": str(config)}).start()
    yield process
    process.kill()


def test_max_length_ages_the_least_recently_updated_groups_out(
    own_server: ServerProcess, uid: str
) -> None:
    client = stream.connect(API_KEY, API_SECRET, base_url=own_server.base_url)
    feed = client.feed("short", uid)
    for n, actor in enumerate(["a", "b", "c", "d", "e"], start=1):
        feed.add_activity(like(actor, n))
    assert [g["group"] for g in feed.get()["results"]] == ["e", "d", "c"]
    feed.add_activity(like("c", 9))
    assert [g["group"] for g in feed.get()["results"]] == ["c", "e", "d"]


def test_removing_a_groups_newest_activity_recomputes_every_derived_field(
    own_server: ServerProcess, uid: str
) -> None:
    """`short` groups by actor: a group of a like and a newer share. Without the share its
    id, verb, updated_at, activity_count and actor_count are the like's alone."""
    client = stream.connect(API_KEY, API_SECRET, base_url=own_server.base_url)
    feed = client.feed("short", uid)
    liked = feed.add_activity(like("a", 1))
    shared = feed.add_activity(like("a", 2, "share"))
    (group,) = feed.get()["results"]
    assert (group["id"], group["verb"], group["activity_count"]) == (shared["id"], "share", 2)
    feed.remove_activity(shared["id"])
    (group,) = feed.get()["results"]
    assert (group["id"], group["verb"]) == (liked["id"], "like")
    assert (group["activity_count"], group["actor_count"]) == (1, 1)
    assert group["updated_at"] == group["created_at"]
    assert group["updated_at"].second == 1


def test_an_activity_its_own_grouped_feeds_cannot_group_is_refused_whole(
    own_server: ServerProcess, uid: str
) -> None:
    """The format of `scores` divides by the activity's `points`: one with 0 cannot be grouped
    in a feed it is added to or names in `to`, so the add is refused (FeedConfigException,
    code 6), a batch whole, and nothing of it is stored."""
    client = stream.connect(API_KEY, API_SECRET, base_url=own_server.base_url)
    scores, author = client.feed("scores", uid), client.feed("user", uid)
    with pytest.raises(FeedConfigException):
        scores.add_activity(like("a", 1, points=0))
    with pytest.raises(FeedConfigException):
        scores.add_activities([like("a", 2, points=5), like("b", 3, points=0)])
    with pytest.raises(FeedConfigException):
        author.add_activity(like("a", 4, points=0, to=[f"scores:{uid}"]))
    assert scores.get()["results"] == [] and author.get()["results"] == []
    scores.add_activity(like("a", 5, points=5))
    assert [g["group"] for g in scores.get()["results"]] == ["like-20"]


def test_a_bad_aggregation_format_stops_the_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[feeds.notification]\ntype = "notification"\naggregation_format = "{{ verb "\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        TIDINGS_CONFIG=str(config), TIDINGS_SERVER_PORT=str(free_port()),
        TIDINGS_MONGODB_URL="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100",
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "tidings", "serve", "--data-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "feeds.notification.aggregation_format" in done.stdout + done.stderr


# --- live counts ---------------------------------------------------------------------------


async def test_every_socket_of_a_notification_feed_gets_the_counts(
    server: ServerProcess, uid: str
) -> None:
    """After an add (with the new activity in `new`) and after each mark, on both devices."""
    feed = f"notification:{uid}"
    devices = [PySubscriber(), PySubscriber()]
    async with aiohttp.ClientSession() as session:
        rest = Rest(session, server.url)
        try:
            for device in devices:
                await device.connect(server.url, SERVER_TOKEN)
                assert "error" not in await device.subscribe(feed)
            added = await rest.add(feed, **like("ann", 1))
            for device in devices:
                event = await device.wait_for(lambda e: e["new"], "with the new activity")
                assert event["feed"] == feed
                assert [a["id"] for a in event["new"]] == [added["id"]]
                assert (event["unseen"], event["unread"]) == (1, 1)
            path = f"{server.url}/api/v1.0/feed/notification/{uid}/"
            await rest.call("GET", path, params={"mark_seen": "true"})
            for device in devices:
                event = await device.wait_for(lambda e: e.get("unseen") == 0, "after mark_seen")
                assert (event["new"], event["deleted"], event["unread"]) == ([], [], 1)
            await rest.call("GET", path, params={"mark_read": "true"})
            for device in devices:
                await device.wait_for(lambda e: e.get("unread") == 0, "after mark_read")
        finally:
            for device in devices:
                await device.close()


# --- a crash between an entry and its group ------------------------------------------------


def test_an_add_killed_before_its_group_is_joined_by_the_retry(
    store: Store, tmp_path: Path, uid: str
) -> None:
    """The server dies (kill -9) at `groups.before_join`: the entry is stored, its group not.
    The client's retry (same activity, same id) finds the entry still pending and joins it,
    once; a further retry changes nothing."""
    armed = ServerProcess(
        store.url, env={"TIDINGS_TEST_FAULT": "groups.before_join"},
        log_path=tmp_path / "armed.log",
    ).start()  # fmt: skip
    restarted = None
    try:
        feed = stream.connect(API_KEY, API_SECRET, base_url=armed.base_url).feed(
            "notification", uid
        )
        activity = like("ann", 1, foreign_id="like:1")
        with pytest.raises(requests.ConnectionError):
            feed.add_activity(activity)
        assert armed.process is not None and armed.process.wait(10) == -9
        restarted = ServerProcess(store.url, database=armed.database).start()
        client = stream.connect(API_KEY, API_SECRET, base_url=restarted.base_url)
        feed = client.feed("notification", uid)
        assert feed.get()["results"] == []  # the entry is there, its group is not
        feed.add_activity(activity)
        feed.add_activity(activity)
        answer = feed.get()
        assert [g["activity_count"] for g in answer["results"]] == [1]
        assert answer["unseen"] == 1
    finally:
        armed.kill()
        if restarted is not None:
            restarted.kill()


# --- groups of a pull feed's activities ----------------------------------------------------


@pytest.fixture(scope="module")
def hybrid_server(pool: ServerPool) -> ServerProcess:
    return pool.get({"TIDINGS_FANOUT_PULL_THRESHOLD": "3", "TIDINGS_FANOUT_PUSH_THRESHOLD": "2"})


def test_a_pull_feeds_activities_are_grouped_at_read_time(
    hybrid_server: ServerProcess, store: Store, uid: str
) -> None:
    """A popular (pull) feed's new activities are merged into its followers when they read:
    an aggregated follower groups them with what it holds."""
    client = stream.connect(API_KEY, API_SECRET, base_url=hybrid_server.base_url)
    celeb = f"c{uid}"
    client.feed("user", celeb).add_activity(like(celeb, 1))  # copied by the follows
    followers = [client.feed("timeline_aggregated", f"{uid}{n}") for n in range(4)]
    for follower in followers:
        follower.follow("user", celeb)
    db = pymongo.MongoClient(store.url)[hybrid_server.database]

    def mode() -> str:
        return str((db["feeds"].find_one({"_id": f"user:{celeb}"}) or {}).get("mode", "push"))

    eventually(lambda: mode() == "pull", "the celebrity's feed to become a pull feed")
    eventually(lambda: db["fanout_jobs"].count_documents({}) == 0, "the follows' copies")
    client.feed("user", celeb).add_activities([like(f"{celeb}b", 2), like(celeb, 3, "share")])
    assert (
        db["feed_entries"].count_documents({"feed": followers[0].id, "origin": {"$ne": None}}) == 1
    )
    groups = groups_of(followers[0])
    assert set(groups) == {"like_2026-11-30", "share_2026-11-30"}
    assert groups["like_2026-11-30"]["activity_count"] == 2
    assert groups["like_2026-11-30"]["actor_count"] == 2
    assert [g["group"] for g in followers[0].get()["results"]] == [
        "share_2026-11-30", "like_2026-11-30",
    ]  # fmt: skip
    assert [g["group"] for g in followers[0].get(limit=1, offset=1)["results"]] == [
        "like_2026-11-30"
    ]


def _pull_followers(
    server: ServerProcess, store: Store, celeb: str, group: str, uid: str
) -> tuple[StreamClient, list[Any]]:
    """Four `group` feeds follow user:<celeb>, which becomes a pull feed (threshold 3); its
    first activity (second 1) is copied by the follows, the next ones are merged at read."""
    client = stream.connect(API_KEY, API_SECRET, base_url=server.base_url)
    client.feed("user", celeb).add_activity(like(celeb, 1))
    followers = [client.feed(group, f"{uid}{n}") for n in range(4)]
    for follower in followers:
        follower.follow("user", celeb)
    db = pymongo.MongoClient(store.url)[server.database]

    def mode() -> str:
        return str((db["feeds"].find_one({"_id": f"user:{celeb}"}) or {}).get("mode", "push"))

    eventually(lambda: mode() == "pull", "the celebrity's feed to become a pull feed")
    eventually(lambda: db["fanout_jobs"].count_documents({}) == 0, "the follows' copies")
    return client, followers


def test_marks_of_groups_merged_from_a_pull_feed_stick(
    hybrid_server: ServerProcess, store: Store, uid: str
) -> None:
    """A notification feed following a pull feed: `like` is stored (a copy) and merged (a
    newer like), `share` exists only by the merge. Marks (true, or by group ids) stick on the
    next read and in the counts; a newer merged activity makes its group unseen again."""
    celeb = f"c{uid}"
    client, followers = _pull_followers(hybrid_server, store, celeb, "notification", uid)
    author = client.feed("user", celeb)
    author.add_activities([like(f"{celeb}b", 2), like(celeb, 3, "share")])
    feed = followers[0]
    before = feed.get(mark_seen=True)
    assert (before["unseen"], before["unread"]) == (2, 2)
    assert [g["activity_count"] for g in before["results"]] == [1, 2]
    after = feed.get()
    assert (after["unseen"], after["unread"]) == (0, 2)
    assert all(g["is_seen"] and not g["is_read"] for g in after["results"])
    share = groups_of(feed)["share_2026-11-30"]
    assert feed.get(mark_read=share["id"])["unread"] == 2
    read = feed.get()
    assert read["unread"] == 1
    assert {g["group"]: g["is_read"] for g in read["results"]} == {
        "share_2026-11-30": True, "like_2026-11-30": False,
    }  # fmt: skip
    likes = groups_of(feed)["like_2026-11-30"]
    feed.get(mark_read=likes["id"])  # its id is the merged like's: the stored part too
    assert feed.get()["unread"] == 0
    author.add_activity(like(f"{celeb}c", 4, "share"))  # merged: share is unseen again
    again = feed.get()
    assert (again["unseen"], again["unread"]) == (1, 1)
    assert groups_of(feed)["share_2026-11-30"]["is_seen"] is False
    assert groups_of(feed)["like_2026-11-30"]["is_seen"] is True
    assert followers[1].get()["unseen"] == 2  # marks are the feed's own


def test_merged_groups_aggregate_as_copied_ones(
    hybrid_server: ServerProcess, store: Store, uid: str
) -> None:
    """The same activities copied (added by `to`) into one notification feed and merged from
    a pull feed into another group alike."""
    celeb = f"c{uid}"
    client, followers = _pull_followers(hybrid_server, store, celeb, "notification", uid)
    copied = client.feed("notification", f"copy{uid}")
    copied.add_activity(like(celeb, 1))  # the follows' copy of the first, in the other feed
    activities = [like(f"{celeb}{n % 3}", 2 + n, ["like", "share"][n % 2]) for n in range(20)]
    client.feed("user", celeb).add_activities(activities)
    copied.add_activities(activities)

    def shape(feed: Any) -> list[tuple[Any, ...]]:
        return [
            (g["group"], g["verb"], g["activity_count"], g["actor_count"], g["id"],
             [a["id"] for a in g["activities"]], g["created_at"], g["updated_at"])
            for g in feed.get()["results"]
        ]  # fmt: skip

    assert shape(followers[0]) == shape(copied)


async def test_subscribe_since_on_a_grouped_feed_answers_activities_merged_ones_too(
    hybrid_server: ServerProcess, store: Store, uid: str
) -> None:
    """`missed` of a grouped feed holds activities (as its live events' `new` do), newer than
    `since`, oldest first: copied ones and those merged from a pull feed."""
    celeb = f"c{uid}"
    client, followers = _pull_followers(hybrid_server, store, celeb, "notification", uid)
    first = followers[0].get()["results"][0]["activities"][0]  # the copied one
    direct = client.feed("notification", followers[0].user_id)
    own = direct.add_activity(like("ann", 5))  # held by the feed itself
    merged = client.feed("user", celeb).add_activities([like(celeb, 3), like(celeb, 7, "share")])
    subscriber = PySubscriber()
    try:
        await subscriber.connect(hybrid_server.url, SERVER_TOKEN)
        ack = await subscriber.subscribe(followers[0].id, since=first["id"])
    finally:
        await subscriber.close()
    assert ack["ok"] and ack["more"] is False
    pulled = [a["id"] for a in merged["activities"]]
    assert [a["id"] for a in ack["missed"]] == [pulled[0], own["id"], pulled[1]]
    assert all("activities" not in a for a in ack["missed"])  # activities, not groups


def test_an_update_shows_in_its_group_whose_key_stays(
    hybrid_server: ServerProcess, store: Store, uid: str
) -> None:
    """Full (POST activities/) and partial (POST activity/) updates of grouped activities,
    copied and merged: a read shows the updated activity in the group it joined, since the
    format is applied at write time only (as Stream's): a changed verb moves nothing."""
    celeb = f"c{uid}"
    client, followers = _pull_followers(hybrid_server, store, celeb, "timeline_aggregated", uid)
    author = client.feed("user", celeb)
    copied = author.get()["results"][-1]  # second 1: copied into the followers
    merged = author.add_activity(like(celeb, 2, foreign_id=f"m{uid}"))
    client.activity_partial_update(id=copied["id"], set={"verb": "share", "note": "partial"})
    full = {k: v for k, v in merged.items() if k not in ("id", "duration")}
    client.update_activities([{**full, "verb": "share", "note": "full"}])
    for follower in followers[:2]:
        (group,) = follower.get()["results"]
        assert group["group"] == "like_2026-11-30" and group["activity_count"] == 2
        assert [(a["verb"], a["note"]) for a in group["activities"]] == [
            ("share", "full"), ("share", "partial"),
        ]  # fmt: skip


async def test_live_counts_of_a_notification_feed_count_merged_groups(
    hybrid_server: ServerProcess, store: Store, uid: str
) -> None:
    """The counts in a notification feed's events are those its read answers: groups merged
    from the pull feeds it follows count (`share` exists only by the merge), before and after
    a mark."""
    celeb = f"c{uid}"
    client, followers = _pull_followers(hybrid_server, store, celeb, "notification", uid)
    client.feed("user", celeb).add_activity(like(celeb, 3, "share"))
    feed = followers[0]
    subscriber = PySubscriber()
    async with aiohttp.ClientSession() as session:
        rest = Rest(session, hybrid_server.url)
        try:
            await subscriber.connect(hybrid_server.url, SERVER_TOKEN)
            assert "error" not in await subscriber.subscribe(feed.id)
            await rest.add(feed.id, **like("ann", 4, "comment"))
            event = await subscriber.wait_for(lambda e: e["new"], "the comment")
            assert (event["unseen"], event["unread"]) == (3, 3) == (
                feed.get()["unseen"], feed.get()["unread"],
            )  # fmt: skip
            share = groups_of(feed)["share_2026-11-30"]
            path = f"{hybrid_server.url}/api/v1.0/feed/notification/{feed.user_id}/"
            await rest.call("GET", path, params={"mark_seen": share["id"]})
            event = await subscriber.wait_for(lambda e: e.get("unseen") == 2, "after the mark")
            assert event["unread"] == 3
        finally:
            await subscriber.close()
