"""Stream's Feeds REST dialect on the wire: paths, status codes, error shapes, tokens.

Raw HTTP with `requests`, so that what is checked is exactly what any SDK sees.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pymongo
import pytest
import requests
import socketio

from harness.common import SERVER_TOKEN, token
from harness.pool import ServerPool
from harness.webhooks import SECRET as HOOK_SECRET
from harness.webhooks import Receiver
from tests.integration.stored import NOTHING, Counts, stored
from tests.support import API_KEY, ServerProcess, Store, wait_until

DURATION = re.compile(r"^\d+(\.\d+)?ms$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$")
ERROR_KEYS = {"code", "detail", "exception", "status_code", "duration"}


class Api:
    """Requests to one Tidings server, as Stream's SDKs make them."""

    def __init__(self, base: str) -> None:
        self.base = base + "/api/v1.0/"
        self.session = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        *,
        auth: str | None = SERVER_TOKEN,
        api_key: str | None = API_KEY,
        params: dict[str, Any] | None = None,
        body: Any = None,
        data: str | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        query = dict(params or {})
        if api_key is not None:
            query["api_key"] = api_key
        sent = {"stream-auth-type": "jwt", **(headers or {})}
        if auth is not None:
            sent["Authorization"] = auth
        if body is not None:
            data = json.dumps(body)
            sent["Content-Type"] = "application/json"
        return self.session.request(
            method, self.base + path, params=query, data=data, headers=sent, timeout=30
        )

    def add(self, feed: str, activity: Any, **kw: Any) -> requests.Response:
        return self.call("POST", f"feed/{feed.replace(':', '/')}/", body=activity, **kw)

    def read(self, feed: str, **params: Any) -> list[dict[str, Any]]:
        response = self.call("GET", f"feed/{feed.replace(':', '/')}/", params=params)
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    def ids(self, feed: str, **params: Any) -> list[str]:
        return [a["id"] for a in self.read(feed, **params)]


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.session.close()


@pytest.fixture(scope="module")
def db(store: Store, server: ServerProcess) -> Iterator[Any]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(store.url)
    yield client[server.database]
    client.close()


def activity(uid: str, **extra: Any) -> dict[str, Any]:
    return {"actor": f"user:{uid}", "verb": "post", "object": "photo:1", **extra}


