"""What the firehose tests share: REST calls with the server token, quick retry settings, the
webhook configuration of a server, and the `tidings firehose` command."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import requests

from harness.common import SERVER_TOKEN
from harness.webhooks import SECRET, Receiver
from tests.support import API_KEY, ROOT, ServerProcess

HEADERS = {"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"}
FAST = {
    "TIDINGS_FIREHOSE_RETRY_INITIAL_SECONDS": "0.3",
    "TIDINGS_FIREHOSE_RETRY_MAX_SECONDS": "1",
    "TIDINGS_FIREHOSE_LEASE_SECONDS": "2",
    "TIDINGS_FIREHOSE_POLL_SECONDS": "0.2",
    "TIDINGS_FIREHOSE_TIMEOUT_SECONDS": "2",
    "TIDINGS_FANOUT_LEASE_SECONDS": "3",
}


def call(node: ServerProcess, method: str, path: str, **kw: Any) -> requests.Response:
    response = requests.request(
        method, f"{node.url}/api/v1.0/{path}", params={"api_key": API_KEY, **kw.pop("params", {})},
        headers=HEADERS, timeout=15, **kw,
    )  # fmt: skip
    assert response.status_code in (200, 201), response.text
    return response


def webhooks(
    *hooks: tuple[Receiver, list[str]], reacting: tuple[Receiver, ...] = ()
) -> dict[str, str]:
    """The webhook endpoints of a node: each receiver with its `feed_groups`; those in
    `reacting` take reaction events too (`reactions = true`)."""
    config = [
        {"url": r.url, "secret": SECRET, "feed_groups": groups, "reactions": r in reacting}
        for r, groups in hooks
    ]
    return {"TIDINGS_FIREHOSE_WEBHOOK": json.dumps(config)}


def follow(node: ServerProcess, followers: list[str], author: str) -> None:
    for follower in followers:
        call(node, "POST", f"feed/{follower.replace(':', '/')}/follows/", json={"target": author})


def add(node: ServerProcess, feed: str, **extra: Any) -> str:
    body = {"actor": "a", "verb": "post", "object": "o:1", **extra}
    return str(call(node, "POST", f"feed/{feed.replace(':', '/')}/", json=body).json()["id"])


def cli(node: ServerProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in node.env.items() if k != "TIDINGS_SERVER_PORT"}
    return subprocess.run(
        [sys.executable, "-m", "tidings", "firehose", *argv], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
