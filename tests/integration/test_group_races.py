"""Groups of aggregated and notification feeds under races and crashes.

A group is derived from the feed's entries (store/groups.py): whatever interleaves, once the
writes are done the stored groups equal a recomputation from `feed_entries` through the
domain's aggregation (`assert_groups_match_entries`). Races are made with the hold point
`groups.recompute_read` (a recompute held between its read of the entries and its write),
crashes with the fault point `groups.after_join` (between an insert's joins and the removal of
its join record), failing once or killing the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pymongo
import pytest
import requests
import stream
from stream.exceptions import StreamApiException

from tests.support import API_KEY, API_SECRET, ServerProcess, Store, wait_until
from tidings.domain.aggregation import regroup
from tidings.store.mongo.merged_groups import stored_verb

DAY = "2026-11-30T"
WAIT = 15.0
HOLD = "groups.recompute_read"


def like(actor: str, second: int, **extra: Any) -> dict[str, Any]:
    return {"actor": actor, "verb": "like", "object": "photo:1",
            "time": f"{DAY}12:00:{second:02d}", **extra}  # fmt: skip


def assert_groups_match_entries(db: Any, feed: str) -> None:
    """The feed's stored groups are what its entries make (domain/aggregation.regroup)."""
    members: dict[str, dict[str, tuple[str, str]]] = {}
    for entry in db["feed_entries"].find({"feed": feed, "group": {"$exists": True}}):
        member = (str(entry.get("actor", "")), str(entry.get("verb", "")))
        members.setdefault(entry["group"], {})[entry["activity_id"]] = member
    expected = {}
    for key, found in members.items():
        group = regroup(key, found)
        assert group is not None
        expected[key] = {
            "activity_ids": list(group.activity_ids), "activity_count": group.activity_count,
            "actors": list(group.actors), "gid": group.newest, "verb": group.verb,
        }  # fmt: skip
    stored = {doc["group"]: _derived(doc) for doc in db["feed_groups"].find({"feed": feed})}
    assert stored == expected


def _derived(doc: dict[str, Any]) -> dict[str, Any]:
    """What a stored group derives from its entries."""
    return {
        "activity_ids": doc["activity_ids"], "activity_count": doc["activity_count"],
        "actors": doc["actors"], "gid": doc["gid"], "verb": stored_verb(doc),
    }  # fmt: skip


class Holds:
    """The test's side of a `hold` fault point (server/tidings/faults.py): markers in a
    directory."""

    def __init__(self, folder: Path, point: str = HOLD) -> None:
        self.folder, self.point = folder, point

    def wait(self, arrival: int) -> None:
        held = self.folder / f"{self.point}.{arrival}.held"
        wait_until(held.exists, WAIT, 0.01, what=f"arrival {arrival} at {self.point}")

    def release(self, arrival: int) -> None:
        (self.folder / f"{self.point}.{arrival}.release").touch()

    def open(self) -> None:
        (self.folder / f"{self.point}.open").touch()


@pytest.fixture
def held_server(store: Store, tmp_path: Path) -> Iterator[tuple[ServerProcess, Holds]]:
    env = {"TIDINGS_TEST_FAULT": f"{HOLD}:hold", "TIDINGS_TEST_HOLD_DIR": str(tmp_path)}
    process = ServerProcess(store.url, env=env, log_path=tmp_path / "held.log").start()
    holds = Holds(tmp_path)
    yield process, holds
    holds.open()
    process.kill()


def notification(server: ServerProcess, uid: str) -> Any:
    return stream.connect(API_KEY, API_SECRET, base_url=server.base_url).feed("notification", uid)


def test_a_join_landing_while_a_recompute_is_held_is_kept(
    held_server: tuple[ServerProcess, Holds], store: Store, uid: str
) -> None:
    """A removal's recompute read the entries; a join lands before it writes: the join stays
    (the recompute's write is conditional on the group it read, and runs again)."""
    server, holds = held_server
    feed = notification(server, uid)
    first = feed.add_activity(like("ann", 1))["id"]
    second = feed.add_activity(like("bob", 2))["id"]
    with ThreadPoolExecutor(1) as pool:
        removal = pool.submit(notification(server, uid).remove_activity, first)
        holds.wait(1)
        third = feed.add_activity(like("cy", 3))["id"]
        holds.open()
        removal.result(WAIT)
    assert_groups_match_entries(pymongo.MongoClient(store.url)[server.database], feed.id)
    (group,) = feed.get()["results"]
    assert [a["id"] for a in group["activities"]] == [third, second]
    assert (group["activity_count"], group["actor_count"]) == (2, 2)


