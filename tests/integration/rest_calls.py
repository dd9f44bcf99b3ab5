"""Raw calls of Stream's REST dialect with a chosen token, calls through Stream's npm SDK
(`stream_js`), and a socket that proves nothing was sent, for the authorisation and Stream SDK
tests."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from typing import Any

import pytest
import requests
import socketio

from harness.common import SERVER_TOKEN, token
from tests.support import API_KEY, API_SECRET, ROOT, ServerProcess, wait_until

WAIT = 15.0
Doc = dict[str, Any]


def stream_js(server: ServerProcess, calls: list[Any]) -> list[Any]:
    """Run `calls` through Stream's npm SDK (tests/js/stream_sdk.mjs says their shape): a
    client per user holding that user's token, or the server-side client."""
    if shutil.which("node") is None or not (ROOT / "tests/js/node_modules/getstream").is_dir():
        pytest.fail("node and tests/js/node_modules are needed: run `make install-test`")
    options = {"url": server.url, "key": API_KEY, "secret": API_SECRET, "calls": calls}
    done = subprocess.run(
        ["node", "tests/js/stream_sdk.mjs", json.dumps(options)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results: list[Any] = json.loads(done.stdout)
    assert len(results) == len(calls), results
    return results


def when(minutes: int) -> str:
    return (dt.datetime(2024, 5, 1, 12) + dt.timedelta(minutes=minutes)).isoformat()


class Api:
    """Raw calls of Stream's REST dialect with one token."""

    def __init__(self, server: ServerProcess, claims: Doc | str) -> None:
        self.base = f"{server.base_url}/api/v1.0/"
        self.token = claims if isinstance(claims, str) else token(claims)

    def call(self, method: str, path: str, body: Any = None, **query: str) -> requests.Response:
        return requests.request(
            method, self.base + path, params={"api_key": API_KEY, **query}, json=body,
            headers={"Authorization": self.token, "stream-auth-type": "jwt"}, timeout=WAIT,
        )  # fmt: skip

    def ok(self, method: str, path: str, body: Any = None, **query: str) -> Doc:
        answer = self.call(method, path, body, **query)
        assert answer.status_code in (200, 201), (method, path, answer.status_code, answer.text)
        result: Doc = answer.json()
        return result

    def refused(self, method: str, path: str, body: Any = None, **query: str) -> Doc:
        answer = self.call(method, path, body, **query)
        assert answer.status_code == 403, (method, path, answer.status_code, answer.text)
        result: Doc = answer.json()
        assert result["exception"] == "NotAllowedException" and result["code"] == 17, result
        return result

    def ids(self, feed: str) -> list[str]:
        slug, _, user_id = feed.partition(":")
        return [a["id"] for a in self.ok("GET", f"feed/{slug}/{user_id}/")["results"]]

    def following(self, feed: str) -> list[str]:
        slug, _, user_id = feed.partition(":")
        return [
            r["target_id"] for r in self.ok("GET", f"feed/{slug}/{user_id}/follows/")["results"]
        ]


def feed_path(feed: str, tail: str = "") -> str:
    slug, _, user_id = feed.partition(":")
    return f"feed/{slug}/{user_id}/{tail}"


def targets_path(feed: str) -> str:
    slug, _, user_id = feed.partition(":")
    return f"feed_targets/{slug}/{user_id}/activity_to_targets/"


class Watcher:
    """A socket (server token) subscribed to feeds, recording every `feed.update`. `quiet`
    proves that nothing was sent about an activity: a marker activity added afterwards to a
    watched feed arrives, and no update before it named the activity."""

    def __init__(self, server: ServerProcess, feeds: list[str]) -> None:
        self.server = server
        self.events: list[Doc] = []
        self.client = socketio.Client(reconnection=False)
        self.client.on("feed.update", self.events.append)
        self.client.connect(
            server.base_url, auth={"token": SERVER_TOKEN}, transports=["websocket"],
            wait_timeout=WAIT,
        )  # fmt: skip
        for feed in feeds:
            ack = self.client.call("subscribe", {"feed": feed}, timeout=WAIT)
            assert ack["ok"], ack

    def named(self, activity_id: str) -> list[Doc]:
        return [
            e
            for e in list(self.events)
            if any(a.get("id") == activity_id for a in e.get("new", []))
            or activity_id in e.get("deleted", [])
        ]

    def quiet(self, activity_id: str, marker_feed: str, *reached: str) -> str:
        """Add a marker to `marker_feed`, wait for its update on that feed and on the watched
        feeds it `reached` (its followers), then assert no update named `activity_id`.
        Answers the marker's id."""
        server = Api(self.server, SERVER_TOKEN)
        body = {"actor": "m", "verb": "mark", "object": "marker"}
        marker = str(server.ok("POST", feed_path(marker_feed), body)["id"])
        for feed in (marker_feed, *reached):
            wait_until(
                lambda feed=feed: any(e["feed"] == feed for e in self.named(marker)),
                WAIT, 0.02, what=f"the marker's update on {feed}",
            )  # fmt: skip
        assert self.named(activity_id) == [], self.named(activity_id)
        return marker

    def close(self) -> None:
        self.client.disconnect()


def activity(fid: str, minutes: int = 1, **extra: Any) -> Doc:
    return {"actor": "bob", "verb": "post", "object": fid, "foreign_id": fid,
            "time": when(minutes), **extra}  # fmt: skip
