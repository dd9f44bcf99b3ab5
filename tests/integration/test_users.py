"""Stream's Users API (`user/`) against Tidings, through Stream's own SDKs: `stream-python`
server-side, the npm `getstream` with user tokens (its suites' profile.js and permissions.js
cases), and raw calls for what the SDKs cannot send wrong."""

from __future__ import annotations

from typing import Any

import pytest
from stream.client import StreamClient
from stream.exceptions import DoesNotExistException, InputException, StreamApiException

from harness.common import SERVER_TOKEN
from tests.integration.rest_calls import Api, stream_js
from tests.support import ServerProcess

Doc = dict[str, Any]


def public(answer: Doc) -> Doc:
    return {k: v for k, v in answer.items() if k != "duration"}


def call(user: str | None, method: str, *args: Any, on: list[Any]) -> Doc:
    return {"user": user, "method": method, "args": list(args), "on": on}


def test_add_get_update_delete_with_the_python_sdk(client: StreamClient, uid: str) -> None:
    added = client.users.add(uid, {"name": "Mike"})
    assert set(added) == {"id", "data", "created_at", "updated_at", "duration"}
    assert (added["id"], added["data"]) == (uid, {"name": "Mike"})
    assert added["created_at"] == added["updated_at"]
    got = client.users.get(uid)  # stream-python asks for `user//<id>/`
    assert public(got) == public(added)
    assert "followers_count" not in got
    updated = client.users.update(uid, {"changed": True})
    assert updated["data"] == {"changed": True}
    assert updated["created_at"] == added["created_at"]
    assert updated["updated_at"] > added["updated_at"]
    assert public(client.users.get(uid)) == public(updated)
    assert public(client.users.delete(uid)) == {}
    with pytest.raises(DoesNotExistException):
        client.users.get(uid)
    with pytest.raises(DoesNotExistException):
        client.users.delete(uid)
    with pytest.raises(DoesNotExistException):
        client.users.update(uid, {"again": 1})


def test_a_second_add_conflicts_and_get_or_create_answers_the_stored_user(
    client: StreamClient, uid: str, server: ServerProcess
) -> None:
    first = client.users.add(uid, {"v": 1})
    again = client.users.add(uid, {"v": 2}, get_or_create=True)
    assert public(again) == public(first)  # the stored user, its data unchanged
    with pytest.raises(InputException) as refused:
        client.users.add(uid, {"v": 3})
    assert refused.value.status_code == 409
    conflict = Api(server, SERVER_TOKEN).call("POST", "user/", {"id": uid, "data": {}})
    assert conflict.status_code == 409
    assert conflict.json()["exception"] == "InputException"
    assert client.users.get(uid)["data"] == {"v": 1}


def test_no_data_is_an_empty_object(client: StreamClient, uid: str) -> None:
    assert client.users.add(uid)["data"] == {}
    assert client.users.get(uid)["data"] == {}


