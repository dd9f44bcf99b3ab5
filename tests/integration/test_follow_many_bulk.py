"""The bulk paths of `follow_many/` and `unfollow_many/` through stream-python's
`client.follow_many` / `client.unfollow_many`, on a node with small bounds: a source follows at
most 4 feeds, a feed with more than 3 followers is a pull feed. What is stored right after each
call: the follows, the chunk memberships, the follower counter, the holes; nothing of a refused
batch; repeats change nothing; keep_history both ways on a pull feed."""

from __future__ import annotations

import time
from typing import Any

import pytest
import stream
from pymongo import MongoClient
from stream.client import StreamClient
from stream.exceptions import InputException

from harness.pool import ServerPool
from tests.integration.fanout_support import SMALL
from tests.support import API_KEY, API_SECRET

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def node(pool: ServerPool, mongo: MongoClient[Doc]) -> tuple[StreamClient, Any]:
    server = pool.get(SMALL)
    return stream.connect(API_KEY, API_SECRET, base_url=server.base_url), mongo[server.database]


def stored(db: Any, target: str) -> dict[str, Any]:
    """What the store holds of `target`'s followers: follows, chunk members, counter, holes."""
    meta = db["feeds"].find_one({"_id": target}) or {}
    members = [
        m["s"] for c in db["follower_chunks"].find({"target": target}) for m in c.get("m", ())
    ]
    return {
        "follows": sorted(d["source"] for d in db["follows"].find({"target": target})),
        "members": sorted(members),
        "followers": meta.get("followers", 0),
        "holes": len(meta.get("holes", [])),
        "slots": meta.get("slots", 0),
    }


def ids(client: StreamClient, feed: str) -> list[str]:
    slug, user_id = feed.split(":")
    return [a["id"] for a in client.feed(slug, user_id).get(limit=25)["results"]]


def test_a_batch_past_max_following_stores_nothing(
    node: tuple[StreamClient, Any], uid: str
) -> None:
    client, db = node
    fan = f"timeline:{uid}-fan"
    client.follow_many([{"source": fan, "target": f"user:{uid}-{i}"} for i in range(3)])
    batch = [
        {"source": f"timeline:{uid}-other", "target": f"user:{uid}-x"},
        {"source": fan, "target": f"user:{uid}-x"},
        {"source": fan, "target": f"user:{uid}-y"},  # the 5th feed of `fan`: past 4
    ]
    with pytest.raises(InputException):
        client.follow_many(batch)
    for target in (f"user:{uid}-x", f"user:{uid}-y"):
        assert stored(db, target) == {
            "follows": [], "members": [], "followers": 0, "holes": 0, "slots": 0,
        }  # fmt: skip
    assert db["follows"].count_documents({"source": fan}) == 3
    client.follow_many(batch[:2])  # the 4th is allowed
    assert db["follows"].count_documents({"source": fan}) == 4


def test_repeats_change_nothing_and_counters_are_right_at_once(
    node: tuple[StreamClient, Any], uid: str
) -> None:
    client, db = node
    target = f"user:{uid}-t"
    fans = [f"timeline:{uid}-{i}" for i in range(3)]
    client.follow_many([{"source": f, "target": target} for f in fans + fans[:1]])
    assert stored(db, target) == {
        "follows": fans, "members": fans, "followers": 3, "holes": 0, "slots": 3,
    }  # fmt: skip
    client.follow_many([{"source": f, "target": target} for f in fans])  # a repeat
    assert stored(db, target)["members"] == fans
    assert stored(db, target)["followers"] == 3
    # Unfollow two (one named twice) and one feed that never followed.
    client.unfollow_many([
        {"source": fans[0], "target": target},
        {"source": fans[1], "target": target},
        {"source": fans[0], "target": target},
        {"source": f"timeline:{uid}-never", "target": target},
    ])  # fmt: skip
    assert stored(db, target) == {
        "follows": fans[2:], "members": fans[2:], "followers": 1, "holes": 2, "slots": 3,
    }  # fmt: skip
    client.unfollow_many([{"source": fans[0], "target": target}])  # a repeat
    assert stored(db, target)["followers"] == 1
    # New follows take the freed slots first.
    client.follow_many([{"source": f, "target": target} for f in fans[:2]])
    assert stored(db, target) == {
        "follows": fans, "members": fans, "followers": 3, "holes": 0, "slots": 3,
    }  # fmt: skip


def wait_mode(db: Any, feed: str, mode: str) -> None:
    for _ in range(200):
        if (db["feeds"].find_one({"_id": feed}) or {}).get("mode") == mode:
            return
        time.sleep(0.05)
    raise AssertionError(f"{feed} never became {mode}")


def test_unfollow_many_of_a_pull_feed_keeps_history_or_not(
    node: tuple[StreamClient, Any], uid: str
) -> None:
    client, db = node
    celeb = f"user:{uid}-celeb"
    fans = [f"timeline:{uid}-{i}" for i in range(5)]
    client.follow_many([{"source": f, "target": celeb} for f in fans], activity_copy_limit=0)
    wait_mode(db, celeb, "pull")  # more than 3 followers
    post = client.feed("user", f"{uid}-celeb").add_activity(
        {"actor": "a", "verb": "post", "object": "o:1"}
    )
    assert all(ids(client, f) == [post["id"]] for f in fans)  # merged in at read time
    assert db["feed_entries"].count_documents({"origin": celeb}) == 0  # nothing copied
    client.unfollow_many([
        {"source": fans[0], "target": celeb, "keep_history": True},
        {"source": fans[1], "target": celeb, "keep_history": False},
    ])  # fmt: skip
    assert ids(client, fans[0]) == [post["id"]]  # copied at the unfollow: it stays
    assert ids(client, fans[1]) == []
    assert ids(client, fans[2]) == [post["id"]]  # the others still merge it in
    assert stored(db, celeb)["followers"] == 3
    assert sorted(stored(db, celeb)["members"]) == fans[2:]
