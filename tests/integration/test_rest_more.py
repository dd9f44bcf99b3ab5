"""The rest of Stream's v1.0 feed API, called through stream-python.

get_activities, update_activities, activity(-ies)_partial_update, update_activity_to_targets,
add_to_many, follow_stats: answers as the SDK reads them, Stream's exceptions on bad input,
refused batches that store nothing, and updates that reach follower feeds, their readers and
their live subscribers (python-socketio and the npm socket.io-client), through a pull feed too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
import requests
import socketio
import stream
from stream.client import StreamClient
from stream.exceptions import (
    DoesNotExistException,
    FeedConfigException,
    InputException,
    NotAllowedException,
)

from harness.common import SERVER_TOKEN, token
from harness.pool import ServerPool
from tests.node_client import NodeSubscriber
from tests.support import API_KEY, API_SECRET, ServerProcess, Store, wait_until

WAIT = 15.0
Doc = dict[str, Any]


def eventually(check: Callable[[], Any], what: str) -> None:
    wait_until(check, WAIT, 0.05, what=what)


def when(minutes: int) -> dt.datetime:
    return dt.datetime(2024, 5, 1, 12, 0, 0) + dt.timedelta(minutes=minutes)


def post(feed: Any, fid: str, minutes: int = 0, **extra: Any) -> Doc:
    activity = {"actor": "bob", "verb": "post", "object": fid, "foreign_id": fid}
    return dict(feed.add_activity({**activity, "time": when(minutes), **extra}))


def scoped(claims: Doc, server: ServerProcess) -> StreamClient:
    """A client whose every call carries `claims` instead of the SDK's own token."""
    client = stream.connect(API_KEY, API_SECRET, base_url=server.base_url)
    fixed = token(claims)
    client.create_jwt_token = lambda *a, **k: fixed  # type: ignore[method-assign]
    return client


@pytest.fixture(scope="module")
def db(store: Store, server: ServerProcess) -> Iterator[pymongo.database.Database[Doc]]:
    mongo: pymongo.MongoClient[Doc] = pymongo.MongoClient(store.url, tz_aware=True)
    yield mongo[server.database]
    mongo.close()


class Listener:
    """A python-socketio client that records every `feed.update`."""

    def __init__(self, url: str, feeds: list[str]) -> None:
        self.events: list[Doc] = []
        self.client = socketio.Client(reconnection=False)
        self.client.on("feed.update", self.events.append)
        self.client.connect(
            url, auth={"token": SERVER_TOKEN}, transports=["websocket"], wait_timeout=WAIT
        )
        for feed in feeds:
            ack = self.client.call("subscribe", {"feed": feed}, timeout=WAIT)
            assert ack["ok"], ack

    def carrying(self, activity_id: str, check: Callable[[Doc], bool]) -> list[Doc]:
        return [
            e for e in self.events if any(a["id"] == activity_id and check(a) for a in e["new"])
        ]

    def close(self) -> None:
        self.client.disconnect()


# --- GET activities/ -------------------------------------------------------------------------


def test_get_activities_by_ids_and_by_foreign_id_time(client: StreamClient, uid: str) -> None:
    feed = client.feed("user", uid)
    first, second = post(feed, f"a:{uid}", 1), post(feed, f"b:{uid}", 2)
    got = client.get_activities(ids=[first["id"], second["id"]])["results"]
    assert sorted(a["id"] for a in got) == sorted([first["id"], second["id"]])
    assert {a["object"] for a in got} == {f"a:{uid}", f"b:{uid}"}
    by_foreign = client.get_activities(foreign_id_times=[(f"b:{uid}", when(2))])["results"]
    assert [a["id"] for a in by_foreign] == [second["id"]]
    assert client.get_activities(foreign_id_times=[(f"b:{uid}", when(3))])["results"] == []
    feed.remove_activity(first["id"])
    assert [a["id"] for a in client.get_activities(ids=[first["id"], second["id"]])["results"]] == [
        second["id"]
    ]


def test_get_activities_refuses_bad_and_too_many_ids(client: StreamClient) -> None:
    with pytest.raises(InputException):
        client.get_activities(ids=["not-an-id"])
    with pytest.raises(InputException):
        client.get_activities(ids=["0190a0f0-0000-7000-8000-000000000000"] * 101)


