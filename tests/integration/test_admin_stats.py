"""GET /admin/stats (the dashboard's data) and CORS of the REST API, on real server processes."""

from __future__ import annotations

import json

import pytest
import requests

from harness.common import SERVER_TOKEN, token
from harness.pool import ServerPool
from harness.webhooks import SECRET
from tests.support import API_KEY, ServerProcess, free_port, wait_until


def stats(server: ServerProcess, jwt: str | None = SERVER_TOKEN) -> requests.Response:
    headers = {"Authorization": jwt} if jwt else {}
    return requests.get(server.url + "/admin/stats", headers=headers, timeout=5)


def add(server: ServerProcess, feed: str, activity: dict[str, object]) -> dict[str, object]:
    slug, user = feed.split(":")
    answer = requests.post(
        f"{server.url}/api/v1.0/feed/{slug}/{user}/", params={"api_key": API_KEY},
        json=activity, headers={"Authorization": SERVER_TOKEN}, timeout=10,
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_server_tokens_only(server: ServerProcess, uid: str) -> None:
    assert stats(server, None).status_code == 401
    assert stats(server, "not.a.token").status_code == 401
    assert stats(server, token({"user_id": uid})).status_code == 403
    scoped = token({"resource": "feed", "action": "*", "feed_id": "*"})
    assert stats(server, scoped).status_code == 403
    refused = stats(server, token({"user_id": uid}))
    assert set(refused.json()) == {"code", "detail", "exception", "status_code", "duration"}
    assert refused.json()["exception"] == "NotAllowedException"  # Stream's shape, as the API's
    body = stats(server).json()
    assert body["redis"] == "off"
    assert [n["self"] for n in body["nodes"]] == [True]
    assert body["latency"]["buckets"][-1] == "+Inf"


def test_latency_counts_an_insert(server: ServerProcess, uid: str) -> None:
    def direct() -> int:
        path = stats(server).json()["latency"]["paths"].get("direct")
        return int(path["count"]) if path else 0

    before = direct()
    add(server, f"user:{uid}", {"actor": uid, "verb": "post", "object": "x:1"})
    wait_until(lambda: direct() > before, 10, 0.05, what="the insert in the histogram")
    after = stats(server).json()["latency"]["paths"]["direct"]
    assert after["count"] == before + 1
    assert sum(after["counts"]) == after["count"]


@pytest.fixture(scope="module")
def failing_firehose(pool: ServerPool) -> ServerProcess:
    """A node whose one webhook answers nothing (a closed port): its messages wait for retries."""
    hook = [{"url": f"http://127.0.0.1:{free_port()}/hook", "secret": SECRET}]
    env = {"TIDINGS_FIREHOSE_WEBHOOK": json.dumps(hook),
           "TIDINGS_FIREHOSE_RETRY_INITIAL_SECONDS": "600",
           "TIDINGS_SERVER_CORS_ALLOWED_ORIGINS": "http://app.test"}  # fmt: skip
    return pool.get(env)


def test_firehose_messages_due(failing_firehose: ServerProcess, uid: str) -> None:
    add(failing_firehose, f"user:{uid}", {"actor": uid, "verb": "post", "object": "x:1"})

    def due() -> dict[str, object] | None:
        firehose = stats(failing_firehose).json()["firehose"]
        return firehose if firehose["due"] >= 1 else None

    firehose = wait_until(due, 15, 0.1, what="a firehose message due for a retry")
    assert len(firehose["endpoints"]) == 1
    assert firehose["dead"] == 0


def get(url: str, api_key: str, origin: str) -> requests.Response:
    headers = {"Authorization": SERVER_TOKEN, "Origin": origin}
    return requests.get(url, params={"api_key": api_key}, headers=headers, timeout=5)


def test_cors_of_the_rest_api(failing_firehose: ServerProcess, uid: str) -> None:
    url = f"{failing_firehose.url}/api/v1.0/feed/user/{uid}/"
    preflight = requests.options(url, headers={
        "Origin": "http://app.test", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, stream-auth-type",
    }, timeout=5)  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://app.test"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    read = get(url, API_KEY, "http://app.test")
    assert read.status_code == 200
    assert read.headers["Access-Control-Allow-Origin"] == "http://app.test"
    refused = get(url, "wrong", "http://app.test")
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == "http://app.test"  # errors readable
    other = get(url, API_KEY, "http://evil.test")
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_anywhere_under_the_api_only(failing_firehose: ServerProcess) -> None:
    """A path of no route under /api/ is answered as one of the API (preflight, Stream's 404
    readable cross-origin); the admin's and the ops' paths, same-origin only, get no CORS."""
    origin = {"Origin": "http://app.test"}
    for path in ("/api/v1.0/no/such/", "/api/v9.9/feed/user/bob/"):
        preflight = requests.options(
            failing_firehose.url + path,
            headers={**origin, "Access-Control-Request-Method": "GET"}, timeout=5,
        )  # fmt: skip
        assert preflight.status_code == 204, path
        assert preflight.headers["Access-Control-Allow-Origin"] == "http://app.test"
        missing = get(failing_firehose.url + path, API_KEY, "http://app.test")
        assert missing.status_code == 404 and missing.json()["code"] == 16, path
        assert missing.headers["Access-Control-Allow-Origin"] == "http://app.test"
    for path in ("/admin/stats", "/healthz"):
        answer = requests.get(
            failing_firehose.url + path, headers={**origin, "Authorization": SERVER_TOKEN},
            timeout=5,
        )  # fmt: skip
        assert answer.status_code == 200, path
        assert "Access-Control-Allow-Origin" not in answer.headers, path
