"""Stream's npm SDK (`getstream`, tests/js/stream_sdk.mjs) against Tidings: it follows with
`POST feed/{slug}/{id}/following/`, lists with `GET …/following/` and unfollows with
`DELETE …/following/{target}/`. The cases are those of its own suite's `follow_list.js` that
need no users or enrichment; the follows are made with the server-side client, the reads with
alice's user token, as in that suite."""

from __future__ import annotations

from typing import Any

from tests.integration.rest_calls import stream_js as run_sdk
from tests.support import ServerProcess


def on(feed: str, method: str, *args: Any, user: str | None = None) -> dict[str, Any]:
    return {"user": user, "feed": feed.split(":"), "method": method, "args": list(args)}


def ok(result: Any) -> Any:
    assert result["ok"], result
    return result["result"]


def test_follow_list_cases_of_streams_js_suite(server: ServerProcess, uid: str) -> None:
    alice, bob, carl, dave = (f"{name}-{uid}" for name in ("alice", "bob", "carl", "dave"))
    results = run_sdk(server, [
        # Read followers: three timelines follow alice's user feed at once.
        [on(f"timeline:{who}", "follow", "user", alice) for who in (bob, carl, dave)],
        on(f"user:{alice}", "followers", user=alice),
        # Read followings: alice's timeline follows three user feeds at once.
        [on(f"timeline:{alice}", "follow", "user", who) for who in (bob, carl, dave)],
        on(f"timeline:{alice}", "following", user=alice),
        on(f"timeline:{alice}", "following",
           {"filter": [f"user:{bob}", f"user:{uid}-x"]}, user=alice),
        # Follow stats (its third case: the slugs filter).
        on(f"timeline:{alice}", "follow", "timeline", dave),
        on(f"user:{bob}", "follow", "timeline", alice),
        on(f"timeline:{carl}", "follow", "timeline", alice),
        on(f"timeline:{alice}", "followStats", user=alice),
        on(f"timeline:{alice}", "followStats",
           {"followerSlugs": ["timeline", "user"], "followingSlugs": ["timeline"]}, user=alice),
        # Unfollow through `following/{target}/`.
        on(f"timeline:{alice}", "unfollow", "user", carl),
        on(f"timeline:{alice}", "following"),
    ])  # fmt: skip
    assert all(r["ok"] for r in results[0]), results[0]
    followers = ok(results[1])["results"]
    assert sorted(r["feed_id"] for r in followers) == sorted(
        f"timeline:{who}" for who in (bob, carl, dave)
    )
    assert all(r["ok"] for r in results[2]), results[2]
    following = ok(results[3])["results"]
    assert sorted(r["target_id"] for r in following) == sorted(
        f"user:{who}" for who in (bob, carl, dave)
    )
    assert [r["target_id"] for r in ok(results[4])["results"]] == [f"user:{bob}"]
    for result in results[5:8]:
        ok(result)
    stats = ok(results[8])["results"]
    assert (stats["following"]["count"], stats["followers"]["count"]) == (4, 2)
    assert stats["following"]["feed"] == f"timeline:{alice}"
    sliced = ok(results[9])["results"]
    assert (sliced["following"]["count"], sliced["followers"]["count"]) == (1, 2)
    ok(results[10])
    assert sorted(r["target_id"] for r in ok(results[11])["results"]) == sorted(
        [f"user:{bob}", f"user:{dave}", f"timeline:{dave}"]
    )


def test_a_follow_through_following_copies_and_an_unfollow_takes_back(
    server: ServerProcess, uid: str
) -> None:
    activity = {"actor": uid, "verb": "post", "object": "o"}
    results = run_sdk(server, [
        on(f"user:{uid}", "addActivity", activity),
        on(f"timeline:{uid}", "follow", "user", uid, {"limit": 10}),
        on(f"timeline:{uid}", "get", {"limit": 5}),
        on(f"timeline:{uid}", "unfollow", "user", uid),
        on(f"timeline:{uid}", "get", {"limit": 5}),
    ])  # fmt: skip
    added = ok(results[0])
    ok(results[1])
    held = ok(results[2])["results"]
    assert [(a["id"], a["origin"]) for a in held] == [(added["id"], f"user:{uid}")]
    ok(results[3])
    assert ok(results[4])["results"] == []


def test_removal_cases_of_streams_js_permissions_suite(server: ServerProcess, uid: str) -> None:
    """Its `permissions.js`: alice (user token) removing its UUIDv1 id, unknown here, from her
    own feed is fine; from bob's feed it is refused."""
    alice, bob = f"alice-{uid}", f"bob-{uid}"
    some_activity_id = "f9969ca8-e659-11e8-801f-e4a47194940e"
    own, others = run_sdk(server, [
        on(f"user:{alice}", "removeActivity", some_activity_id, user=alice),
        on(f"user:{bob}", "removeActivity", some_activity_id, user=alice),
    ])  # fmt: skip
    assert ok(own)["removed"] == some_activity_id
    assert (others["ok"], others["status"]) == (False, 403)
