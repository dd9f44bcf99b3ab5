"""`follow_many/` and `unfollow_many/` through stream-python's `client.follow_many` and
`client.unfollow_many`, and single follows of one feed at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from stream.client import StreamClient
from stream.exceptions import FeedConfigException, InputException, NotAllowedException

from harness.common import token
from tests.support import API_KEY, ServerProcess


def ids(feed: Any, **params: Any) -> list[str]:
    return [a["id"] for a in feed.get(**params)["results"]]


def followers(client: StreamClient, feed: str, limit: int = 100) -> set[str]:
    slug, user_id = feed.split(":")
    rows = client.feed(slug, user_id).followers(limit=limit)["results"]
    return {r["feed_id"] for r in rows}


def test_follow_many_follows_and_copies_the_limit(client: StreamClient, uid: str) -> None:
    artist = client.feed("user", f"{uid}-artist")
    added = [
        artist.add_activity({"actor": "a", "verb": "post", "object": f"o:{i}"}) for i in range(3)
    ]
    fans = [f"timeline:{uid}-fan{i}" for i in range(5)]
    answer = client.follow_many(
        [{"source": fan, "target": f"user:{uid}-artist"} for fan in fans], activity_copy_limit=2
    )
    assert "duration" in answer
    assert followers(client, f"user:{uid}-artist") == set(fans)
    newest_two = [a["id"] for a in added[::-1][:2]]
    for fan in fans:
        assert ids(client.feed("timeline", fan.split(":")[1])) == newest_two
    # a repeat changes nothing
    client.follow_many([{"source": fans[0], "target": f"user:{uid}-artist"}])
    assert len(followers(client, f"user:{uid}-artist")) == 5
    # and a later activity reaches every fan
    later = artist.add_activity({"actor": "a", "verb": "post", "object": "o:later"})
    for fan in fans:
        feed = client.feed("timeline", fan.split(":")[1])
        for _ in range(100):
            if later["id"] in ids(feed):
                break
    assert all(later["id"] in ids(client.feed("timeline", f.split(":")[1])) for f in fans)


def test_a_bad_entry_refuses_the_whole_batch(client: StreamClient, uid: str) -> None:
    good = {"source": f"timeline:{uid}-a", "target": f"user:{uid}-t"}
    for bad in (
        {"source": f"timeline:{uid}-b", "target": "nogroup:x"},
        {"source": f"timeline:{uid}-b"},
        {"source": f"user:{uid}-t", "target": f"user:{uid}-t"},
        "not an object",
    ):
        with pytest.raises((InputException, FeedConfigException)):
            client.follow_many([good, bad])
    assert followers(client, f"user:{uid}-t") == set()
    with pytest.raises(InputException):
        client.follow_many([good], activity_copy_limit=-1)
    assert followers(client, f"user:{uid}-t") == set()


def test_follow_many_is_bounded(client: StreamClient, server: ServerProcess, uid: str) -> None:
    limit = 2500  # fanout.max_follow_many, Stream's documented bound
    many = [{"source": f"timeline:{uid}-{i}", "target": f"user:{uid}-t"} for i in range(limit + 1)]
    with pytest.raises(InputException):
        client.follow_many(many)
    assert followers(client, f"user:{uid}-t") == set()


def test_follow_many_needs_the_server_token(server: ServerProcess, uid: str) -> None:
    user_token = token({"resource": "*", "action": "*", "feed_id": f"timeline{uid}"})
    rsp = requests.post(
        f"{server.url}/api/v1.0/follow_many/",
        params={"api_key": API_KEY},
        json=[{"source": f"timeline:{uid}", "target": f"user:{uid}-t"}],
        headers={"Authorization": user_token, "stream-auth-type": "jwt"},
        timeout=10,
    )
    assert rsp.status_code == 403, rsp.text
    assert rsp.json()["exception"] == NotAllowedException.__name__


def test_unfollow_many_keeps_or_drops_history(client: StreamClient, uid: str) -> None:
    target = f"user:{uid}-t"
    post = client.feed("user", f"{uid}-t").add_activity({"actor": "a", "verb": "v", "object": "o"})
    fans = [f"timeline:{uid}-k", f"timeline:{uid}-d"]
    client.follow_many([{"source": f, "target": target} for f in fans])
    answer = client.unfollow_many([
        {"source": fans[0], "target": target, "keep_history": True},
        {"source": fans[1], "target": target, "keep_history": False},
    ])  # fmt: skip
    assert "duration" in answer
    assert followers(client, target) == set()
    assert ids(client.feed("timeline", f"{uid}-k")) == [post["id"]]
    assert ids(client.feed("timeline", f"{uid}-d")) == []
    with pytest.raises(FeedConfigException):  # as a single follow of an unknown group
        client.unfollow_many([{"source": fans[0], "target": "nogroup:x"}])


def test_concurrent_single_follows_of_one_feed_all_count(client: StreamClient, uid: str) -> None:
    """Single follows batched per feed: each one is stored once, chunked and counted."""
    feed = client.feed("user", f"{uid}-hot")
    fans = [client.feed("timeline", f"{uid}-c{i}") for i in range(60)]
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda f: f.follow("user", f"{uid}-hot"), fans + fans[:10]))
    assert len(followers(client, f"user:{uid}-hot")) == 60
    post = feed.add_activity({"actor": "a", "verb": "v", "object": "o"})
    for fan in (fans[0], fans[-1]):
        for _ in range(200):
            if post["id"] in ids(fan):
                break
        assert post["id"] in ids(fan)
