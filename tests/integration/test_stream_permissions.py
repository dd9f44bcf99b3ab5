"""Stream's own permission cases (its JS suites test/integration/cloud/permissions.js and
follow_list.js), played with Stream's npm SDK `getstream` as a browser app holds it (one user
token per user), follows included (the SDK's `following/` spelling). Also what a user token may
do with its own feeds and that it acts only as its own user (no `SU:<other>` actor).

Not played here: users (`user(...).create/update`: tests/integration/test_users.py), reactions
and enrichment (`enrich/feed/`, the SDK's default read with a user token: the reads here pass
`enrich: false`), which this server does not serve yet.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.common import SERVER_TOKEN, token
from harness.pool import ServerPool
from tests.integration.realtime_clients import PySubscriber
from tests.integration.rest_calls import Api, activity, feed_path, stream_js, when
from tests.support import ROOT, ServerProcess

SUITES_CONFIG = ROOT / "tests/js/stream_suites.toml"
SOME_ACTIVITY_ID = "f9969ca8-e659-11e8-801f-e4a47194940e"  # permissions.js's
Doc = dict[str, Any]


def refused(result: Doc) -> bool:
    error = result.get("error")
    return (
        result.get("status") == 403
        and isinstance(error, dict)
        and error.get("exception") == "NotAllowedException"
    )


@pytest.fixture
def names(uid: str) -> dict[str, str]:
    return {name: f"{uid}{name}" for name in ("alice", "bob", "carl", "dave")}


def test_permissions_js_cases_with_the_npm_sdk(
    server: ServerProcess, names: dict[str, str]
) -> None:
    alice, bob = names["alice"], names["bob"]
    at = when(1)
    calls = [
        # alice impersonates bob (the SDK sends bob's currentUser as "SU:<bob>")
        {"user": alice, "feed": ["user"], "method": "addActivity",
         "args": [{"actor": {"$user": bob}, "verb": "post", "object": "I love Alice",
                   "foreign_id": "fid:123", "time": at}]},
        {"user": alice, "feed": ["timeline", bob], "method": "get", "args": [{"enrich": False}]},
        {"user": alice, "feed": ["notification"], "method": "get",
         "args": [{"mark_seen": True, "mark_read": True, "enrich": False}]},
        {"user": alice, "feed": ["timeline", bob], "method": "addActivity",
         "args": [{"verb": "post", "object": "I'm writing this directly on your timeline"}]},
        {"user": alice, "feed": ["user"], "method": "addActivity",
         "args": [{"verb": "post", "object": "by using to targets", "to": ["timeline:123"]}]},
        {"user": alice, "feed": ["timeline", bob], "method": "followers"},
        {"user": alice, "feed": ["user", bob], "method": "removeActivity",
         "args": [SOME_ACTIVITY_ID]},
        # and what alice may: add as herself (the SDK's default actor) or a plain actor
        {"user": alice, "feed": ["user"], "method": "addActivity",
         "args": [{"verb": "post", "object": "as me"}]},
        {"user": alice, "feed": ["user"], "method": "addActivity",
         "args": [{"actor": {"$user": alice}, "verb": "post", "object": "as me again"}]},
        {"user": alice, "feed": ["user"], "method": "addActivity",
         "args": [{"actor": "alice's shop", "verb": "post", "object": "plain"}]},
        # alice removes an unknown id (Stream's ids are UUIDv1) from her own feed: 200
        {"user": alice, "feed": ["user"], "method": "removeActivity", "args": [SOME_ACTIVITY_ID]},
        # bob's own timeline follows alice with bob's token; alice may not make bob's feeds
        # follow or unfollow her, nor list what bob's feeds follow
        {"user": bob, "feed": ["timeline"], "method": "follow", "args": ["user", alice]},
        {"user": alice, "feed": ["timeline", bob], "method": "follow", "args": ["user", alice]},
        {"user": alice, "feed": ["timeline", bob], "method": "unfollow", "args": ["user", alice]},
        {"user": alice, "feed": ["user", bob], "method": "following"},
    ]  # fmt: skip
    results = stream_js(server, calls)
    impersonated, read_bob, mark_own, post_bob, to_other, bobs_followers, remove_bob = results[:7]
    assert refused(impersonated), impersonated
    assert refused(read_bob), read_bob
    assert mark_own["ok"], mark_own
    assert refused(post_bob), post_bob
    assert refused(to_other), to_other
    assert refused(bobs_followers), bobs_followers
    assert refused(remove_bob), remove_bob
    as_herself, removed_unknown, bob_follows = results[7:10], results[10], results[11]
    assert all(r["ok"] for r in as_herself), as_herself
    assert removed_unknown["ok"] and bob_follows["ok"], (removed_unknown, bob_follows)
    assert all(refused(r) for r in results[12:]), results[12:]
    assert [r["result"]["actor"] for r in as_herself] == [
        f"SU:{alice}",
        f"SU:{alice}",
        "alice's shop",
    ]
    server_api = Api(server, SERVER_TOKEN)
    stored = server_api.ok("GET", feed_path(f"user:{alice}"))["results"]
    assert sorted(a["object"] for a in stored) == ["as me", "as me again", "plain"]
    # bob's timeline holds what its follow of alice copied, and nothing alice wrote there
    assert sorted(server_api.ids(f"timeline:{bob}")) == sorted(a["id"] for a in stored)
    assert server_api.ids("timeline:123") == []
    assert server_api.following(f"timeline:{bob}") == [f"user:{alice}"]


def test_follow_list_js_cases(server: ServerProcess, names: dict[str, str]) -> None:
    alice, bob, carl, dave = (names[n] for n in ("alice", "bob", "carl", "dave"))
    follows = [  # each with its own user token, through the SDK's following/
        *({"user": f, "feed": ["timeline"], "method": "follow", "args": ["user", alice]}
          for f in (bob, carl, dave)),
        *({"user": alice, "feed": ["timeline"], "method": "follow", "args": target.split(":")}
          for target in (f"user:{bob}", f"user:{carl}", f"timeline:{dave}")),
        {"user": bob, "feed": ["user"], "method": "follow", "args": ["timeline", alice]},
        {"user": carl, "feed": ["timeline"], "method": "follow", "args": ["timeline", alice]},
        {"user": alice, "feed": ["timeline"], "method": "following"},
    ]  # fmt: skip
    done = stream_js(server, follows)
    assert all(r["ok"] for r in done), done
    assert len(done[-1]["result"]["results"]) == 3
    calls = [
        {"user": alice, "feed": ["user"], "method": "followers"},
        {"user": alice, "feed": ["timeline"], "method": "followStats"},
        {"user": alice, "feed": ["timeline"], "method": "followStats",
         "args": [{"followerSlugs": ["timeline"], "followingSlugs": ["timeline"]}]},
        {"user": alice, "feed": ["timeline"], "method": "followStats",
         "args": [{"followerSlugs": ["timeline", "user"], "followingSlugs": ["timeline"]}]},
        {"user": alice, "feed": ["timeline"], "method": "followStats",
         "args": [{"followerSlugs": ["news"], "followingSlugs": ["news"]}]},
    ]  # fmt: skip
    results = stream_js(server, calls)
    assert all(r["ok"] for r in results), results
    followers, stats, by_timeline, by_two, by_news = (r["result"] for r in results)
    assert len(followers["results"]) == 3
    counts = [(s["results"]["following"]["count"], s["results"]["followers"]["count"])
              for s in (stats, by_timeline, by_two, by_news)]  # fmt: skip
    assert counts == [(3, 2), (1, 1), (1, 2), (0, 0)]
    assert stats["results"]["following"]["feed"] == f"timeline:{alice}"


def test_a_user_token_follows_unfollows_and_marks_its_own_feeds(
    server: ServerProcess, uid: str
) -> None:
    mallory, alice = f"{uid}mallory", f"{uid}alice"
    server_api = Api(server, SERVER_TOKEN)
    posted = server_api.ok("POST", feed_path(f"user:{alice}"), activity(f"a:{uid}"))["id"]
    own = Api(server, {"user_id": mallory})
    own.ok("POST", feed_path(f"timeline:{mallory}", "follows/"), {"target": f"user:{alice}"})
    assert server_api.ids(f"timeline:{mallory}") == [posted]
    assert own.following(f"timeline:{mallory}") == [f"user:{alice}"]
    own.ok("DELETE", feed_path(f"timeline:{mallory}", f"follows/user:{alice}/"))
    assert own.following(f"timeline:{mallory}") == []
    assert server_api.ids(f"timeline:{mallory}") == []
    server_api.ok("POST", feed_path(f"notification:{mallory}"), activity(f"n:{uid}"))
    marked = own.ok("GET", feed_path(f"notification:{mallory}"), mark_seen="true")
    assert marked["unseen"] == 1
    assert own.ok("GET", feed_path(f"notification:{mallory}"))["unseen"] == 0
    # Another user's feeds stay out of reach.
    own.refused("POST", feed_path(f"timeline:{alice}", "follows/"), {"target": f"user:{mallory}"})
    own.refused("GET", feed_path(f"timeline:{alice}", "followers/"))
    own.refused("POST", feed_path(f"timeline:{mallory}"), activity(f"t:{uid}"))
    assert server_api.following(f"timeline:{alice}") == []


def test_a_token_naming_a_user_adds_only_as_that_user(server: ServerProcess, uid: str) -> None:
    alice, bob = f"{uid}alice", f"{uid}bob"
    as_alice = Api(server, {"user_id": alice})
    as_alice.refused("POST", feed_path(f"user:{alice}"),
                     {"actor": f"SU:{bob}", "verb": "post", "object": "o"})  # fmt: skip
    batch = {
        "activities": [
            {"actor": f"SU:{alice}", "verb": "post", "object": "fine"},
            {"actor": f"SU:{bob}", "verb": "post", "object": "not fine"},
        ]
    }
    answer = as_alice.refused("POST", feed_path(f"user:{alice}"), batch)
    assert "activities[1].actor" in answer["exception_fields"], answer
    # A raid member's scoped user token acts as its user, too.
    member = Api(server, {"resource": "*", "action": "*", "feed_id": f"raid{uid}",
                          "user_id": alice})  # fmt: skip
    member.refused("POST", feed_path(f"raid:{uid}"),
                   {"actor": f"SU:{bob}", "verb": "hit", "object": "boss"})  # fmt: skip
    member.ok("POST", feed_path(f"raid:{uid}"), {"actor": f"SU:{alice}", "verb": "hit",
                                                 "object": "boss"})  # fmt: skip
    server_api = Api(server, SERVER_TOKEN)
    assert server_api.ids(f"user:{alice}") == []
    assert len(server_api.ids(f"raid:{uid}")) == 1
    # A server token may name any actor.
    server_api.ok("POST", feed_path(f"user:{alice}"),
                  {"actor": f"SU:{bob}", "verb": "post", "object": "o"})  # fmt: skip


def test_client_permissions_open_other_users_feeds_of_a_group_as_configured(
    pool: ServerPool, server: ServerProcess, names: dict[str, str]
) -> None:
    """`client_permissions` (tests/js/stream_suites.toml: the app of Stream's JS suites): bob's
    user token reads alice's `user` feed (global_read) but neither writes it nor lists its
    follows; it writes alice's `notification` feed (global_read_write) directly, by `to` and by
    a reaction's target_feeds, but deletes nothing of it; alice's timeline stays private. On
    a server of the defaults (every group private) the same reads and writes are refused."""
    alice, bob = names["alice"], names["bob"]
    shared = pool.get({"TIDINGS_CONFIG": str(SUITES_CONFIG)})
    Api(shared, SERVER_TOKEN).ok("POST", feed_path(f"user:{alice}"), activity("a1"))
    as_bob = Api(shared, {"user_id": bob})
    assert [a["foreign_id"] for a in as_bob.ok("GET", feed_path(f"user:{alice}"))["results"]] == [
        "a1"
    ]
    as_bob.refused("GET", feed_path(f"timeline:{alice}"))
    as_bob.refused("POST", feed_path(f"user:{alice}"), {"actor": bob, "verb": "v", "object": "o"})
    as_bob.refused("GET", feed_path(f"user:{alice}", "followers/"))
    note = {"actor": bob, "verb": "poke", "object": "o"}
    added = as_bob.ok("POST", feed_path(f"notification:{alice}"), note)
    as_bob.ok("POST", feed_path(f"user:{bob}"), {**note, "to": [f"notification:{alice}"]})
    as_bob.refused("POST", feed_path(f"user:{bob}"), {**note, "to": [f"timeline:{alice}"]})
    mine = as_bob.ok("POST", feed_path(f"user:{bob}"), note)
    reaction = {"kind": "like", "activity_id": mine["id"]}
    as_bob.ok("POST", "reaction/", {**reaction, "target_feeds": [f"notification:{alice}"]})
    as_bob.refused("POST", "reaction/", {**reaction, "target_feeds": [f"timeline:{alice}"]})
    as_bob.refused("DELETE", feed_path(f"notification:{alice}", f"{added['id']}/"))
    read = Api(shared, {"user_id": alice}).ok("GET", feed_path(f"notification:{alice}"))
    assert sum(len(group["activities"]) for group in read["results"]) == 3
    private = Api(server, {"user_id": bob})
    private.refused("GET", feed_path(f"user:{alice}"))
    private.refused("POST", feed_path(f"notification:{alice}"), note)


async def test_a_user_socket_watches_what_client_permissions_let_it_read(
    pool: ServerPool, names: dict[str, str]
) -> None:
    """The socket's subscribe asks what a REST read asks: bob's user token watches alice's
    `user` feed (global_read) and gets its adds, not her private timeline."""
    alice, bob = names["alice"], names["bob"]
    shared = pool.get({"TIDINGS_CONFIG": str(SUITES_CONFIG)})
    sub = PySubscriber()
    try:
        await sub.connect(shared.url, token({"user_id": bob}))
        assert (await sub.subscribe(f"user:{alice}"))["ok"] is True
        assert (await sub.subscribe(f"timeline:{alice}"))["ok"] is False
        added = Api(shared, SERVER_TOKEN).ok("POST", feed_path(f"user:{alice}"), activity("s1"))
        await sub.wait_for(
            lambda e: e["feed"] == f"user:{alice}" and [a["id"] for a in e["new"]] == [added["id"]],
            "alice's add on bob's socket",
        )
    finally:
        await sub.close()