def test_two_recomputes_never_write_back_a_removed_activity(
    held_server: tuple[ServerProcess, Holds], store: Store, uid: str
) -> None:
    """Two removals of one group: the one that read first writes last. The removed activity
    does not come back, neither in the stored group nor in what a read shows."""
    server, holds = held_server
    feed = notification(server, uid)
    ids = [feed.add_activity(like(actor, n))["id"] for n, actor in enumerate("abc", 1)]
    with ThreadPoolExecutor(2) as pool:
        early = pool.submit(notification(server, uid).remove_activity, ids[0])
        holds.wait(1)  # it read b and c
        late = pool.submit(notification(server, uid).remove_activity, ids[1])
        holds.wait(2)  # it read c
        holds.release(2)
        late.result(WAIT)
        holds.open()
        early.result(WAIT)
    assert_groups_match_entries(pymongo.MongoClient(store.url)[server.database], feed.id)
    (group,) = feed.get()["results"]
    assert [a["id"] for a in group["activities"]] == [ids[2]]
    assert group["activity_count"] == 1


def test_a_removed_activity_is_not_read_from_a_group_its_removal_has_not_reached(
    held_server: tuple[ServerProcess, Holds], store: Store, uid: str
) -> None:
    """An activity removed from its feed is taken out of the follower feeds' groups by the
    removal's fanout; held there (its entry gone, its group not yet recomputed), a read of the
    follower does not show it."""
    server, holds = held_server
    client = stream.connect(API_KEY, API_SECRET, base_url=server.base_url)
    user, follower = client.feed("user", uid), client.feed("timeline_aggregated", uid)
    removed, kept = (user.add_activity(like(actor, n))["id"] for n, actor in enumerate("ab", 1))
    follower.follow("user", uid)

    def shown() -> list[str]:
        return [a["id"] for g in follower.get()["results"] for a in g["activities"]]

    wait_until(lambda: shown() == [kept, removed], WAIT, 0.05, what="the follow's copy")
    user.remove_activity(removed)
    holds.wait(1)  # the removal's fanout: the follower's entry is gone, its group not redone
    assert shown() == [kept]
    holds.open()
    db = pymongo.MongoClient(store.url)[server.database]
    wait_until(
        lambda: [g["activity_count"] for g in follower.get()["results"]] == [1], WAIT, 0.05,
        what="the follower's group recomputed",
    )  # fmt: skip
    assert_groups_match_entries(db, follower.id)


def test_an_add_failing_after_its_join_is_counted_once_by_the_retry(
    store: Store, tmp_path: Path, uid: str
) -> None:
    """`groups.after_join` fails once (the store's answer lost): the add answers 503 with its
    entry joined and its join record left. 16 newer activities join; the client's retry of
    the first one (no longer among the group's newest 15) must not count it again."""
    env = {"TIDINGS_TEST_FAULT": "groups.after_join:lose_answer:1"}
    server = ServerProcess(store.url, env=env, log_path=tmp_path / "raise.log").start()
    try:
        feed = notification(server, uid)
        oldest = like("ann", 0, foreign_id="like:0")
        with pytest.raises(StreamApiException) as failed:
            feed.add_activity(oldest)
        assert failed.value.status_code == 503
        feed.add_activities([like(f"u{n}", n) for n in range(1, 17)])
        feed.add_activity(oldest)
        feed.add_activity(oldest)
        db = pymongo.MongoClient(store.url)[server.database]
        assert_groups_match_entries(db, feed.id)
        assert [g["activity_count"] for g in feed.get()["results"]] == [17]
    finally:
        server.kill()


