"""Stream's Collections API (`collections/`) against Tidings, through Stream's own SDKs:
`stream-python` server-side (one entry and the batch calls), the npm `getstream` with user
tokens (its suite's collection.js cases: owners, 409s, ids), and raw calls for bad input."""

from __future__ import annotations

from typing import Any

import pytest
from stream.client import StreamClient
from stream.exceptions import DoesNotExistException, InputException, StreamApiException

from harness.common import SERVER_TOKEN
from tests.integration.rest_calls import Api, stream_js
from tests.support import ServerProcess

Doc = dict[str, Any]
ENTRY_FIELDS = {"id", "collection", "data", "foreign_id", "created_at", "updated_at"}


def public(answer: Doc) -> Doc:
    return {k: v for k, v in answer.items() if k != "duration"}


def on_collections(user: str | None, method: str, *args: Any) -> Doc:
    return {"user": user, "method": method, "args": list(args), "on": ["collections"]}


def test_add_get_update_delete_with_the_python_sdk(client: StreamClient, uid: str) -> None:
    added = client.collections.add("items", {"data": 1}, id=uid, user_id="tom")
    assert set(added) == ENTRY_FIELDS | {"duration"}
    assert (added["collection"], added["id"], added["data"]) == ("items", uid, {"data": 1})
    assert added["foreign_id"] == f"items:{uid}"
    got = client.collections.get("items", uid)  # stream-python asks for `collections//items/…`
    assert public(got) == public(added)
    updated = client.collections.update("items", uid, data={"changed": True})
    assert updated["data"] == {"changed": True}
    assert updated["created_at"] == added["created_at"]
    assert client.collections.get("items", uid)["data"] == {"changed": True}
    assert public(client.collections.delete("items", uid)) == {}
    with pytest.raises(DoesNotExistException):
        client.collections.get("items", uid)
    with pytest.raises(DoesNotExistException):
        client.collections.delete("items", uid)
    with pytest.raises(DoesNotExistException):
        client.collections.update("items", uid, data={"again": 1})


def test_an_add_without_id_gets_one_and_a_taken_id_conflicts(client: StreamClient) -> None:
    added = client.collections.add("items", {"name": "time machine"})
    assert len(added["id"]) == 36  # a UUID
    assert public(client.collections.get("items", added["id"])) == public(added)
    with pytest.raises(InputException) as conflict:
        client.collections.add("items", {"other": 1}, id=added["id"])
    assert conflict.value.status_code == 409
    assert client.collections.get("items", added["id"])["data"] == {"name": "time machine"}


def test_batch_upsert_select_and_delete_many(client: StreamClient, uid: str) -> None:
    a, b, c = f"{uid}a", f"{uid}b", f"{uid}c"
    client.collections.add("food", {"name": "old"}, id=a)
    created = client.collections.get("food", a)["created_at"]
    upserted = client.collections.upsert(
        "food", [{"id": a, "name": "new a"}, {"id": b, "name": "b", "user_id": "tom"}]
    )
    assert upserted["data"] == {
        "food": [{"id": a, "name": "new a"}, {"id": b, "name": "b", "user_id": "tom"}]
    }
    selected = client.collections.select("food", [a, b, c])
    found = selected["response"]["data"]
    assert [e["id"] for e in found] == [a, b]  # c does not exist
    assert all(set(e) == ENTRY_FIELDS for e in found)
    assert [e["data"] for e in found] == [{"name": "new a"}, {"name": "b"}]
    assert found[0]["created_at"] == created  # an upsert keeps an entry's creation
    assert found[0]["foreign_id"] == f"food:{a}"
    client.collections.delete_many("food", [a, b])  # stream-python repeats `ids=`
    assert client.collections.select("food", [a, b])["response"]["data"] == []


def test_upsert_without_ids_makes_them(client: StreamClient) -> None:
    upserted = client.collections.upsert("food", {"name": "no id"})
    (entry,) = upserted["data"]["food"]
    assert entry["name"] == "no id" and len(entry["id"]) == 36
    assert client.collections.get("food", entry["id"])["data"] == {"name": "no id"}


