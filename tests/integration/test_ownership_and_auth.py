"""Who owns an activity, who may write where, and the bounds of an add and a read, against a real
server on the real store, through the stream-python SDK
and raw requests with user tokens and feed tokens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
import requests
import stream.exceptions
from pymongo import AsyncMongoClient
from stream.client import StreamClient

from harness.common import SERVER_TOKEN, token
from harness.follows import add_followers_bulk
from tests.integration.stored import NOTHING, Counts, stored
from tests.support import API_KEY, ServerProcess, Store, wait_until
from tidings.domain.ids import activity_id

Doc = dict[str, Any]
WAIT = 15.0


def call(
    node: ServerProcess, method: str, path: str, auth: str = SERVER_TOKEN, **kw: Any
) -> requests.Response:
    headers = {"Authorization": auth, "stream-auth-type": "jwt"}
    params = {"api_key": API_KEY, **kw.pop("params", {})}
    return requests.request(
        method, f"{node.url}/api/v1.0/{path}", params=params, headers=headers, timeout=30, **kw
    )


def add(node: ServerProcess, feed: str, body: Any, auth: str = SERVER_TOKEN) -> requests.Response:
    return call(node, "POST", f"feed/{feed.replace(':', '/')}/", auth, json=body)


def ids(node: ServerProcess, feed: str) -> list[str]:
    response = call(node, "GET", f"feed/{feed.replace(':', '/')}/", params={"limit": 100})
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()["results"]]


def user_token(user_id: str) -> str:
    return token({"user_id": user_id})


def assert_refused(response: requests.Response, status: int, code: int, *fields: str) -> Doc:
    assert response.status_code == status, response.text
    body: Doc = response.json()
    assert body["code"] == code and body["status_code"] == status, body
    for field in fields:
        assert field in body.get("exception_fields", {}), body
    return body


def activity(uid: str, **extra: Any) -> Doc:
    return {"actor": f"user:{uid}", "verb": "post", "object": "o:1", **extra}


@pytest.fixture(scope="module")
def db(store: Store, server: ServerProcess) -> Iterator[Any]:
    client: pymongo.MongoClient[Doc] = pymongo.MongoClient(store.url, tz_aware=True)
    yield client[server.database]
    client.close()


def held_anywhere(db: Any, feeds: list[str]) -> Counts:
    """What the store holds for `feeds`, collection by collection (tests/integration/stored.py)."""
    return stored(db, feeds)


# --- ownership is a set of feeds ---------------------------------------------------


def test_same_id_through_two_feeds_is_owned_by_both_and_removed_per_feed(
    client: StreamClient, server: ServerProcess, db: Any, uid: str
) -> None:
    fa, fb = client.feed("user", f"{uid}a"), client.feed("user", f"{uid}b")
    ta, tb = client.feed("timeline", f"{uid}a"), client.feed("timeline", f"{uid}b")
    ta.follow("user", f"{uid}a")
    tb.follow("user", f"{uid}b")
    sent = activity(uid, foreign_id=f"post:{uid}", time="2024-01-02T03:04:05.000000")
    first = fa.add_activity({**sent, "to": [f"raid:{uid}a"]})
    # The SDK signs with feed b's own scoped token: it may not replace what feed a published.
    with pytest.raises(stream.exceptions.NotAllowedException):
        fb.add_activity({**sent, "object": "o:2", "to": [f"raid:{uid}b"]})
    second = add(server, f"user:{uid}b", {**sent, "object": "o:2", "to": [f"raid:{uid}b"]})
    aid = first["id"]
    assert second.json()["id"] == aid  # Stream's rule: same foreign_id + time, same activity
    every = [f"user:{uid}a", f"raid:{uid}a", f"timeline:{uid}a"]
    others = [f"user:{uid}b", f"raid:{uid}b", f"timeline:{uid}b"]
    wait_until(lambda: all(ids(server, f) == [aid] for f in every + others), WAIT, what="fanout")

    fa.remove_activity(foreign_id=f"post:{uid}")
    wait_until(lambda: all(ids(server, f) == [] for f in every), WAIT, what="removal through a")
    for feed in others:  # what feed b put there stays, with b's fields
        [read] = call(server, "GET", f"feed/{feed.replace(':', '/')}/").json()["results"]
        assert (read["id"], read["object"]) == (aid, "o:2"), feed
    assert not db["activities"].find_one({"_id": aid}).get("removed")

    fb.remove_activity(foreign_id=f"post:{uid}")
    wait_until(lambda: all(ids(server, f) == [] for f in others), WAIT, what="removal through b")
    assert db["activities"].find_one({"_id": aid})["removed"] is True


def test_user_token_cannot_replace_what_another_feed_published(
    server: ServerProcess, db: Any, uid: str
) -> None:
    alice, mallory = f"{uid}alice", f"{uid}mallory"
    sent = activity(alice, foreign_id=f"post:{uid}", time="2024-05-06T07:08:09.000000")
    published = add(server, f"user:{alice}", sent, user_token(alice))
    assert published.status_code == 201, published.text
    aid = published.json()["id"]
    before = db["activities"].find_one({"_id": aid})

    forged = {**sent, "object": "forged", "actor": f"user:{mallory}"}
    refused = add(server, f"user:{mallory}", forged, user_token(mallory))
    body = assert_refused(refused, 403, 17)
    assert body["exception"] == "NotAllowedException"
    # In a batch the whole batch is refused: its harmless first activity is not stored either.
    batch = {"activities": [activity(mallory, object="harmless"), forged]}
    assert_refused(add(server, f"user:{mallory}", batch, user_token(mallory)), 403, 17)
    assert db["activities"].find_one({"_id": aid}) == before
    assert held_anywhere(db, [f"user:{mallory}"]) == NOTHING
    [read] = call(server, "GET", f"feed/user/{alice}/").json()["results"]
    assert read["object"] == "o:1"

    # The same time and content through another feed changes nothing: accepted (Stream).
    same = add(server, f"user:{mallory}", sent, user_token(mallory))
    assert same.status_code == 201, same.text
    assert db["activities"].find_one({"_id": aid})["data"] == before["data"]
    assert ids(server, f"user:{mallory}") == [aid]
    # Joining gives no say over the fields: still alice's to change, not mallory's.
    assert_refused(add(server, f"user:{mallory}", forged, user_token(mallory)), 403, 17)
    # Alice may replace her own; a server token may replace anyone's (Stream's behaviour).
    again = add(server, f"user:{alice}", {**sent, "object": "edited"}, user_token(alice))
    assert again.status_code == 201, again.text
    assert add(server, f"user:{mallory}", forged).status_code == 201
    assert ids(server, f"user:{mallory}") == [aid]


def test_documents_with_a_single_feed_still_read_and_remove(
    server: ServerProcess, db: Any, uid: str
) -> None:
    """Activities stored before ownership became a set: `{feed, to}` on the document."""
    owner, target, other = f"user:{uid}old", f"raid:{uid}old", f"user:{uid}new"
    when = dt.datetime(2023, 3, 3, 3, 3, 3, tzinfo=dt.UTC)
    data = {
        "actor": uid, "verb": "post", "object": "legacy", "foreign_id": f"old:{uid}",
        "time": "2023-03-03T03:03:03.000000", "to": [target],
    }  # fmt: skip
    aid = activity_id(when, data["foreign_id"], data)
    db["activities"].insert_one({
        "_id": aid, "feed": owner, "to": [target], "time": data["time"],
        "data": json.dumps(data, separators=(",", ":")), "foreign_id": data["foreign_id"],
    })  # fmt: skip
    db["feed_entries"].insert_many([
        {"feed": owner, "activity_id": aid, "origin": None},
        {"feed": target, "activity_id": aid, "origin": None},
    ])  # fmt: skip
    assert ids(server, owner) == [aid] and ids(server, target) == [aid]

    # The same content through another feed with a user token joins its owners; the feed
    # that published it may still change it; a server token may change anyone's.
    sent = {k: v for k, v in data.items() if k != "to"}
    joiner = f"{uid}joiner"
    assert add(server, f"user:{joiner}", sent, user_token(joiner)).status_code == 201
    edited = add(server, owner, {**sent, "object": "edited"}, user_token(f"{uid}old"))
    assert edited.status_code == 201, edited.text
    assert add(server, other, sent).json()["id"] == aid
    removed = call(server, "DELETE", f"feed/user/{uid}old/{aid}/")
    assert removed.status_code == 200, removed.text
    assert ids(server, owner) == [] and ids(server, target) == []
    assert ids(server, other) == [aid] and ids(server, f"user:{joiner}") == [aid]


def test_removal_through_one_owner_does_not_cancel_another_owners_fanout(
    store: Store, tmp_path: Path, uid: str
) -> None:
    node = ServerProcess(
        store.url,
        env={"TIDINGS_FANOUT_BATCH_SIZE": "25", "TIDINGS_FANOUT_CONCURRENCY": "1"},
        log_path=tmp_path / "server.log",
    ).start()
    client: pymongo.MongoClient[Doc] = pymongo.MongoClient(store.url, tz_aware=True)
    try:
        db = client[node.database]
        star, followers = f"user:{uid}star", [f"timeline:{uid}f{i}" for i in range(1500)]
        _add_followers(store, node.database, star, followers)
        sent = activity(uid, foreign_id=f"p:{uid}", time="2024-02-02T02:02:02.000000")
        aid = add(node, star, sent).json()["id"]  # the star's fanout starts now
        assert add(node, f"user:{uid}fan", sent).json()["id"] == aid  # the fan adds it too
        removed = call(node, "DELETE", f"feed/user/{uid}fan/{aid}/")
        assert removed.status_code == 200, removed.text

        def fanned_out() -> bool:
            return db["fanout_jobs"].count_documents({"activity_id": aid}) == 0

        wait_until(fanned_out, 60, 0.1, what="the star's fanout to finish")
        query = {"activity_id": aid, "feed": {"$in": followers}}
        assert db["feed_entries"].count_documents(query) == len(followers)
        assert ids(node, f"user:{uid}fan") == []
        assert ids(node, star) == [aid]
    finally:
        node.kill()
        client.drop_database(node.database)
        client.close()


def test_removal_through_one_owner_leaves_it_where_another_owner_reaches(
    store: Store, tmp_path: Path, uid: str
) -> None:
    """The star removes what the fan also added, while the star's own fanout still runs: the
    star's followers lose it (also those its in-flight batches reach after the removal's pass),
    but a feed that follows both keeps it, and so does every follower of the fan."""
    node = ServerProcess(
        store.url,
        env={"TIDINGS_FANOUT_BATCH_SIZE": "25", "TIDINGS_FANOUT_CONCURRENCY": "1"},
        log_path=tmp_path / "server.log",
    ).start()
    client: pymongo.MongoClient[Doc] = pymongo.MongoClient(store.url, tz_aware=True)
    try:
        db = client[node.database]
        star, fan = f"user:{uid}star", f"user:{uid}fan"
        both = f"timeline:{uid}both"
        only_star = [f"timeline:{uid}s{i}" for i in range(1000)]
        only_fan = [f"timeline:{uid}g{i}" for i in range(3)]
        _add_followers(store, node.database, star, [both, *only_star])
        _add_followers(store, node.database, fan, [both, *only_fan])
        sent = activity(uid, foreign_id=f"p:{uid}", time="2024-03-03T03:03:03.000000")
        aid = add(node, star, sent).json()["id"]  # the star's fanout starts now
        assert add(node, fan, sent).json()["id"] == aid
        removed = call(node, "DELETE", f"feed/user/{uid}star/{aid}/")
        assert removed.status_code == 200, removed.text

        def settled() -> bool:
            return db["fanout_jobs"].count_documents({"activity_id": aid}) == 0

        wait_until(settled, 60, 0.1, what="the fanouts and the removal to finish")
        holders = {e["feed"] for e in db["feed_entries"].find({"activity_id": aid})}
        assert holders & set(only_star) == set()
        assert {both, fan, *only_fan} <= holders
        assert star not in holders
    finally:
        node.kill()
        client.drop_database(node.database)
        client.close()


def _add_followers(store: Store, database: str, target: str, feeds: list[str]) -> None:
    async def run() -> None:
        client: AsyncMongoClient[Doc] = AsyncMongoClient(store.url, tz_aware=True)
        try:
            await add_followers_bulk(client[database], target, feeds)
        finally:
            await client.close()

    asyncio.run(run())


# --- every `to` feed is authorised -------------------------------------------------


def test_user_token_cannot_put_activities_into_feeds_it_may_not_write(
    server: ServerProcess, db: Any, uid: str
) -> None:
    bob, celeb = f"{uid}bob", f"user:{uid}celeb"
    refused = add(server, f"user:{bob}", activity(bob, to=[celeb]), user_token(bob))
    body = assert_refused(refused, 403, 17, "to")
    assert body["exception"] == "NotAllowedException"
    batch = {"activities": [activity(bob), activity(bob, to=[f"raid:{uid}"])]}
    assert_refused(add(server, f"user:{bob}", batch, user_token(bob)), 403, 17, "activities[1].to")
    assert held_anywhere(db, [f"user:{bob}", celeb, f"raid:{uid}"]) == NOTHING
    # Its own feed is a feed it may write.
    own = add(server, f"user:{bob}", activity(bob, to=[f"user:{bob}"]), user_token(bob))
    assert own.status_code == 201, own.text


def test_to_entry_carrying_a_feed_token_is_authorised_by_that_token(
    server: ServerProcess, db: Any, uid: str
) -> None:
    bob, raid = f"{uid}bob", f"raid:{uid}"
    writes = token({"resource": "feed", "action": "write", "feed_id": f"raid{uid}"})
    reads = token({"resource": "feed", "action": "read", "feed_id": f"raid{uid}"})
    elsewhere = token({"resource": "feed", "action": "write", "feed_id": f"raid{uid}x"})
    forged = token({"resource": "*", "action": "*", "feed_id": "*"})[:-2] + "xx"
    for bad in (reads, elsewhere, forged, "not-a-jwt"):
        entry = f"{raid} {bad}"
        refused = add(server, f"user:{bob}", activity(bob, to=[entry]), user_token(bob))
        assert_refused(refused, 403, 17, "to")
    assert held_anywhere(db, [f"user:{bob}", raid]) == NOTHING
    ok = add(server, f"user:{bob}", activity(bob, to=[f"{raid} {writes}"]), user_token(bob))
    assert ok.status_code == 201, ok.text
    assert ok.json()["to"] == [raid]  # stored and answered bare
    assert ids(server, raid) == [ok.json()["id"]]


def test_sdk_feed_tokens_authorise_to_feeds_and_a_feed_scoped_token_alone_does_not(
    client: StreamClient, server: ServerProcess, db: Any, uid: str
) -> None:
    feed = client.feed("user", uid)
    added = feed.add_activity(activity(uid, to=[f"raid:{uid}", f"timeline:{uid}"]))
    assert added["to"] == [f"raid:{uid}", f"timeline:{uid}"]
    assert ids(server, f"raid:{uid}") == [added["id"]]
    batch = feed.add_activities([activity(uid, object="b", to=[f"raid:{uid}b"])])
    assert ids(server, f"raid:{uid}b") == [batch["activities"][0]["id"]]
    # The same request without the SDK's feed tokens: the feed's own scoped token does not
    # allow writing other feeds.
    scoped = feed.create_scope_token("feed", "write")
    bare = add(server, f"user:{uid}", activity(uid, to=[f"raid:{uid}c"]), scoped)
    assert_refused(bare, 403, 17, "to")
    assert held_anywhere(db, [f"raid:{uid}c"]) == NOTHING


def test_batch_add_is_bounded_in_count_and_size(server: ServerProcess, db: Any, uid: str) -> None:
    feed = f"user:{uid}"
    many = {"activities": [activity(uid, object=f"o{i}") for i in range(101)]}
    assert_refused(add(server, feed, many), 400, 4, "activities")
    assert held_anywhere(db, [feed]) == NOTHING
    big = {"activities": [activity(uid, object=f"o{i}", pad="x" * 9000) for i in range(60)]}
    assert_refused(add(server, feed, big), 413, 4, "activities")
    assert held_anywhere(db, [feed]) == NOTHING
    ok = add(server, feed, {"activities": many["activities"][:100]})
    assert ok.status_code == 201, ok.text
    assert len(ok.json()["activities"]) == 100


# --- no far-future times -----------------------------------------------------------


def test_time_far_in_the_future_is_refused(server: ServerProcess, db: Any, uid: str) -> None:
    feed = f"user:{uid}"
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    future = (now + dt.timedelta(seconds=3600)).isoformat()
    body = assert_refused(add(server, feed, activity(uid, time=future)), 400, 4, "time")
    assert body["exception"] == "InputException"
    far = "2100-01-01T00:00:00"
    batch = {"activities": [activity(uid, object="fine"), activity(uid, time=far)]}
    assert_refused(add(server, feed, batch), 400, 4, "activities[1].time")
    assert held_anywhere(db, [feed]) == NOTHING
    soon = (now + dt.timedelta(seconds=60)).isoformat()
    assert add(server, feed, activity(uid, time=soon)).status_code == 201


# --- bounded reads, indexed unfollows ---------------------------------------------


def test_read_offset_is_bounded(server: ServerProcess, uid: str) -> None:
    path = f"feed/user/{uid}/"
    assert_refused(call(server, "GET", path, params={"offset": 1001}), 400, 4, "offset")
    assert_refused(call(server, "GET", path, params={"offset": 100_000}), 400, 4, "offset")
    assert call(server, "GET", path, params={"offset": 1000}).status_code == 200


def test_unfollow_reads_only_the_entries_of_that_follow(
    server: ServerProcess, db: Any, uid: str
) -> None:
    """What an unfollow deletes is found by an index on (feed, origin, ...): the store examines
    only the followed feed's entries, not every entry of the follower feed."""
    timeline, star = f"timeline:{uid}", f"user:{uid}star"
    for chunk in range(3):  # 300 entries of the timeline that came from elsewhere
        batch = [activity(uid, object=f"o{chunk}-{i}") for i in range(100)]
        assert add(server, timeline, {"activities": batch}).status_code == 201
    assert add(server, star, {"activities": [activity(uid, object="s1")]}).status_code == 201
    follow = call(server, "POST", f"feed/timeline/{uid}/follows/", json={"target": star})
    assert follow.status_code == 201, follow.text

    plan = db["feed_entries"].find({"feed": timeline, "origin": star}).explain()
    stats = plan["executionStats"]
    assert stats["nReturned"] == 1
    assert stats["totalDocsExamined"] == 1, plan["queryPlanner"]["winningPlan"]

    gone = call(server, "DELETE", f"feed/timeline/{uid}/follows/user:{uid}star/")
    assert gone.status_code == 200, gone.text
    assert len(ids(server, timeline)) == 100  # the page; the timeline's own entries stay
    assert db["feed_entries"].count_documents({"feed": timeline}) == 300