def test_get_activities_needs_an_app_wide_token(server: ServerProcess, uid: str) -> None:
    mine = scoped({"resource": "feed", "action": "read", "feed_id": f"user{uid}"}, server)
    with pytest.raises(NotAllowedException):
        mine.get_activities(ids=["0190a0f0-0000-7000-8000-000000000000"])
    user = scoped({"user_id": uid}, server)
    client = stream.connect(API_KEY, API_SECRET, base_url=server.base_url)
    added = post(client.feed("user", uid), f"s:{uid}", 1)
    with pytest.raises(NotAllowedException):
        user.activity_partial_update(id=added["id"], set={"x": 1})
    with pytest.raises(NotAllowedException):
        user.update_activities([{**added, "verb": "other"}])
    assert client.get_activities(ids=[added["id"]])["results"][0]["verb"] == "post"


# --- POST activities/ (full update) ----------------------------------------------------------


def test_update_activities_replaces_fields_in_follower_feeds(
    client: StreamClient, uid: str
) -> None:
    feed, timeline = client.feed("user", uid), client.feed("timeline", uid)
    timeline.follow("user", uid)
    added = post(feed, f"u:{uid}", 1, colour="red")
    eventually(lambda: timeline.get()["results"], "the fanout")
    fresh = {"actor": "bob", "verb": "edit", "object": "o2", "foreign_id": f"u:{uid}",
             "time": when(1), "size": 3}  # fmt: skip
    client.update_activities([fresh])
    for read in (feed.get()["results"][0], timeline.get()["results"][0]):
        assert read["id"] == added["id"]
        assert (read["verb"], read["size"]) == ("edit", 3)
        assert "colour" not in read
    assert timeline.get()["results"][0]["origin"] == f"user:{uid}"


def test_update_activities_takes_an_activity_as_read_back(client: StreamClient, uid: str) -> None:
    feed = client.feed("user", uid)
    post(feed, f"rb:{uid}", 1)
    read = feed.get()["results"][0]  # with its id and origin
    client.update_activity({**read, "likes": 2})
    assert feed.get()["results"][0]["likes"] == 2
    with pytest.raises(InputException):
        client.update_activity({**read, "id": "0190a0f0-0000-7000-8000-000000000000"})


def test_update_of_an_invalid_activity_refuses_the_whole_batch(
    client: StreamClient, uid: str
) -> None:
    """(An activity not stored yet is stored: test_stream_compat.py.)"""
    feed = client.feed("user", uid)
    post(feed, f"k:{uid}", 1)
    good = {"actor": "bob", "verb": "changed", "object": "o", "foreign_id": f"k:{uid}",
            "time": when(1)}  # fmt: skip
    with pytest.raises(InputException):
        client.update_activities([good, {"actor": "bob", "verb": "v", "object": "o"}])
    assert feed.get()["results"][0]["verb"] == "post"  # nothing of the batch stored


# --- POST activity/ (partial update) --------------------------------------------------------


def test_partial_update_sets_and_unsets_by_id_and_by_foreign_id(
    client: StreamClient, uid: str
) -> None:
    feed = client.feed("user", uid)
    added = post(feed, f"p:{uid}", 1, product={"price": 5, "name": "x"}, popularity=9)
    answer = client.activity_partial_update(
        id=added["id"], set={"product.price": 7, "tag": "new"}, unset=["popularity"]
    )
    assert answer["activities"][0]["id"] == added["id"]
    read = feed.get()["results"][0]
    assert read["product"] == {"price": 7, "name": "x"} and read["tag"] == "new"
    assert "popularity" not in read
    client.activity_partial_update(foreign_id=f"p:{uid}", time=when(1), set={"tag": "fid"})
    assert feed.get()["results"][0]["tag"] == "fid"