def test_a_bad_batch_stores_nothing(server: ServerProcess, client: StreamClient, uid: str) -> None:
    api = Api(server, SERVER_TOKEN)
    good = {"id": f"{uid}ok", "name": "fine"}
    for items in (
        [good, {"id": "bad id!", "name": "x"}],
        [good, "not an object"],
        [good, {"id": f"{uid}big", "blob": "x" * 10_300}],
    ):
        answer = api.call("POST", "collections/", {"data": {"food": items}})
        assert answer.status_code in (400, 413), answer.text
        assert answer.json()["exception"] == "InputException"
    too_many = [{"id": f"{uid}{i}"} for i in range(1001)]
    assert api.call("POST", "collections/", {"data": {"food": too_many}}).status_code == 400
    assert api.call("POST", "collections/", {"data": {"bad name!": [good]}}).status_code == 400
    assert client.collections.select("food", [f"{uid}ok", f"{uid}0"])["response"]["data"] == []
    many = ",".join(f"food:{i}" for i in range(1001))
    assert api.call("GET", "collections/", foreign_ids=many).status_code == 400
    assert api.call("GET", "collections/", foreign_ids="no-colon").status_code == 400
    assert api.call("DELETE", "collections/", collection_name="food").status_code == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "!abcdee!", "data": {"a": 1}}, "id"),
        ({"data": "some string"}, "data"),
        ({"data": {}}, "data"),
        ({"data": None}, "data"),
        ({"data": {"a": 1}, "user_id": "bad user!"}, "user_id"),
    ],
)
def test_bad_input_answers_input_exception(server: ServerProcess, body: Doc, field: str) -> None:
    answer = Api(server, SERVER_TOKEN).call("POST", "collections/food/", body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert (error["exception"], error["code"]) == ("InputException", 4)
    assert field in error["exception_fields"]


def test_an_update_cannot_change_the_id(
    server: ServerProcess, client: StreamClient, uid: str
) -> None:
    client.collections.add("food", {"a": 1}, id=uid)
    api = Api(server, SERVER_TOKEN)
    answer = api.call("PUT", f"collections/food/{uid}/", {"id": 1234, "data": {"a": 2}})
    assert answer.status_code == 400
    assert client.collections.get("food", uid)["data"] == {"a": 1}
    with pytest.raises(StreamApiException):
        client.collections.update("food", uid, data={"blob": "x" * 10_300})


def test_collection_story_of_streams_js_suite(server: ServerProcess, uid: str) -> None:
    """collection.js with user tokens: alice owns what she adds; bob reads it but may not
    change or delete it; a taken id is 409 for both; deleted, the id can be used again."""
    alice, bob = f"{uid}alice", f"{uid}bob"
    burger = {"name": "cheese burger", "toppings": "cheese"}
    improved = {"name": "The improved cheese burger", "toppings": ["cheese", "pickles"]}
    added = stream_js(server, [on_collections(alice, "add", "food", None, burger)])[0]["result"]
    assert set(added) == ENTRY_FIELDS | {"duration"}
    burger_id = added["id"]
    results = stream_js(server, [
        on_collections(alice, "get", "food", burger_id),
        on_collections(bob, "get", "food", burger_id),
        on_collections(bob, "add", "food", burger_id, improved),
        on_collections(alice, "add", "food", burger_id, improved),
        on_collections(bob, "update", "food", burger_id, improved),
        on_collections(alice, "update", "food", burger_id, improved),
        on_collections(bob, "delete", "food", burger_id),
        on_collections(alice, "delete", "food", burger_id),
        on_collections(alice, "get", "food", burger_id),
        on_collections(alice, "add", "food", burger_id, {"wopper": True}),
        on_collections(alice, "add", "food", "!abcdee!", {}),
        on_collections(alice, "add", "food", None, "some string"),
        on_collections(alice, "add", "food", None, {}),
    ])  # fmt: skip
    assert public(results[0]["result"]) == public(added)
    assert public(results[1]["result"]) == public(added)
    assert [r["status"] for r in results[2:4]] == [409, 409]
    assert results[4]["status"] == 403
    assert results[4]["error"]["exception"] == "NotAllowedException"
    assert results[5]["result"]["data"] == improved
    assert results[5]["result"]["updated_at"] != added["updated_at"]
    assert results[6]["status"] == 403
    assert public(results[7]["result"]) == {}
    assert results[8]["status"] == 404
    assert results[9]["result"]["data"] == {"wopper": True}
    assert [r["status"] for r in results[10:]] == [400, 400, 400]


def test_user_tokens_may_not_batch_nor_add_for_another_user(
    server: ServerProcess, uid: str
) -> None:
    alice = f"{uid}alice"
    user = Api(server, {"user_id": alice})
    user.refused("POST", "collections/", {"data": {"food": [{"id": uid, "a": 1}]}})
    user.refused("GET", "collections/", foreign_ids=f"food:{uid}")
    user.refused("DELETE", "collections/", collection_name="food", ids=uid)
    other = user.call("POST", "collections/food/", {"id": uid, "data": {"a": 1}, "user_id": "bob"})
    assert other.status_code == 400
    own = user.ok("POST", "collections/food/", {"id": uid, "data": {"a": 1}, "user_id": alice})
    assert own["id"] == uid
    feed_token = Api(server, {"resource": "*", "action": "*", "feed_id": f"user{alice}"})
    feed_token.refused("POST", "collections/food/", {"data": {"a": 1}})
    feed_token.refused("GET", f"collections/food/{uid}/")
    # what stream-python signs for collections: resource "collections", user_id "*"
    sdk = Api(server, {"resource": "collections", "action": "*", "feed_id": "*", "user_id": "*"})
    assert sdk.ok("PUT", f"collections/food/{uid}/", {"data": {"a": 2}})["data"] == {"a": 2}
    sdk.ok("DELETE", f"collections/food/{uid}/")


def test_a_batch_of_1000_fits_the_url_and_the_bound(client: StreamClient, uid: str) -> None:
    """Stream's bound: 1,000 entries; their select names them all in one URL (~19 KB here,
    past aiohttp's default 8,190-byte request line)."""
    ids = [f"{uid}-{i:04}" for i in range(1000)]
    client.collections.upsert("food", [{"id": i, "n": 1} for i in ids])
    found = client.collections.select("food", ids)["response"]["data"]
    assert [e["id"] for e in found] == ids
    client.collections.delete_many("food", ids)
    assert client.collections.select("food", ids[:10])["response"]["data"] == []
