"""Stream's npm SDK (`getstream`, tests/js/stream_sdk.mjs) on the Reactions API: the cases of
its own suite's `reaction.js` and `permissions.js` that need no users or enrichment, with user
tokens (as a browser app holds one) and the server-side client. Feeds are read server-side: a
user-token client reads through `enrich/feed/`, the enrichment Tidings serves elsewhere."""

from __future__ import annotations

from typing import Any

from tests.integration.rest_calls import stream_js as run_sdk
from tests.support import ServerProcess


def react(method: str, *args: Any, user: str | None = None) -> dict[str, Any]:
    return {"user": user, "of": "reactions", "method": method, "args": list(args)}


def ok(result: dict[str, Any]) -> Any:
    assert result["ok"], result
    return result["result"]


def refused(result: dict[str, Any], status: int) -> None:
    assert not result["ok"] and result["status"] == status, result


def test_crud_permissions_and_target_feeds(server: ServerProcess, uid: str) -> None:
    alice, bob = f"alice-{uid}", f"bob-{uid}"
    text = {"text": "Looking yummy!"}
    [eat] = run_sdk(server, [{
        "user": alice, "feed": ["user", alice], "method": "addActivity",
        "args": [{"actor": {"$user": alice}, "verb": "eat", "object": "cheeseburger"}],
    }])  # fmt: skip
    eat_id = ok(eat)["id"]
    options = {"targetFeeds": [f"user:{bob}"], "targetFeedsExtraData": {"custom": "yay"}}
    [added, as_bob, to_timeline, as_string, no_parent] = run_sdk(server, [
        react("add", "comment", eat_id, text, options, user=bob),
        react("add", "like", eat_id, {}, {"userId": bob}, user=alice),
        react("add", "comment", eat_id, {}, {"targetFeeds": [f"timeline:{uid}"]}, user=alice),
        react("add", "comment", eat_id, "some string", user=alice),
        react("addChild", "comment", {"id": "does-not-exist"}, user=bob),
    ])  # fmt: skip
    comment = ok(added)
    assert {k: comment[k] for k in ("kind", "activity_id", "user_id", "data")} == {
        "kind": "comment", "activity_id": eat_id, "user_id": bob, "data": text,
    }  # fmt: skip
    assert comment["target_feeds"] == [f"user:{bob}"]
    refused(as_bob, 400)  # as in Stream: another user's id is bad input
    refused(to_timeline, 403)
    refused(as_string, 400)
    refused(no_parent, 400)

    cid = comment["id"]
    results = run_sdk(server, [
        react("get", cid, user=alice),
        {"user": None, "feed": ["user", bob], "method": "get", "args": []},
        react("update", cid, {"text": "mine now"}, user=alice),
        react("update", cid, text, {"targetFeeds": [f"timeline:{alice}"]}, user=bob),
        react("add", "comment", eat_id, text, {"id": cid}, user=bob),
        react("delete", cid, user=alice),
        react("addChild", "like", comment, user=bob),
        react("update", cid, {"text": "edited"}, options, user=bob),
        react("delete", cid, True, user=bob),
        react("restore", cid, user=bob),
    ])  # fmt: skip
    got = ok(results[0])
    assert {k: got[k] for k in ("id", "data", "target_feeds")} == {
        "id": cid,
        "data": text,
        "target_feeds": [f"user:{bob}"],
    }
    [activity] = ok(results[1])["results"]
    assert activity["foreign_id"] == f"reaction:{cid}" and activity["custom"] == "yay"
    assert activity["time"] == comment["created_at"][:-1]  # Stream's time: created_at less Z
    assert activity["reaction"] == f"SR:{cid}" and activity["verb"] == "comment"
    refused(results[2], 403)
    refused(results[3], 403)
    refused(results[4], 409)
    refused(results[5], 403)
    assert ok(results[6])["parent"] == cid
    updated = ok(results[7])
    assert updated["created_at"] == comment["created_at"]
    assert updated["updated_at"] != comment["updated_at"]
    ok(results[8])
    ok(results[9])

    [gone, read, feed] = run_sdk(server, [
        react("delete", cid, user=bob),
        react("get", cid, user=alice),
        {"user": None, "feed": ["user", bob], "method": "get", "args": []},
    ])  # fmt: skip
    assert {k: v for k, v in ok(gone).items() if k != "duration"} == {}
    refused(read, 404)
    assert ok(feed)["results"] == []


def test_paging_five_at_a_time_both_ways(server: ServerProcess, uid: str) -> None:
    """reaction.js's "Paginate the whole thing": newest first with id_lt until `next` is
    empty, and back from the oldest with id_gte then id_gt."""
    activity_id = f"{uid}-eat"
    adds = [react("add", "like", activity_id, {"index": i}, user=f"bob-{uid}") for i in range(12)]
    likes = [ok(r) for r in run_sdk(server, adds)]
    newest_first = [r["id"] for r in reversed(likes)]
    read: list[str] = []
    conditions: dict[str, Any] = {"activity_id": activity_id, "kind": "like", "limit": 5}
    while True:
        [page] = run_sdk(server, [react("filter", conditions, user=f"alice-{uid}")])
        page = ok(page)
        read += [r["id"] for r in page["results"]]
        if not page["next"]:
            break
        conditions["id_lt"] = read[-1]
    assert read == newest_first
    back: list[str] = []
    conditions = {"activity_id": activity_id, "kind": "like", "limit": 5, "id_gte": read[-1]}
    while True:
        [page] = run_sdk(server, [react("filter", conditions, user=f"alice-{uid}")])
        page = ok(page)
        back = [r["id"] for r in reversed(page["results"])] + back
        if not page["next"]:
            break
        conditions.pop("id_gte", None)
        conditions["id_gt"] = page["results"][-1]["id"]
    assert back == newest_first