def test_an_add_killed_after_its_join_is_counted_once_by_the_retry(
    store: Store, tmp_path: Path, uid: str
) -> None:
    """The same with kill -9 at `groups.after_join`, the retries reaching a restarted node."""
    armed = ServerProcess(
        store.url, env={"TIDINGS_TEST_FAULT": "groups.after_join"},
        log_path=tmp_path / "armed.log",
    ).start()  # fmt: skip
    restarted = None
    try:
        oldest = like("ann", 0, foreign_id="like:0")
        with pytest.raises(requests.ConnectionError):
            notification(armed, uid).add_activity(oldest)
        assert armed.process is not None and armed.process.wait(10) == -9
        restarted = ServerProcess(store.url, database=armed.database).start()
        feed = notification(restarted, uid)
        feed.add_activities([like(f"u{n}", n) for n in range(1, 17)])
        feed.add_activity(oldest)
        feed.add_activity(oldest)
        db = pymongo.MongoClient(store.url)[armed.database]
        assert_groups_match_entries(db, feed.id)
        assert [g["activity_count"] for g in feed.get()["results"]] == [17]
    finally:
        armed.kill()
        if restarted is not None:
            restarted.kill()


def test_activities_a_follow_copies_into_an_aggregated_feed_name_their_origin(
    server: ServerProcess, store: Store, uid: str
) -> None:
    """Stream's `test_follow_and_source`: what reaches an aggregated feed through a follow
    (the follow's copy, and a later fanout) reads with `origin` the followed feed; what was
    added to it directly, with none."""
    client = stream.connect(API_KEY, API_SECRET, base_url=server.base_url)
    user = client.feed("user", uid)
    copied = user.add_activity({"actor": uid, "verb": "tweet", "object": 1})["id"]
    aggregated = client.feed("timeline_aggregated", uid)
    aggregated.follow("user", uid)
    own = aggregated.add_activity({"actor": uid, "verb": "tweet", "object": 2})["id"]
    fanned = user.add_activity({"actor": uid, "verb": "tweet", "object": 3})["id"]

    def origins() -> dict[str, Any]:
        groups = aggregated.get(limit=3)["results"]
        return {a["id"]: a["origin"] for g in groups for a in g["activities"]}

    wait_until(lambda: fanned in origins(), WAIT, 0.05, what="the fanout to the follower")
    assert origins() == {copied: user.id, own: None, fanned: user.id}
    db = pymongo.MongoClient(store.url)[server.database]
    db["feed_groups"].update_many({"feed": aggregated.id}, {"$unset": {"origins": ""}})
    assert origins() == {copied: user.id, own: None, fanned: user.id}  # groups stored before


def test_activities_merged_in_from_a_pull_feed_name_it_as_their_origin(
    store: Store, tmp_path: Path, uid: str
) -> None:
    """A popular (pull) feed's activities are merged into its aggregated followers' groups at
    read time: they read with that feed as their origin, next to the copied ones."""
    env = {"TIDINGS_FANOUT_PULL_THRESHOLD": "3", "TIDINGS_FANOUT_PUSH_THRESHOLD": "2"}
    server = ServerProcess(store.url, env=env, log_path=tmp_path / "hybrid.log").start()
    try:
        client = stream.connect(API_KEY, API_SECRET, base_url=server.base_url)
        celeb = client.feed("user", f"c{uid}")
        copied = celeb.add_activity(like("ann", 1))["id"]
        followers = [client.feed("timeline_aggregated", f"{uid}{n}") for n in range(4)]
        for follower in followers:
            follower.follow("user", celeb.user_id)
        db = pymongo.MongoClient(store.url)[server.database]

        def settled() -> bool:
            meta = db["feeds"].find_one({"_id": celeb.id}) or {}
            return meta.get("mode") == "pull" and db["fanout_jobs"].count_documents({}) == 0

        wait_until(settled, WAIT, 0.05, what="the celebrity's feed to become a pull feed")
        merged = celeb.add_activity(like("bob", 2))["id"]
        (group,) = followers[0].get()["results"]
        origins = {a["id"]: a["origin"] for a in group["activities"]}
        assert origins == {merged: celeb.id, copied: celeb.id}
        assert db["feed_entries"].count_documents({"activity_id": merged}) == 1  # not copied
    finally:
        server.kill()