def test_partial_update_refuses_reserved_fields_and_stores_nothing_of_a_batch(
    client: StreamClient, uid: str
) -> None:
    feed = client.feed("user", uid)
    added = post(feed, f"r:{uid}", 1)
    refused: list[Doc] = [
        {"set": {"foreign_id": "x"}},
        {"set": {"time": "2020-01-01T00:00:00"}},
        {"set": {"to": ["user:x"]}},
        {"unset": ["id"]},
        {"unset": ["actor"]},
    ]
    for change in refused:
        with pytest.raises(InputException) as raised:
            client.activities_partial_update([
                {"id": added["id"], "set": {"ok": 1}},
                {"id": added["id"], **change},
            ])  # fmt: skip
        assert raised.value.status_code == 400
        named = next(iter(change.get("set", {})), None) or change["unset"][0]
        assert named in str(raised.value.detail)
    with pytest.raises(DoesNotExistException):
        client.activities_partial_update([
            {"id": added["id"], "set": {"ok": 1}},
            {"id": "0190a0f0-0000-7000-8000-000000000000", "set": {"ok": 1}},
        ])  # fmt: skip
    assert "ok" not in feed.get()["results"][0]


def test_concurrent_partial_updates_of_one_activity_lose_nothing(
    client: StreamClient, uid: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    feed = client.feed("user", uid)
    added = post(feed, f"cc:{uid}", 1)
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(
            lambda i: client.activity_partial_update(id=added["id"], set={f"f{i}": i}),
            range(20),
        ))  # fmt: skip
    read = feed.get()["results"][0]
    assert {k: v for k, v in read.items() if k.startswith("f") and k != "foreign_id"} == {
        f"f{i}": i for i in range(20)
    }


def test_partial_update_goes_live_to_a_follower_feeds_subscribers(
    client: StreamClient, server: ServerProcess, uid: str
) -> None:
    feed, timeline = client.feed("user", uid), client.feed("timeline", uid)
    timeline.follow("user", uid)
    added = post(feed, f"l:{uid}", 1)
    eventually(lambda: timeline.get()["results"], "the fanout")
    listener = Listener(server.url, [f"timeline:{uid}"])
    node = NodeSubscriber(server.url, SERVER_TOKEN, [f"timeline:{uid}"])
    try:
        asyncio.run(node.subscribed(f"timeline:{uid}"))
        client.activity_partial_update(id=added["id"], set={"likes": 3})

        def updated(a: Doc) -> bool:
            return a.get("likes") == 3

        eventually(lambda: listener.carrying(added["id"], updated), "the python event")
        event = listener.carrying(added["id"], updated)[0]
        assert event["feed"] == f"timeline:{uid}"
        assert event["new"][0]["origin"] == f"user:{uid}"
        got = asyncio.run(
            node.event(lambda e: any(a["id"] == added["id"] and updated(a) for a in e["new"]),
                       "the npm event")
        )  # fmt: skip
        assert got["feed"] == f"timeline:{uid}"
        whole = {"actor": "bob", "verb": "edit", "object": "o", "foreign_id": f"l:{uid}",
                 "time": when(1)}  # fmt: skip
        client.update_activities([whole])

        def edited(a: Doc) -> bool:
            return a.get("verb") == "edit" and "likes" not in a

        eventually(lambda: listener.carrying(added["id"], edited), "the full update's event")
    finally:
        listener.close()
        node.close()


# --- feed_targets/…/activity_to_targets/ ------------------------------------------------------


def test_activity_to_targets_adds_and_removes_targets_and_their_followers(
    client: StreamClient, server: ServerProcess, uid: str
) -> None:
    feed = client.feed("user", uid)
    old, new = client.feed("user", f"{uid}o"), client.feed("user", f"{uid}n")
    reader = client.feed("timeline", uid)
    reader.follow("user", f"{uid}o")
    added = post(feed, f"t:{uid}", 1, to=[f"user:{uid}o"])
    eventually(lambda: reader.get()["results"], "the fanout through the old target")
    listener = Listener(server.url, [f"user:{uid}n", f"timeline:{uid}"])
    try:
        feed.update_activity_to_targets(
            f"t:{uid}", when(1), added_targets=[f"user:{uid}n"], removed_targets=[f"user:{uid}o"]
        )
        eventually(lambda: listener.carrying(added["id"], lambda a: True), "the added target's")
        assert listener.carrying(added["id"], lambda a: True)[0]["feed"] == f"user:{uid}n"
        eventually(
            lambda: [e for e in listener.events if added["id"] in e["deleted"]],
            "the removal from the old target's follower",
        )
    finally:
        listener.close()
    assert [a["id"] for a in new.get()["results"]] == [added["id"]]
    assert old.get()["results"] == []
    eventually(lambda: reader.get()["results"] == [], "removal from the old target's follower")
    feed.update_activity_to_targets(f"t:{uid}", when(1), new_targets=[f"user:{uid}o"])
    assert [a["id"] for a in old.get()["results"]] == [added["id"]]
    assert new.get()["results"] == []


