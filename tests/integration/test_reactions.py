"""The Reactions API through Stream's own `stream-python` SDK, with only `base_url` changed:
add, read, update, delete and restore, child reactions, filters and pages, target feeds,
permissions and bad input. Every test uses fresh ids (one server is shared)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from stream.client import StreamClient
from stream.exceptions import (
    DoesNotExistException,
    InputException,
    StreamApiException,
)

from harness.common import SERVER_TOKEN, token
from tests.support import API_KEY, ServerProcess


def public(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "duration"}


def raw(
    server: ServerProcess, method: str, path: str, jwt: str = SERVER_TOKEN, **kw: Any
) -> requests.Response:
    """A call as a client with `jwt` makes it (stream-python signs its own server tokens, so
    user tokens are sent by hand; tests/integration/test_reactions_js.py uses the npm SDK)."""
    params = {"api_key": API_KEY, **kw.pop("params", {})}
    headers = {"Authorization": jwt, "stream-auth-type": "jwt"}
    url = f"{server.url}/api/v1.0/{path}"
    return requests.request(method, url, params=params, headers=headers, timeout=15, **kw)


@pytest.fixture
def activity(client: StreamClient, uid: str) -> dict[str, Any]:
    return client.feed("user", uid).add_activity({"actor": uid, "verb": "eat", "object": "o:1"})


# --- add, get, update ----------------------------------------------------------------------


def test_add_answers_streams_shape_and_get_reads_it_back(
    client: StreamClient, activity: dict[str, Any], uid: str
) -> None:
    added = client.reactions.add("like", activity["id"], uid, data={"n": 1})
    assert set(added) == {
        "id", "kind", "activity_id", "user_id", "data", "parent", "created_at", "updated_at",
        "latest_children", "children_counts", "duration",
    }  # fmt: skip
    assert (added["kind"], added["activity_id"], added["user_id"]) == ("like", activity["id"], uid)
    assert added["data"] == {"n": 1} and added["parent"] == ""
    assert added["created_at"].endswith("Z") and added["created_at"] == added["updated_at"]
    uuid.UUID(added["id"])
    got = client.reactions.get(added["id"])
    assert public(got) == public(added)


def test_update_changes_data_and_updated_at_only(
    client: StreamClient, activity: dict[str, Any], uid: str
) -> None:
    added = client.reactions.add("comment", activity["id"], uid, data={"text": "a"})
    updated = client.reactions.update(added["id"], {"text": "b"})
    assert updated["data"] == {"text": "b"}
    assert updated["created_at"] == added["created_at"]
    assert updated["updated_at"] != added["updated_at"]
    assert client.reactions.get(added["id"])["data"] == {"text": "b"}


def test_an_add_with_an_id_taken_is_409_and_changes_nothing(
    client: StreamClient, activity: dict[str, Any], uid: str, server: ServerProcess
) -> None:
    reaction_id = str(uuid.uuid4())
    body = {"kind": "like", "activity_id": activity["id"], "user_id": uid, "id": reaction_id}
    first = raw(server, "POST", "reaction/", json=body)
    assert first.status_code == 201 and first.json()["id"] == reaction_id
    again = raw(server, "POST", "reaction/", json={**body, "kind": "clap"})
    assert again.status_code == 409, again.text
    assert client.reactions.get(reaction_id)["kind"] == "like"


# --- delete and restore --------------------------------------------------------------------


def test_hard_delete_is_final(client: StreamClient, activity: dict[str, Any], uid: str) -> None:
    added = client.reactions.add("like", activity["id"], uid)
    assert public(client.reactions.delete(added["id"])) == {}
    for call in (
        lambda: client.reactions.get(added["id"]),
        lambda: client.reactions.update(added["id"], {"x": 1}),
        lambda: client.reactions.delete(added["id"]),
        lambda: client.reactions.restore(added["id"]),
    ):
        with pytest.raises(DoesNotExistException):
            call()


def test_soft_delete_keeps_it_readable_and_restore_brings_it_back(
    client: StreamClient, activity: dict[str, Any], uid: str
) -> None:
    added = client.reactions.add("like", activity["id"], uid)
    with pytest.raises(DoesNotExistException):  # not soft-deleted: nothing to restore
        client.reactions.restore(added["id"])
    client.reactions.delete(added["id"], soft=True)
    assert client.reactions.get(added["id"])["deleted_at"].endswith("Z")
    page = client.reactions.filter(activity_id=activity["id"])["results"]
    assert page == []  # a soft-deleted reaction is in no filter
    client.reactions.restore(added["id"])
    assert "deleted_at" not in client.reactions.get(added["id"])
    assert [r["id"] for r in client.reactions.filter(activity_id=activity["id"])["results"]] == [
        added["id"]
    ]


# --- children -------------------------------------------------------------------------------


def test_children_are_counted_listed_and_nest_three_levels(
    client: StreamClient, activity: dict[str, Any], uid: str
) -> None:
    comment = client.reactions.add("comment", activity["id"], uid)
    likes = [client.reactions.add_child("like", comment["id"], f"u{i}") for i in range(12)]
    assert likes[0]["parent"] == comment["id"] and likes[0]["activity_id"] == activity["id"]
    got = client.reactions.get(comment["id"])
    assert got["children_counts"] == {"like": 12}
    newest = [public(r) for r in reversed(likes)][:10]
    assert got["latest_children"] == {"like": newest}
    second = client.reactions.add_child("comment", likes[0]["id"], uid)
    with pytest.raises(InputException):  # a fourth level
        client.reactions.add_child("like", second["id"], uid)
    with pytest.raises(InputException):  # no such parent
        client.reactions.add_child("like", str(uuid.uuid4()), uid)
    client.reactions.delete(likes[0]["id"])  # and its own child with it
    assert client.reactions.get(comment["id"])["children_counts"] == {"like": 11}
    with pytest.raises(DoesNotExistException):
        client.reactions.get(second["id"])


# --- filters and pages ----------------------------------------------------------------------


def test_filters_by_activity_user_and_parent_with_kind(
    client: StreamClient, activity: dict[str, Any], uid: str
) -> None:
    like = client.reactions.add("like", activity["id"], uid)
    child = client.reactions.add_child("like", like["id"], uid)
    comment = client.reactions.add("comment", activity["id"], uid)
    like = client.reactions.get(like["id"])

    def ids(**params: Any) -> list[str]:
        return [r["id"] for r in client.reactions.filter(**params)["results"]]

    assert ids(activity_id=activity["id"]) == [comment["id"], like["id"]]  # newest first
    assert ids(activity_id=activity["id"], kind="like") == [like["id"]]
    assert ids(user_id=uid) == [comment["id"], child["id"], like["id"]]
    assert ids(user_id=uid, kind="like", id_lte=like["id"]) == [like["id"]]
    assert ids(reaction_id=like["id"]) == [child["id"]]
    found = client.reactions.filter(activity_id=activity["id"], kind="like")["results"][0]
    assert found == public(like)  # the same shape as a get, children included
    with_activity = client.reactions.filter(activity_id=activity["id"], with_activity_data=True)
    assert with_activity["activity"]["id"] == activity["id"]
    own = client.reactions.filter(
        activity_id=activity["id"], kind="like", with_own_children=True, children_user_id=uid
    )["results"][0]
    assert [r["id"] for r in own["own_children"]["like"]] == [child["id"]]


def test_pages_newest_first_with_next_and_back_with_id_gt(
    client: StreamClient, activity: dict[str, Any], uid: str
) -> None:
    likes = [client.reactions.add("like", activity["id"], uid, data={"i": i}) for i in range(12)]
    newest_first = [r["id"] for r in reversed(likes)]
    read: list[str] = []
    params: dict[str, Any] = {"activity_id": activity["id"], "kind": "like", "limit": 5}
    while True:
        page = client.reactions.filter(**params)
        read += [r["id"] for r in page["results"]]
        if not page["next"]:
            break
        assert page["next"].startswith(f"/api/v1.0/reaction/activity_id/{activity['id']}/like/?")
        params["id_lt"] = read[-1]
    assert read == newest_first
    # Bounded from below only, a page runs oldest first (as Stream pages forward).
    forward = client.reactions.filter(activity_id=activity["id"], id_gt=likes[2]["id"], limit=3)
    assert [r["id"] for r in forward["results"]] == [r["id"] for r in likes[3:6]]
    capped = client.reactions.filter(activity_id=activity["id"], limit=300)["results"]
    assert len(capped) == 12
    many = [client.reactions.add("clap", activity["id"], uid) for _ in range(14)]
    assert len(client.reactions.filter(activity_id=activity["id"], limit=300)["results"]) == 25
    assert many


# --- permissions and bad input --------------------------------------------------------------


def test_a_user_token_acts_as_its_own_user_only(
    client: StreamClient, activity: dict[str, Any], uid: str, server: ServerProcess
) -> None:
    alice, bob = token({"user_id": f"alice{uid}"}), token({"user_id": f"bob{uid}"})
    body = {"kind": "comment", "activity_id": activity["id"], "data": {"t": 1}}
    comment = raw(server, "POST", "reaction/", bob, json=body).json()
    assert comment["user_id"] == f"bob{uid}"
    assert raw(server, "GET", f"reaction/{comment['id']}/", alice).status_code == 200
    refusals = [
        # Stream answers 400 to a reaction added as another user
        (400, "POST", "reaction/", {**body, "user_id": f"bob{uid}"}),
        (403, "PUT", f"reaction/{comment['id']}/", {"data": {"t": 2}}),
        (403, "DELETE", f"reaction/{comment['id']}/", None),
        (403, "PUT", f"reaction/{comment['id']}/restore/", None),
        # target feeds are authorised as an activity's `to` is
        (403, "POST", "reaction/", {**body, "target_feeds": [f"timeline:{uid}"]}),
    ]
    for status, method, path, json in refusals:
        answer = raw(server, method, path, alice, json=json)
        assert answer.status_code == status, (method, path, answer.text)
    moved = {"data": {"t": 3}, "target_feeds": [f"timeline:{uid}"]}
    answer = raw(server, "PUT", f"reaction/{comment['id']}/", bob, json=moved)
    assert answer.status_code == 403, answer.text
    assert raw(server, "DELETE", f"reaction/{comment['id']}/", alice).status_code == 403
    assert client.reactions.get(comment["id"])["data"] == {"t": 1}
    assert client.reactions.filter(user_id=f"alice{uid}")["results"] == []
    assert raw(server, "DELETE", f"reaction/{comment['id']}/", bob).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"activity_id": "A"}, "kind"),
        ({"kind": "", "activity_id": "A"}, "kind"),
        ({"kind": "k" * 256, "activity_id": "A"}, "kind"),
        ({"kind": "a.b", "activity_id": "A"}, "kind"),
        ({"kind": "like"}, "activity_id"),
        ({"kind": "like", "activity_id": "A", "data": "some string"}, "data"),
        ({"kind": "like", "activity_id": "A", "data": {"x": "y" * 200_000}}, "data"),
        ({"kind": "like", "activity_id": "A", "target_feeds": ["user:1"] * 21}, "target_feeds"),
        ({"kind": "like", "activity_id": "A", "target_feeds": ["nogroup:1"]}, "target_feeds"),
        ({"kind": "like", "activity_id": "A", "target_feeds": "user:1"}, "target_feeds"),
        ({"kind": "like", "activity_id": "A", "id": "not-a-uuid"}, "id"),
        ({"kind": "like", "parent": "not-a-uuid"}, "parent"),
        ({"kind": "like", "activity_id": "A", "user_id": "u" * 256}, "user_id"),
    ],
)
def test_bad_input_answers_streams_error_and_stores_nothing(
    client: StreamClient, server: ServerProcess, uid: str, body: dict[str, Any], field: str
) -> None:
    activity_id = str(uuid.uuid4())
    body = {"user_id": uid, **body}
    if body.get("activity_id") == "A":
        body["activity_id"] = activity_id
    answer = raw(server, "POST", "reaction/", json=body)
    assert answer.status_code in (400, 413), answer.text
    assert answer.json()["exception"] == "InputException"
    assert field in answer.json()["exception_fields"], answer.json()
    assert client.reactions.filter(activity_id=activity_id)["results"] == []
    assert client.reactions.filter(user_id=uid)["results"] == []


def test_bad_filter_parameters_are_refused(client: StreamClient, activity: dict[str, Any]) -> None:
    for params in ({"limit": "x"}, {"limit": "0"}, {"id_lt": "nope"}, {"with_activity_data": "?"}):
        with pytest.raises(StreamApiException) as refused:
            client.reactions.filter(activity_id=activity["id"], **params)
        assert refused.value.status_code == 400


# --- the reaction's user ----------------------------------------------------------------------


def test_answers_carry_the_stored_user_of_each_reaction_and_child(
    client: StreamClient, activity: dict[str, Any], uid: str
) -> None:
    """As Stream answers them (its JS suite: `reactionResponse` has `user`): add, get, update
    and filter put the reaction's user object in each reaction and child whose user is stored;
    a reaction of a user never stored has no `user`."""
    user = client.users.add(uid, {"name": "Ann"})
    stranger = f"{uid}-nobody"
    like = client.reactions.add("like", activity["id"], uid)
    expected = {k: user[k] for k in ("id", "data", "created_at", "updated_at")}
    assert like["user"] == expected
    client.reactions.add_child("like", like["id"], uid)
    client.reactions.add_child("like", like["id"], stranger)
    got = client.reactions.get(like["id"])
    assert got["user"] == expected
    mine, theirs = sorted(got["latest_children"]["like"], key=lambda c: c["user_id"] != uid)
    assert mine["user"] == expected and "user" not in theirs
    assert client.reactions.update(like["id"], data={"n": 2})["user"] == expected
    other = client.reactions.add("clap", activity["id"], stranger)
    assert "user" not in other
    found = client.reactions.filter(activity_id=activity["id"])["results"]
    assert {r["user_id"]: r.get("user") for r in found} == {stranger: None, uid: expected}


def test_latest_children_are_the_newest_ten_in_all_grouped_by_kind(
    client: StreamClient, activity: dict[str, Any], uid: str
) -> None:
    """As Stream answers a read reaction (its JS suite: ten children of each of three kinds
    read as 3, 3 and 4 of them): the newest ten children whatever their kinds,
    newest first within each kind; the counts count them all. A filter answers the same."""
    comment = client.reactions.add("comment", activity["id"], uid)
    kinds = ("clap", "unlike", "like")
    children = [client.reactions.add_child(kinds[i % 3], comment["id"], uid) for i in range(30)]
    newest: dict[str, list[str]] = {}
    for child in reversed(children[-10:]):
        newest.setdefault(child["kind"], []).append(child["id"])
    got = client.reactions.get(comment["id"])
    assert got["children_counts"] == {"clap": 10, "unlike": 10, "like": 10}
    assert {k: [c["id"] for c in v] for k, v in got["latest_children"].items()} == newest
    assert {k: len(v) for k, v in newest.items()} == {"like": 4, "clap": 3, "unlike": 3}
    [found] = client.reactions.filter(activity_id=activity["id"], kind="comment")["results"]
    assert found["latest_children"] == got["latest_children"]