def assert_error(
    response: requests.Response, status: int, code: int, exception: str, *fields: str
) -> dict[str, Any]:
    """Stream's error shape, exactly; `fields` must be among `exception_fields` when given."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) - {"exception_fields"} == ERROR_KEYS, body
    assert body["code"] == code, body
    assert body["exception"] == exception, body
    assert body["status_code"] == status, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert DURATION.match(body["duration"]), body
    if "exception_fields" in body:
        exception_fields = body["exception_fields"]
        assert isinstance(exception_fields, dict) and exception_fields, body
        for messages in exception_fields.values():
            assert isinstance(messages, list) and all(isinstance(m, str) for m in messages), body
    for field in fields:
        assert field in body.get("exception_fields", {}), body
    return body


def stored_in(db: Any, feed: str) -> Counts:
    """What the store holds for `feed`, collection by collection (tests/integration/stored.py)."""
    return stored(db, [feed])


# --- success answers -----------------------------------------------------------------------


def test_every_answer_carries_duration_and_stream_status_codes(api: Api, uid: str) -> None:
    added = api.add(f"user:{uid}", activity(uid))
    assert added.status_code == 201
    assert DURATION.match(added.json()["duration"])
    activity_id = added.json()["id"]

    answers = {
        "read": (api.call("GET", f"feed/user/{uid}/"), 200),
        "follow": (
            api.call("POST", f"feed/timeline/{uid}/follows/", body={"target": f"user:{uid}"}),
            201,
        ),
        "followers": (api.call("GET", f"feed/user/{uid}/followers/"), 200),
        "following": (api.call("GET", f"feed/timeline/{uid}/follows/"), 200),
        "unfollow": (api.call("DELETE", f"feed/timeline/{uid}/follows/user:{uid}/"), 200),
        "remove": (api.call("DELETE", f"feed/user/{uid}/{activity_id}/"), 200),
    }
    for name, (response, status) in answers.items():
        assert response.status_code == status, (name, response.text)
        assert response.headers["Content-Type"].startswith("application/json"), name
        assert DURATION.match(response.json()["duration"]), (name, response.text)
    assert answers["remove"][0].json()["removed"] == activity_id
    assert api.ids(f"user:{uid}") == []


def test_add_answer_and_read_shape(api: Api, uid: str) -> None:
    sent = activity(uid, foreign_id="photo:1", target="album:2", custom={"nested": [1, None]})
    response = api.add(f"user:{uid}", sent)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {*sent, "id", "time", "origin", "duration"}
    assert body["origin"] is None
    assert TIME.match(body["time"]), body["time"]
    assert re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", body["id"])
    assert {k: body[k] for k in sent} == sent
    page = api.call("GET", f"feed/user/{uid}/").json()
    assert set(page) == {"results", "next", "duration"}
    assert page["next"] == ""
    assert page["results"] == [{k: v for k, v in body.items() if k != "duration"}]


def test_time_without_offset_is_utc_and_comes_back_to_the_microsecond(api: Api, uid: str) -> None:
    cases = {
        "2020-01-02T03:04:05": "2020-01-02T03:04:05.000000",
        "2020-01-02T03:04:05.123456": "2020-01-02T03:04:05.123456",
        "2020-01-02T03:04:05.1+01:00": "2020-01-02T02:04:05.100000",
        "2020-01-02T03:04:05.000007Z": "2020-01-02T03:04:05.000007",
    }
    for i, (sent, expected) in enumerate(cases.items()):
        response = api.add(f"user:{uid}", activity(uid, object=f"o{i}", time=sent))
        assert response.status_code == 201, response.text
        assert response.json()["time"] == expected, sent
    times = [a["time"] for a in api.read(f"user:{uid}")]
    assert times == sorted(cases.values(), reverse=True)


def test_trailing_slash_is_optional_on_every_path(api: Api, uid: str) -> None:
    for slash in ("/", ""):
        feed = f"{uid}{'s' if slash else 'n'}"
        added = api.call("POST", f"feed/user/{feed}{slash}", body=activity(uid))
        assert added.status_code == 201, (slash, added.text)
        activity_id = added.json()["id"]
        read = api.call("GET", f"feed/user/{feed}{slash}")
        assert [a["id"] for a in read.json()["results"]] == [activity_id]
        follow = api.call(
            "POST", f"feed/timeline/{feed}/follows{slash}", body={"target": f"user:{feed}"}
        )
        assert follow.status_code == 201, (slash, follow.text)
        following = api.call("GET", f"feed/timeline/{feed}/follows{slash}").json()["results"]
        assert [r["target_id"] for r in following] == [f"user:{feed}"]
        followers = api.call("GET", f"feed/user/{feed}/followers{slash}").json()["results"]
        assert [r["feed_id"] for r in followers] == [f"timeline:{feed}"]
        unfollow = api.call("DELETE", f"feed/timeline/{feed}/follows/user:{feed}{slash}")
        assert unfollow.status_code == 200, (slash, unfollow.text)
        assert api.call("GET", f"feed/timeline/{feed}/follows").json()["results"] == []
        removed = api.call("DELETE", f"feed/user/{feed}/{activity_id}{slash}")
        assert removed.status_code == 200, (slash, removed.text)
        assert api.ids(f"user:{feed}") == []


# --- authentication ------------------------------------------------------------------------


def test_bearer_prefix_is_accepted(api: Api, uid: str) -> None:
    response = api.add(f"user:{uid}", activity(uid), auth="Bearer " + SERVER_TOKEN)
    assert response.status_code == 201, response.text
    read = api.call("GET", f"feed/user/{uid}/", auth="Bearer " + SERVER_TOKEN)
    assert [a["id"] for a in read.json()["results"]] == [response.json()["id"]]


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "",
        "garbage",
        "Bearer garbage",
        token({"resource": "*", "action": "*", "feed_id": "*", "exp": int(time.time()) - 60}),
        jwt.encode(
            {"resource": "*", "action": "*", "feed_id": "*"},
            "another-secret-0123456789abcdef-0123",
            algorithm="HS256",
        ),
        jwt.encode({"resource": "*", "action": "*", "feed_id": "*"}, None, algorithm="none"),
        token({"foo": "bar"}),
    ],
    ids=[
        "missing",
        "empty",
        "garbage",
        "bearer-garbage",
        "expired",
        "wrong-secret",
        "alg-none",
        "no-claims",
    ],
)
def test_bad_token_is_signature_exception(api: Api, db: Any, uid: str, auth: str | None) -> None:
    response = api.add(f"user:{uid}", activity(uid), auth=auth)
    assert_error(response, 401, 3, "SignatureException")
    assert_error(api.call("GET", f"feed/user/{uid}/", auth=auth), 401, 3, "SignatureException")
    assert stored_in(db, f"user:{uid}") == NOTHING


def test_token_with_future_exp_is_accepted(api: Api, uid: str) -> None:
    fresh = token({"resource": "*", "action": "*", "feed_id": "*", "exp": int(time.time()) + 600})
    assert api.call("GET", f"feed/user/{uid}/", auth=fresh).status_code == 200


@pytest.mark.parametrize("api_key", ["not-the-key", None, ""], ids=["unknown", "missing", "empty"])
def test_bad_api_key_is_api_key_exception(api: Api, db: Any, uid: str, api_key: str | None) -> None:
    assert_error(api.add(f"user:{uid}", activity(uid), api_key=api_key), 401, 2, "ApiKeyException")
    assert_error(api.call("GET", f"feed/user/{uid}/", api_key=api_key), 401, 2, "ApiKeyException")
    assert stored_in(db, f"user:{uid}") == NOTHING


def test_unsupported_auth_type_is_refused(api: Api, uid: str) -> None:
    response = api.call("GET", f"feed/user/{uid}/", headers={"stream-auth-type": "simple"})
    assert_error(response, 401, 3, "SignatureException")


# --- bad input: refused whole, nothing stored ----------------------------------------------


@pytest.mark.parametrize(
    "data", ["{not json", "", '{"actor": "a",}', "[1, 2"], ids=["garbage", "empty", "comma", "cut"]
)
def test_invalid_json_is_input_exception(api: Api, db: Any, uid: str, data: str) -> None:
    response = api.call(
        "POST", f"feed/user/{uid}/", data=data, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, 4, "InputException")
    assert stored_in(db, f"user:{uid}") == NOTHING


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"verb": "post", "object": "o"}, "actor"),
        ({"actor": "a", "object": "o"}, "verb"),
        ({"actor": "a", "verb": "post"}, "object"),
        ({"actor": "", "verb": "post", "object": "o"}, "actor"),
        ({"actor": ["a"], "verb": "post", "object": "o"}, "actor"),
        ({"actor": True, "verb": "post", "object": "o"}, "actor"),
        ({"actor": "a" * 256, "verb": "post", "object": "o"}, "actor"),
        ({"actor": "a", "verb": "post", "object": "o", "time": "yesterday"}, "time"),
        ({"actor": "a", "verb": "post", "object": "o", "to": "user:1"}, "to"),
        ({"actor": "a", "verb": "post", "object": "o", "foreign_id": 1.5}, None),
    ],
    ids=[
        "no-actor",
        "no-verb",
        "no-object",
        "empty-actor",
        "list-actor",
        "bool-actor",
        "long-actor",
        "bad-time",
        "to-string",
        "numeric-foreign-id-ok",
    ],
)
def test_activity_fields_are_validated(
    api: Api, db: Any, uid: str, body: dict[str, Any], field: str | None
) -> None:
    response = api.add(f"user:{uid}", body)
    if field is None:
        assert response.status_code == 201, response.text
        return
    assert_error(response, 400, 4, "InputException", field)
    assert stored_in(db, f"user:{uid}") == NOTHING


@pytest.mark.parametrize("body", [[activity("x")], "text", 42, None], ids=str)
def test_body_that_is_not_an_object_is_input_exception(
    api: Api, db: Any, uid: str, body: Any
) -> None:
    response = api.call(
        "POST",
        f"feed/user/{uid}/",
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, 4, "InputException")
    assert stored_in(db, f"user:{uid}") == NOTHING


def _padded(uid: str, size: int) -> dict[str, Any]:
    """An activity of exactly `size` bytes of compact JSON."""
    base = activity(uid, pad="")
    missing = size - len(json.dumps(base, separators=(",", ":")).encode())
    return activity(uid, pad="x" * missing)


def test_activity_over_10_kb_is_413_and_not_stored(api: Api, db: Any, uid: str) -> None:
    assert api.add(f"user:{uid}-ok", _padded(uid, 10200)).status_code == 201
    response = api.add(f"user:{uid}", _padded(uid, 10241))
    assert_error(response, 413, 4, "InputException")
    assert api.ids(f"user:{uid}") == []
    assert stored_in(db, f"user:{uid}") == NOTHING
    # In a batch, one oversized activity refuses the whole batch.
    batch = {"activities": [activity(uid), _padded(uid, 20000)]}
    assert_error(api.add(f"user:{uid}", batch), 413, 4, "InputException")
    assert stored_in(db, f"user:{uid}") == NOTHING


def test_body_over_the_request_limit_is_413(api: Api, db: Any, uid: str) -> None:
    batch = {"activities": [_padded(uid, 9000) for _ in range(130)]}  # ~1.2 MB
    assert_error(api.add(f"user:{uid}", batch), 413, 4, "InputException")
    assert stored_in(db, f"user:{uid}") == NOTHING


def test_to_with_100_feeds_is_accepted_and_101_refused(api: Api, db: Any, uid: str) -> None:
    to = [f"raid:{uid}-{i}" for i in range(101)]
    refused = api.add(f"user:{uid}", activity(uid, to=to))
    assert_error(refused, 400, 4, "InputException", "to")
    assert stored_in(db, f"user:{uid}") == NOTHING
    assert stored_in(db, f"raid:{uid}-0") == NOTHING
    accepted = api.add(f"user:{uid}", activity(uid, to=to[:100]))
    assert accepted.status_code == 201, accepted.text
    assert api.ids(f"raid:{uid}-99") == [accepted.json()["id"]]


@pytest.mark.parametrize(
    ("bad", "code", "exception"),
    [
        ("nosuchgroup:{uid}", 6, "FeedConfigException"),
        ("no-colon", 4, "InputException"),
        ("user:", 4, "InputException"),
        (":{uid}", 4, "InputException"),
        ("User:{uid}", 4, "InputException"),
        ("user:bad/id", 4, "InputException"),
        ("user:{uid}:x", 4, "InputException"),
    ],
    ids=["unknown-group", "no-colon", "no-user", "no-group", "upper", "slash", "two-colons"],
)
def test_bad_to_is_refused_and_nothing_stored(
    api: Api, db: Any, uid: str, bad: str, code: int, exception: str
) -> None:
    to = [f"raid:{uid}", bad.format(uid=uid)]
    response = api.add(f"user:{uid}", activity(uid, to=to))
    assert_error(response, 400, code, exception, "to")
    assert stored_in(db, f"user:{uid}") == NOTHING
    assert stored_in(db, f"raid:{uid}") == NOTHING


def test_batch_with_one_bad_activity_stores_none(api: Api, db: Any, uid: str) -> None:
    good = [activity(uid, object=f"o{i}") for i in range(3)]
    bad = {"verb": "post", "object": "no actor"}
    response = api.add(f"user:{uid}", {"activities": [*good[:2], bad, good[2]]})
    assert_error(response, 400, 4, "InputException", "activities[2].actor")
    response = api.add(
        f"user:{uid}", {"activities": [*good, activity(uid, to=[f"nosuchgroup:{uid}"])]}
    )
    assert_error(response, 400, 6, "FeedConfigException")
    response = api.add(f"user:{uid}", {"activities": [good[0], activity(uid, id="x")]})
    assert_error(response, 400, 5, "CustomFieldException")
    assert api.ids(f"user:{uid}") == []
    assert stored_in(db, f"user:{uid}") == NOTHING
    for empty in ({"activities": []}, {"activities": "nope"}):
        assert_error(api.add(f"user:{uid}", empty), 400, 4, "InputException", "activities")
    ok = api.add(f"user:{uid}", {"activities": good})
    assert ok.status_code == 201
    assert set(ok.json()) == {"activities", "duration"}
    assert len(api.ids(f"user:{uid}")) == 3


@pytest.mark.parametrize("field", ["id", "origin"])
def test_reserved_field_is_custom_field_exception(api: Api, db: Any, uid: str, field: str) -> None:
    response = api.add(f"user:{uid}", activity(uid, **{field: "mine"}))
    assert_error(response, 400, 5, "CustomFieldException", field)
    assert stored_in(db, f"user:{uid}") == NOTHING


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 101},
        {"limit": -1},
        {"limit": "ten"},
        {"limit": "1.5"},
        {"offset": -1},
        {"offset": "x"},
        {"id_lt": "garbage"},
        {"id_lte": "123"},
        {"id_gte": "not-an-id"},
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()),
)
def test_bad_read_parameters_are_input_exception(
    api: Api, uid: str, params: dict[str, Any]
) -> None:
    response = api.call("GET", f"feed/user/{uid}/", params=params)
    assert_error(response, 400, 4, "InputException", *params)


def test_limit_0_answers_no_activities_but_a_notification_feeds_counts(api: Api, uid: str) -> None:
    """react-activity-feed's notification dropdown reads its badge's counts so."""
    assert api.add(f"notification:{uid}", activity(uid)).status_code == 201
    response = api.call("GET", f"feed/notification/{uid}/", params={"limit": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] == [] and body["next"] == ""
    assert body["unseen"] == 1 and body["unread"] == 1
    flat = api.call("GET", f"feed/user/{uid}/", params={"limit": 0}).json()
    assert flat["results"] == [] and flat["next"] == ""


def test_limit_100_is_accepted(api: Api, uid: str) -> None:
    response = api.call("GET", f"feed/user/{uid}/", params={"limit": 100})
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_bad_listing_parameters_are_input_exception(api: Api, uid: str) -> None:
    for path in (f"feed/user/{uid}/followers/", f"feed/timeline/{uid}/follows/"):
        for params in ({"limit": 101}, {"offset": -1}, {"filter": "not a feed"}):
            response = api.call("GET", path, params=params)
            assert_error(response, 400, 4, "InputException", *params)


def test_bad_removal_id_is_input_exception(api: Api, uid: str) -> None:
    added = api.add(f"user:{uid}", activity(uid)).json()
    assert_error(api.call("DELETE", f"feed/user/{uid}/not-an-id/"), 400, 4, "InputException")
    assert api.ids(f"user:{uid}") == [added["id"]]


def test_removing_an_unheld_activity_changes_nothing(api: Api, uid: str) -> None:
    added = api.add(f"user:{uid}", activity(uid)).json()
    # Another feed cannot remove it by id.
    other = api.call("DELETE", f"feed/user/{uid}-other/{added['id']}/")
    assert other.status_code == 200, other.text
    assert api.ids(f"user:{uid}") == [added["id"]]
    gone = api.call("DELETE", f"feed/user/{uid}/fid:unknown/", params={"foreign_id": "1"})
    assert gone.status_code == 200
    assert api.ids(f"user:{uid}") == [added["id"]]


def test_bad_boolean_parameter_is_input_exception(api: Api, uid: str) -> None:
    response = api.call(
        "DELETE", f"feed/timeline/{uid}/follows/user:{uid}/", params={"keep_history": "maybe"}
    )
    assert_error(response, 400, 4, "InputException", "keep_history")


@pytest.mark.parametrize("flag", ["1", "true", "True"])
def test_keep_history_takes_stream_booleans(api: Api, uid: str, flag: str) -> None:
    added = api.add(f"user:{uid}", activity(uid)).json()
    follow = api.call("POST", f"feed/timeline/{uid}/follows/", body={"target": f"user:{uid}"})
    assert follow.status_code == 201
    assert api.ids(f"timeline:{uid}") == [added["id"]]
    response = api.call(
        "DELETE", f"feed/timeline/{uid}/follows/user:{uid}/", params={"keep_history": flag}
    )
    assert response.status_code == 200
    assert api.ids(f"timeline:{uid}") == [added["id"]]


# --- follows -------------------------------------------------------------------------------


def test_follow_self_is_refused(api: Api, db: Any, uid: str) -> None:
    response = api.call("POST", f"feed/user/{uid}/follows/", body={"target": f"user:{uid}"})
    assert_error(response, 400, 4, "InputException", "target")
    assert db["follows"].count_documents({"source": f"user:{uid}"}) == 0


def test_activity_copy_limit_is_bounded(api: Api, db: Any, uid: str) -> None:
    path = f"feed/timeline/{uid}/follows/"
    for limit in (1001, -1, "many"):
        response = api.call(
            "POST", path, body={"target": f"user:{uid}", "activity_copy_limit": limit}
        )
        assert_error(response, 400, 4, "InputException", "activity_copy_limit")
    assert db["follows"].count_documents({"source": f"timeline:{uid}"}) == 0
    ok = api.call("POST", path, body={"target": f"user:{uid}", "activity_copy_limit": 1000})
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(
    ("body", "code", "exception"),
    [
        ({}, 4, "InputException"),
        ({"target": 5}, 4, "InputException"),
        ({"target": "nocolon"}, 4, "InputException"),
        ({"target": "nosuchgroup:1"}, 6, "FeedConfigException"),
    ],
    ids=["missing", "number", "malformed", "unknown-group"],
)
def test_bad_follow_target_is_refused(
    api: Api, db: Any, uid: str, body: dict[str, Any], code: int, exception: str
) -> None:
    response = api.call("POST", f"feed/timeline/{uid}/follows/", body=body)
    assert_error(response, 400, code, exception, "target")
    assert db["follows"].count_documents({"source": f"timeline:{uid}"}) == 0


def test_follow_takes_target_token_as_the_sdks_send_it(api: Api, uid: str) -> None:
    body = {"target": f"user:{uid}", "target_token": "whatever"}
    assert api.call("POST", f"feed/timeline/{uid}/follows/", body=body).status_code == 201
    rows = api.call("GET", f"feed/timeline/{uid}/follows/").json()["results"]
    assert [r["target_id"] for r in rows] == [f"user:{uid}"]
    assert TIME.match(rows[0]["created_at"]) and TIME.match(rows[0]["updated_at"])


# --- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "no/such/route/",
        "feed/",
        "feed/user/",
        "feed/user/bob/followers/extra/",
        "activities/unknown/",
    ],
)
def test_unknown_route_under_api_is_404_in_streams_shape(api: Api, path: str) -> None:
    assert_error(api.call("GET", path), 404, 16, "DoesNotExistException")


def test_unknown_api_version_is_404_in_streams_shape(server: ServerProcess) -> None:
    response = requests.get(server.url + "/api/v9.9/feed/user/bob/", timeout=10)
    assert_error(response, 404, 16, "DoesNotExistException")


def test_wrong_method_is_answered_in_streams_shape(api: Api, uid: str) -> None:
    response = api.call("PATCH", f"feed/user/{uid}/")
    body = response.json()
    assert response.status_code in (404, 405), response.text
    assert set(body) - {"exception_fields"} == ERROR_KEYS
    assert body["status_code"] == response.status_code


@pytest.mark.parametrize(
    ("feed", "code", "exception"),
    [
        ("nosuchgroup/{uid}", 6, "FeedConfigException"),
        ("User/{uid}", 4, "InputException"),
        ("user/bad!id", 4, "InputException"),
    ],
)
def test_bad_feed_in_path_is_refused(
    api: Api, db: Any, uid: str, feed: str, code: int, exception: str
) -> None:
    path = f"feed/{feed.format(uid=uid)}/"
    assert_error(api.call("GET", path), 400, code, exception)
    assert_error(api.call("POST", path, body=activity(uid)), 400, code, exception)
    named = feed.format(uid=uid).replace("/", ":")
    assert db["activities"].count_documents({"$or": [{"feed": named}, {"owners.feed": named}]}) == 0


# --- scoped tokens -------------------------------------------------------------------------


@pytest.mark.parametrize("feed_id", ["user{uid}", "user:{uid}"], ids=["compact", "colon"])
def test_feed_read_token_reads_its_feed_only(api: Api, db: Any, uid: str, feed_id: str) -> None:
    added = api.add(f"user:{uid}", activity(uid)).json()
    reader = token({"resource": "feed", "action": "read", "feed_id": feed_id.format(uid=uid)})
    read = api.call("GET", f"feed/user/{uid}/", auth=reader)
    assert read.status_code == 200, read.text
    assert [a["id"] for a in read.json()["results"]] == [added["id"]]
    refused = api.add(f"user:{uid}", activity(uid, object="nope"), auth=reader)
    assert_error(refused, 403, 17, "NotAllowedException")
    assert api.ids(f"user:{uid}") == [added["id"]]
    assert_error(
        api.call("DELETE", f"feed/user/{uid}/{added['id']}/", auth=reader),
        403,
        17,
        "NotAllowedException",
    )
    assert api.ids(f"user:{uid}") == [added["id"]]
    for other in (f"feed/user/{uid}-other/", f"feed/timeline/{uid}/"):
        assert_error(api.call("GET", other, auth=reader), 403, 17, "NotAllowedException")
    # The follower resource is another resource.
    assert_error(
        api.call("GET", f"feed/user/{uid}/followers/", auth=reader), 403, 17, "NotAllowedException"
    )


def test_scoped_token_wildcards(api: Api, uid: str) -> None:
    writer = token({"resource": "feed", "action": "*", "feed_id": f"user{uid}"})
    added = api.add(f"user:{uid}", activity(uid), auth=writer)
    assert added.status_code == 201
    assert api.call("GET", f"feed/user/{uid}/", auth=writer).status_code == 200
    follower = token({"resource": "follower", "action": "write", "feed_id": f"timeline{uid}"})
    follow = api.call(
        "POST", f"feed/timeline/{uid}/follows/", body={"target": f"user:{uid}"}, auth=follower
    )
    assert follow.status_code == 201, follow.text
    assert_error(
        api.call("GET", f"feed/timeline/{uid}/", auth=follower), 403, 17, "NotAllowedException"
    )
    everything = token({"resource": "*", "action": "*", "feed_id": f"timeline{uid}"})
    assert api.call("GET", f"feed/timeline/{uid}/", auth=everything).status_code == 200
    assert_error(
        api.call("GET", f"feed/user/{uid}/", auth=everything), 403, 17, "NotAllowedException"
    )


def test_user_token_reads_own_feeds_and_writes_only_its_user_feed(
    api: Api, db: Any, uid: str
) -> None:
    user = token({"user_id": uid})
    timeline = api.add(f"timeline:{uid}", activity(uid)).json()
    read = api.call("GET", f"feed/timeline/{uid}/", auth=user)
    assert read.status_code == 200
    assert [a["id"] for a in read.json()["results"]] == [timeline["id"]]
    written = api.add(f"user:{uid}", activity(uid), auth=user)
    assert written.status_code == 201, written.text
    assert api.ids(f"user:{uid}") == [written.json()["id"]]

    refused = api.add(f"timeline:{uid}", activity(uid, object="nope"), auth=user)
    assert_error(refused, 403, 17, "NotAllowedException")
    assert api.ids(f"timeline:{uid}") == [timeline["id"]]
    assert_error(
        api.add(f"user:{uid}-other", activity(uid), auth=user), 403, 17, "NotAllowedException"
    )
    assert stored_in(db, f"user:{uid}-other") == NOTHING
    assert_error(
        api.call("GET", f"feed/timeline/{uid}-other/", auth=user), 403, 17, "NotAllowedException"
    )


# --- known bugs ----------------------------------------------------------------------------


def follow_next(api: Api, next_url: str) -> dict[str, Any]:
    """Follow a `next` link (relative, without api_key) as an SDK does."""
    parts = urlsplit(next_url)
    assert parts.path.startswith("/api/v1.0/"), next_url
    response = api.call(
        "GET", parts.path.removeprefix("/api/v1.0/"), params=dict(parse_qsl(parts.query))
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


@pytest.mark.parametrize("bound", ["id_gt", "id_gte"])
def test_next_keeps_the_lower_bound(api: Api, uid: str, bound: str) -> None:
    api.add(f"user:{uid}", {"activities": [activity(uid, object=f"o{i}") for i in range(6)]})
    every = api.ids(f"user:{uid}")
    expected = every[:4] if bound == "id_gt" else every[:5]
    page = api.call("GET", f"feed/user/{uid}/", params={bound: every[4], "limit": 2}).json()
    seen = [a["id"] for a in page["results"]]
    for _ in range(5):
        if not page["next"]:
            break
        page = follow_next(api, page["next"])
        seen += [a["id"] for a in page["results"]]
    assert seen == expected


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_constants_are_invalid_json(
    api: Api, db: Any, uid: str, constant: str
) -> None:
    raw = '{"actor": "a", "verb": "v", "object": "o", "x": ' + constant + "}"
    response = api.call(
        "POST", f"feed/user/{uid}/", data=raw, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, 4, "InputException")
    assert stored_in(db, f"user:{uid}") == NOTHING


def test_deeply_nested_json_is_bad_input_not_a_crash(api: Api, db: Any, uid: str) -> None:
    depth = 3000
    raw = '{"actor": "a", "verb": "v", "object": "o", "x": ' + "[" * depth + "]" * depth + "}"
    response = api.call(
        "POST", f"feed/user/{uid}/", data=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 413), response.text
    assert_error(response, response.status_code, 4, "InputException")
    assert stored_in(db, f"user:{uid}") == NOTHING


@pytest.mark.parametrize(
    "when", ["0999-01-01T00:00:00", "9999-12-31T23:59:59.999999-01:00", "0001-01-01T00:30:00+01:00"]
)
def test_out_of_range_time_is_input_exception(api: Api, db: Any, uid: str, when: str) -> None:
    response = api.add(f"user:{uid}", activity(uid, time=when))
    assert_error(response, 400, 4, "InputException", "time")
    assert stored_in(db, f"user:{uid}") == NOTHING


def test_time_before_1970_is_input_exception(api: Api, db: Any, uid: str) -> None:
    response = api.add(f"user:{uid}", activity(uid, time="1969-12-31T23:59:59"))
    assert_error(response, 400, 4, "InputException", "time")
    assert stored_in(db, f"user:{uid}") == NOTHING


def test_custom_fields_with_mongodb_operator_names_round_trip(api: Api, uid: str) -> None:
    sent = activity(uid, **{"$set": {"a.b": 1}, "a.b": 2, "_id": 3, "nested": {"$gt": [None]}})
    response = api.add(f"user:{uid}", sent)
    assert response.status_code == 201, response.text
    got = api.read(f"user:{uid}")[0]
    assert {k: got[k] for k in sent} == sent


# --- a refused write sends nothing: no live event, no firehose message -----------------------


@pytest.fixture(scope="module")
def hooked(pool: ServerPool, receiver: Receiver) -> ServerProcess:
    """A server of its own whose firehose posts every update to `receiver`."""
    hook = [{"url": receiver.url, "secret": HOOK_SECRET, "feed_groups": []}]
    env = {"TIDINGS_FIREHOSE_WEBHOOK": json.dumps(hook), "TIDINGS_FIREHOSE_POLL_SECONDS": "0.2"}
    return pool.get(env)


def _refusals(uid: str, room: str) -> dict[str, tuple[Any, str, int]]:
    """Each case: (body, token, HTTP status) of a write to `user:<uid>` that is refused."""
    own = token({"resource": "feed", "action": "write", "feed_id": f"user{uid}"})
    return {
        "bad activity": ({"verb": "post", "object": "o", "to": [room]}, SERVER_TOKEN, 400),
        "one bad in a batch": (
            {"activities": [activity(uid, to=[room]), {"actor": "a", "verb": "post"}]},
            SERVER_TOKEN, 400,
        ),
        "unauthorised to": (activity(uid, to=[room]), own, 403),
        "oversized": (activity(uid, to=[room], pad="x" * 20_000), SERVER_TOKEN, 413),
    }  # fmt: skip


@pytest.mark.parametrize("case", ["bad activity", "one bad in a batch", "unauthorised to",
                                  "oversized"])  # fmt: skip
async def test_a_refused_write_stores_and_sends_nothing(
    hooked: ServerProcess, receiver: Receiver, store: Store, uid: str, case: str
) -> None:
    """Refused whole: nothing in any collection, no event on a socket subscribed to every feed
    involved (the author's, its follower's, the `to` room's), no firehose message. "Nothing
    sent" is closed by a marker: a valid write afterwards whose events and message arrive, after
    anything the refused one would have sent."""
    author, follower, room = f"user:{uid}", f"timeline:{uid}", f"raid:{uid}"
    feeds = [author, follower, room]
    api = Api(hooked.url)
    follow = api.call("POST", f"feed/timeline/{uid}/follows/", body={"target": author})
    assert follow.status_code == 201, follow.text
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(store.url)
    db = client[hooked.database]
    sio = socketio.AsyncClient(reconnection=False)
    events: list[dict[str, Any]] = []
    sio.on("feed.update", events.append)
    try:
        await sio.connect(hooked.url, auth={"token": SERVER_TOKEN}, transports=["websocket"])
        for feed in feeds:
            assert (await sio.call("subscribe", {"feed": feed}, timeout=15))["ok"] is True
        before = stored(db, feeds)
        assert before["follows"] == 1, before

        body, auth, status = _refusals(uid, room)[case]
        refused = await asyncio.to_thread(api.add, author, body, auth=auth)
        assert refused.status_code == status, refused.text
        assert stored(db, feeds) == before

        marker = await asyncio.to_thread(api.add, author, activity(uid, to=[room]))
        assert marker.status_code == 201, marker.text
        wanted = {(feed, marker.json()["id"]) for feed in feeds}

        def arrived() -> bool:
            live = {(e["feed"], a["id"]) for e in events for a in e["new"]}
            return wanted <= live and wanted <= receiver.pairs()

        await asyncio.to_thread(wait_until, arrived, 15, 0.05, what="the marker, live and hooked")
    finally:
        await sio.disconnect()
        client.close()
    assert {(e["feed"], a["id"]) for e in events for a in e["new"]} == wanted, events
    assert {pair for pair in receiver.pairs() if pair[0] in feeds} == wanted