@pytest.mark.parametrize("point", ["targets.before_to", "targets.after_to"])
def test_activity_to_targets_retried_after_a_crash_midway_finishes(
    store: Store, workdir: Path, point: str, uid: str
) -> None:
    log = workdir / f"targets-{point}.log"
    lease = {"TIDINGS_FANOUT_LEASE_SECONDS": "1"}  # the dead node's remove job taken over soon
    env = {"TIDINGS_TEST_FAULT": point, **lease}
    crashing = ServerProcess(store.url, env=env, log_path=log).start()
    client = stream.connect(API_KEY, API_SECRET, base_url=crashing.base_url)
    reader = client.feed("timeline", uid)
    reader.follow("user", f"{uid}o")
    added = post(client.feed("user", uid), f"c:{uid}", 1, to=[f"user:{uid}o"])
    eventually(lambda: reader.get()["results"], "the fanout through the old target")
    move = {"added_targets": [f"user:{uid}n"], "removed_targets": [f"user:{uid}o"]}
    with pytest.raises(requests.ConnectionError, match="Connection aborted"):  # killed mid-way
        client.feed("user", uid).update_activity_to_targets(f"c:{uid}", when(1), **move)
    assert crashing.process is not None and crashing.process.wait(10) != 0
    healthy = ServerProcess(store.url, crashing.database, env=lease, log_path=log).start()
    try:
        client = stream.connect(API_KEY, API_SECRET, base_url=healthy.base_url)
        client.feed("user", uid).update_activity_to_targets(f"c:{uid}", when(1), **move)
        assert [a["id"] for a in client.feed("user", f"{uid}n").get()["results"]] == [added["id"]]
        assert client.feed("user", f"{uid}o").get()["results"] == []
        reader = client.feed("timeline", uid)
        eventually(lambda: reader.get()["results"] == [], "the old target's follower cleared")
    finally:
        healthy.kill()


def test_activity_to_targets_authorises_targets(server: ServerProcess, uid: str) -> None:
    client = stream.connect(API_KEY, API_SECRET, base_url=server.base_url)
    post(client.feed("user", uid), f"z:{uid}", 1)
    # A user token may change its own feed's activity, but not send it to another user's feed.
    bob = scoped({"user_id": uid}, server)
    with pytest.raises(NotAllowedException):
        bob.feed("user", uid).update_activity_to_targets(
            f"z:{uid}", when(1), added_targets=[f"user:{uid}x"]
        )
    assert client.feed("user", f"{uid}x").get()["results"] == []
    with pytest.raises(DoesNotExistException):
        client.feed("user", uid).update_activity_to_targets(
            f"missing:{uid}", when(1), added_targets=[f"user:{uid}x"]
        )


# --- feed/add_to_many/ -----------------------------------------------------------------------


def test_add_to_many_adds_one_activity_to_each_feed(client: StreamClient, uid: str) -> None:
    feeds = [f"user:{uid}{i}" for i in range(3)]
    follower = client.feed("timeline", uid)
    follower.follow("user", f"{uid}0")
    client.add_to_many({"actor": "bob", "verb": "v", "object": "o", "foreign_id": f"m:{uid}",
                        "time": when(1)}, feeds)  # fmt: skip
    got = [client.feed("user", f"{uid}{i}").get()["results"] for i in range(3)]
    assert len({rows[0]["id"] for rows in got}) == 1 and all(len(r) == 1 for r in got)
    eventually(lambda: follower.get()["results"], "the fanout of one of the feeds")
    # Each feed owns it: removing it from one leaves it in the others.
    client.feed("user", f"{uid}0").remove_activity(foreign_id=f"m:{uid}")
    assert client.feed("user", f"{uid}0").get()["results"] == []
    assert len(client.feed("user", f"{uid}1").get()["results"]) == 1
    eventually(lambda: follower.get()["results"] == [], "the removal from the follower")