def test_follow_counts_are_the_user_feeds_followers_and_the_timelines_follows(
    client: StreamClient, uid: str
) -> None:
    alice, bob, carl, dave = (f"{uid}{n}" for n in ("alice", "bob", "carl", "dave"))
    client.users.add(bob, {"name": "bob"})
    client.feed("timeline", alice).follow("user", bob)  # a follower of user:bob
    client.feed("user", alice).follow("user", carl)  # not bob's
    client.feed("timeline", bob).follow("user", alice)  # bob's timeline follows
    client.feed("timeline", bob).follow("user", dave)
    client.feed("notification", bob).follow("user", alice)  # not the timeline: not counted
    client.feed("timeline", carl).follow("timeline", bob)  # follows bob's timeline, not his user
    profile = client.users.get(bob, with_follow_counts=True)
    assert (profile["followers_count"], profile["following_count"]) == (1, 2)
    assert profile["data"] == {"name": "bob"}
    plain = client.users.get(bob, with_follow_counts=False)
    assert "followers_count" not in plain


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "has space", "data": {}}, "id"),
        ({"id": "!abc!", "data": {}}, "id"),
        ({"id": "x" * 256, "data": {}}, "id"),
        ({"data": {}}, "id"),
        ({"id": "ok", "data": "some string"}, "data"),
        ({"id": "ok", "data": [1]}, "data"),
    ],
)
def test_bad_input_answers_input_exception_and_stores_nothing(
    server: ServerProcess, client: StreamClient, uid: str, body: Doc, field: str
) -> None:
    if body.get("id") == "ok":
        body = {**body, "id": uid}
    answer = Api(server, SERVER_TOKEN).call("POST", "user/", body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert (error["exception"], error["code"]) == ("InputException", 4)
    assert field in error["exception_fields"]
    with pytest.raises(DoesNotExistException):
        client.users.get(uid)


def test_data_over_the_bound_is_refused(
    server: ServerProcess, client: StreamClient, uid: str
) -> None:
    big = {"bio": "x" * 10_300}
    answer = Api(server, SERVER_TOKEN).call("POST", "user/", {"id": uid, "data": big})
    assert answer.status_code == 413
    assert answer.json()["exception"] == "InputException"
    client.users.add(uid)
    with pytest.raises(StreamApiException):
        client.users.update(uid, big)
    assert client.users.get(uid)["data"] == {}


def test_profile_story_of_streams_js_suite(server: ServerProcess, uid: str) -> None:
    """profile.js with the npm SDK and user tokens: getOrCreate, profile, 409, update, follow
    counts of another user, string data refused, delete, and no deleting another user."""
    alice, bob = f"{uid}alice", f"{uid}bob"
    alice_data, bob_data = {"name": "Alice", "likes": "cats"}, {"name": "Bob", "likes": "dogs"}
    new_bob = {"name": "Bob", "hates": "dogs"}
    results = stream_js(server, [
        call(alice, "get", on=["user", alice]),
        call(alice, "getOrCreate", alice_data, on=["currentUser"]),
        call(alice, "profile", on=["user", alice]),
        call(alice, "create", alice_data, on=["user", alice]),
        call(bob, "getOrCreate", bob_data, on=["currentUser"]),
        call(bob, "getOrCreate", new_bob, on=["currentUser"]),
        call(bob, "update", new_bob, on=["user", bob]),
        [
            {"user": alice, "feed": ["timeline", alice], "method": "follow", "args": ["user", bob]},
            {"user": bob, "feed": ["timeline", bob], "method": "follow", "args": ["user", alice]},
            {"user": bob, "feed": ["notification", bob], "method": "follow",
             "args": ["user", alice]},
        ],
        call(alice, "profile", on=["user", bob]),
        call(alice, "update", "some string", on=["user", alice]),
        call(alice, "delete", on=["user", bob]),
        call(alice, "delete", on=["user", alice]),
        call(alice, "get", on=["user", alice]),
    ])  # fmt: skip
    assert results[0]["status"] == 404
    created = results[1]["result"]
    assert set(created) == {"id", "data", "created_at", "updated_at"}  # `full`, less duration
    assert (created["id"], created["data"]) == (alice, alice_data)
    profile = results[2]["result"]
    assert (profile["followers_count"], profile["following_count"]) == (0, 0)
    assert results[3]["status"] == 409
    assert results[5]["result"] == results[4]["result"]  # getOrCreate of an existing user
    updated = results[6]["result"]
    assert updated["data"] == new_bob
    assert updated["updated_at"] != results[5]["result"]["updated_at"]
    assert all(r["ok"] for r in results[7]), results[7]
    bobs = results[8]["result"]
    assert (bobs["data"], bobs["followers_count"], bobs["following_count"]) == (new_bob, 1, 1)
    assert results[9]["status"] == 400
    assert results[10]["status"] == 403
    assert results[11]["ok"], results[11]
    assert results[12]["status"] == 404


def test_a_user_token_manages_only_its_own_user(server: ServerProcess, uid: str) -> None:
    """permissions.js: alice may not create, update or delete another user; she reads any."""
    alice, bob = f"{uid}alice", f"{uid}bob"
    server_side = Api(server, SERVER_TOKEN)
    server_side.ok("POST", "user/", {"id": bob, "data": {"name": "bob"}})
    results = stream_js(server, [
        call(alice, "create", {}, on=["user", f"{uid}someone"]),
        call(alice, "getOrCreate", {}, on=["user", bob]),
        call(alice, "update", {"hacked": True}, on=["user", bob]),
        call(alice, "delete", on=["user", bob]),
        call(alice, "get", on=["user", bob]),
    ])  # fmt: skip
    for refused in results[:4]:
        assert refused["status"] == 403, refused
        assert refused["error"]["exception"] == "NotAllowedException"
    assert results[4]["result"]["data"] == {"name": "bob"}
    assert server_side.ok("GET", f"user/{bob}/")["data"] == {"name": "bob"}
    assert server_side.call("GET", f"user/{uid}someone/").status_code == 404
    feed_token = Api(server, {"resource": "*", "action": "*", "feed_id": f"user{bob}"})
    feed_token.refused("PUT", f"user/{bob}/", {"data": {}})


# --- the batch calls of `users/` ---------------------------------------------------------------


def batch(method: str, *args: Any) -> Doc:
    """A call of the npm SDK's server-side client."""
    return {"user": None, "method": method, "args": list(args)}


def test_batch_users_with_the_npm_sdks_server_client(server: ServerProcess, uid: str) -> None:
    """`addUsers`, `getUsers`, `deleteUsers` of the npm SDK (its node client_test.js case):
    created with `override`, read back in the order asked (ids not stored left out), deleted
    (ids never stored answered too); without `override` a stored user keeps its data and is
    left out of `created_users`; a user token may make none of these calls."""
    one, two, three = (f"{uid}-{n}" for n in ("1", "2", "3"))
    users = [{"id": one, "data": {"name": "u1"}}, {"id": two, "data": {"name": "u2"}}]
    added, got, kept, replaced, deleted, gone, refused = stream_js(server, [
        batch("addUsers", users, True),
        batch("getUsers", [two, three, one]),
        batch("addUsers", [{"id": one, "data": {"name": "x"}}, {"id": three, "data": {}}]),
        batch("addUsers", [{"id": two, "data": {"name": "y"}}], True),
        batch("deleteUsers", [one, two, f"{uid}-never"]),
        batch("getUsers", [one, two, three]),
        {"user": one, "method": "getUsers", "args": [[one]]},
    ])  # fmt: skip
    created = added["result"]["created_users"]
    assert [(u["id"], u["data"]) for u in created] == [(one, {"name": "u1"}), (two, {"name": "u2"})]
    assert set(created[0]) == {"id", "data", "created_at", "updated_at"}
    assert [u["id"] for u in got["result"]["users"]] == [two, one]
    assert [u["id"] for u in kept["result"]["created_users"]] == [three]
    [two_now] = replaced["result"]["created_users"]
    assert two_now["data"] == {"name": "y"} and two_now["created_at"] == created[1]["created_at"]
    assert deleted["result"]["deleted_user_ids"] == [one, two, f"{uid}-never"]
    assert [u["id"] for u in gone["result"]["users"]] == [three]
    assert refused["status"] == 403 and refused["error"]["exception"] == "NotAllowedException"


def test_a_batch_of_users_is_validated_whole_before_anything_is_stored(
    server: ServerProcess, uid: str
) -> None:
    api = Api(server, SERVER_TOKEN)
    good = {"id": f"{uid}-ok", "data": {}}
    for body, field in [
        ({"users": [good, {"id": "bad id!", "data": {}}]}, "users[1].id"),
        ({"users": [good, {"id": f"{uid}-ok", "data": {}}]}, "users[1].id"),
        ({"users": [good, {"id": f"{uid}-2", "data": "text"}]}, "users[1].data"),
        ({"users": []}, "users"),
        ({"users": [good], "override": "yes"}, "override"),
    ]:
        answer = api.call("POST", "users/", body)
        assert answer.status_code == 400, (body, answer.text)
        assert field in answer.json()["exception_fields"], answer.json()
    assert api.ok("GET", "users/", ids=f"{uid}-ok")["users"] == []
    assert api.call("GET", "users/").status_code == 400  # no ids
