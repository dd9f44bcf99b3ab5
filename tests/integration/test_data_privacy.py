"""Stream's data privacy calls (`data_privacy/…`) through the npm SDK's server-side client
(`deleteActivities`, `deleteReactions`, `exportUserActivitiesAndReactionIDs`), and their
refusals: any other token, bad batches (nothing deleted)."""

from __future__ import annotations

from typing import Any

from harness.common import SERVER_TOKEN
from tests.integration.rest_calls import Api, stream_js
from tests.support import ServerProcess

Doc = dict[str, Any]


def server_call(method: str, *args: Any) -> Doc:
    return {"user": None, "method": method, "args": list(args)}


def test_export_then_delete_a_users_activities_and_reactions(
    server: ServerProcess, uid: str
) -> None:
    api = Api(server, SERVER_TOKEN)
    mine = [
        api.ok("POST", f"feed/user/{uid}/", {"actor": actor, "verb": "post", "object": str(n)})
        for n, actor in enumerate((uid, f"SU:{uid}", "someone-else"))
    ]
    api.ok("POST", f"feed/timeline/{uid}/follows/", {"target": f"user:{uid}"})
    reactions = [
        api.ok("POST", "reaction/", {"kind": k, "activity_id": mine[0]["id"], "user_id": uid})
        for k in ("like", "comment")
    ]
    other = api.ok("POST", "reaction/", {"kind": "like", "activity_id": mine[0]["id"],
                                        "user_id": f"x-{uid}"})  # fmt: skip
    [exported] = stream_js(server, [server_call("exportUserActivitiesAndReactionIDs", uid)])
    assert exported["ok"], exported
    assert exported["result"]["export"] == {
        "user_id": uid,
        "activity_count": 2,
        "activity_ids": sorted([mine[0]["id"], mine[1]["id"]], reverse=True),
        "reaction_count": 2,
        "reaction_ids": [r["id"] for r in reversed(reactions)],
    }
    feeds = [f"user:{uid}"]
    deleted = stream_js(server, [
        server_call("deleteActivities", [{"id": a["id"], "remove_from_feeds": feeds}
                                         for a in mine[:2]]),
        server_call("deleteReactions", [r["id"] for r in reactions]),
    ])  # fmt: skip
    assert all(d["ok"] and set(d["result"]) <= {"duration"} for d in deleted), deleted
    assert api.ids(f"user:{uid}") == [mine[2]["id"]]
    assert api.ids(f"timeline:{uid}") == [mine[2]["id"]]  # gone from the followers too
    left = api.ok("GET", f"reaction/activity_id/{mine[0]['id']}/")["results"]
    assert [r["id"] for r in left] == [other["id"]]
    again = stream_js(server, [server_call("deleteReactions", [r["id"] for r in reactions])])
    assert again[0]["ok"], again  # deleted already: nothing to do
    [after] = stream_js(server, [server_call("exportUserActivitiesAndReactionIDs", uid)])
    assert after["result"]["export"]["activity_count"] == 0
    assert after["result"]["export"]["reaction_count"] == 0


def test_only_a_server_token_and_whole_valid_batches(server: ServerProcess, uid: str) -> None:
    api = Api(server, SERVER_TOKEN)
    kept = api.ok("POST", f"feed/user/{uid}/", {"actor": uid, "verb": "post", "object": "o"})
    for claims in ({"user_id": uid}, {"resource": "feed", "action": "*", "feed_id": "*"}):
        other = Api(server, claims)
        other.refused("GET", f"data_privacy/export_ids/{uid}")
        other.refused("POST", "data_privacy/delete_reactions/", {"ids": [kept["id"]]})
        body = {"activities": [{"id": kept["id"], "remove_from_feeds": [f"user:{uid}"]}]}
        other.refused("POST", "data_privacy/delete_activities/", body)
    bad_batches = [
        {"activities": []},
        {"activities": [{"id": kept["id"], "remove_from_feeds": [f"user:{uid}"]},
                        {"id": "not-an-id", "remove_from_feeds": [f"user:{uid}"]}]},
        {"activities": [{"id": kept["id"], "remove_from_feeds": [f"user:{uid}", "nogroup:x"]}]},
        {"activities": [{"id": kept["id"]}]},
    ]  # fmt: skip
    for body in bad_batches:
        answer = api.call("POST", "data_privacy/delete_activities/", body)
        assert answer.status_code == 400, (body, answer.text)  # input (4) or feed config (6)
    assert api.ids(f"user:{uid}") == [kept["id"]]  # nothing of a refused batch deleted
    for body in ({"ids": []}, {"ids": ["x"]}, {"ids": [kept["id"]], "soft_delete": "yes"}):
        answer = api.call("POST", "data_privacy/delete_reactions/", body)
        assert answer.status_code == 400, (body, answer.text)
    assert api.call("GET", "data_privacy/export_ids/a%20b").status_code == 400