def test_add_to_many_of_many_feeds_is_one_write(client: StreamClient, uid: str) -> None:
    feeds = [f"user:{uid}{i}" for i in range(2000)]
    started = dt.datetime.now()
    client.add_to_many({"actor": "bob", "verb": "v", "object": "o"}, feeds)
    assert (dt.datetime.now() - started).total_seconds() < 10
    assert len(client.feed("user", f"{uid}1999").get()["results"]) == 1


def test_add_to_many_refuses_a_bad_batch_whole_and_non_server_tokens(
    client: StreamClient, server: ServerProcess, uid: str
) -> None:
    activity = {"actor": "bob", "verb": "v", "object": "o"}
    with pytest.raises(FeedConfigException, match="nogroup"):
        client.add_to_many(activity, [f"user:{uid}", "nogroup:x"])
    with pytest.raises(InputException):
        client.add_to_many({"verb": "v"}, [f"user:{uid}"])
    with pytest.raises(InputException):
        client.add_to_many(activity, [f"user:{uid}{i}" for i in range(5001)])
    mine = scoped({"resource": "feed", "action": "write", "feed_id": f"user{uid}"}, server)
    with pytest.raises(NotAllowedException):
        mine.add_to_many(activity, [f"user:{uid}"])
    assert client.feed("user", uid).get()["results"] == []


# --- stats/follow/ ---------------------------------------------------------------------------


def test_follow_stats_counts_followers_and_following(client: StreamClient, uid: str) -> None:
    for i in range(3):
        client.feed("timeline", f"{uid}{i}").follow("user", uid)
    client.feed("user", uid).follow("user", f"{uid}x")
    stats = client.follow_stats(f"user:{uid}")["results"]
    assert stats["followers"] == {"feed": f"user:{uid}", "count": 3}
    assert stats["following"] == {"feed": f"user:{uid}", "count": 1}
    only = client.follow_stats(f"user:{uid}", followers_slugs=["user"], following_slugs=["user"])
    assert only["results"]["followers"]["count"] == 0
    assert only["results"]["following"]["count"] == 1
    with pytest.raises(InputException):
        client.follow_stats("no-colon")


# --- an update through a pull feed -----------------------------------------------------------


@pytest.fixture(scope="module")
def hybrid(pool: ServerPool) -> ServerProcess:
    return pool.get({"TIDINGS_FANOUT_PULL_THRESHOLD": "3", "TIDINGS_FANOUT_PUSH_THRESHOLD": "2"})


def test_partial_update_reaches_readers_and_subscribers_through_a_pull_feed(
    hybrid: ServerProcess, store: Store, uid: str
) -> None:
    client = stream.connect(API_KEY, API_SECRET, base_url=hybrid.base_url)
    for i in range(4):
        client.feed("timeline", f"{uid}{i}").follow("user", uid)
    mongo: pymongo.MongoClient[Doc] = pymongo.MongoClient(store.url)
    try:
        feeds = mongo[hybrid.database]["feeds"]
        eventually(
            lambda: (feeds.find_one({"_id": f"user:{uid}"}) or {}).get("mode") == "pull",
            "the switch to pull",
        )
    finally:
        mongo.close()
    listener = Listener(hybrid.url, [f"timeline:{uid}0"])
    node = NodeSubscriber(hybrid.url, SERVER_TOKEN, [f"timeline:{uid}1"])
    try:
        asyncio.run(node.subscribed(f"timeline:{uid}1"))
        added = post(client.feed("user", uid), f"pull:{uid}", 1)
        reader = client.feed("timeline", f"{uid}0")
        assert [a["id"] for a in reader.get()["results"]] == [added["id"]]
        client.activity_partial_update(id=added["id"], set={"likes": 5})
        assert reader.get()["results"][0]["likes"] == 5

        def updated(a: Doc) -> bool:
            return a.get("likes") == 5

        eventually(lambda: listener.carrying(added["id"], updated), "the pull update")
        assert listener.carrying(added["id"], updated)[0]["feed"] == f"timeline:{uid}0"
        got = asyncio.run(
            node.event(lambda e: any(a["id"] == added["id"] and updated(a) for a in e["new"]),
                       "the npm pull update")
        )  # fmt: skip
        assert got["feed"] == f"timeline:{uid}1"
    finally:
        listener.close()
        node.close()
