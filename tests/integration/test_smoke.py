from __future__ import annotations

import requests

from tests.support import ServerProcess


def test_health_and_readiness(server: ServerProcess) -> None:
    assert requests.get(server.url + "/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(server.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["store"] == "ok"
    metrics = requests.get(server.url + "/metrics", timeout=5).text
    assert "tidings_connected_sockets" in metrics


def test_outside_the_api_plain_404_and_counted(server: ServerProcess) -> None:
    """The API's middlewares stay inside /api/ (a path of no route elsewhere is aiohttp's plain
    404), and the root's metering counts every request, the ops' too."""
    missing = requests.get(server.url + "/no/such/path", timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("text/plain")
    requests.get(server.url + "/healthz", timeout=5)
    metrics = requests.get(server.url + "/metrics", timeout=5).text
    assert 'tidings_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics


def test_sdk_add_and_read(client, uid: str) -> None:
    feed = client.feed("user", uid)
    added = feed.add_activity({"actor": uid, "verb": "post", "object": "o1"})
    results = feed.get()["results"]
    assert [a["id"] for a in results] == [added["id"]]
