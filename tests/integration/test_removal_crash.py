"""A removal cut short by a crash (kill -9) is finished by a retried DELETE.

The server dies at the fault point `remove.between_steps` (server/tidings/faults.py), between
writing the removal's durable record (its fanout job) and deleting any entry. After a restart,
the job's takeover clears the follower feeds, and the retried DELETE still finds the activity
and finishes the removal everywhere: its feed, its `to` feed and every follower feed. (Before
the fix the entries went first: a crash there left the followers holding it for good.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.common import SERVER_TOKEN
from tests.support import API_KEY, ServerProcess, Store, wait_until

HEADERS = {"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"}
FAULT_ENV = {"TIDINGS_FANOUT_LEASE_SECONDS": "3", "TIDINGS_FANOUT_POLL_SECONDS": "0.5"}


def call(node: ServerProcess, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(
        method, f"{node.url}/api/v1.0/{path}", params={"api_key": API_KEY, **kw.pop("params", {})},
        headers=HEADERS, timeout=15, **kw,
    )  # fmt: skip


def ids(node: ServerProcess, feed: str) -> list[str]:
    response = call(node, "GET", f"feed/{feed.replace(':', '/')}/")
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()["results"]]


@pytest.fixture
def nodes(store: Store, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for node in started:
        node.kill()


def test_removal_killed_midway_is_finished_by_a_retry(
    store: Store, nodes: list[ServerProcess], tmp_path: Path, uid: str
) -> None:
    armed = ServerProcess(
        store.url, env={**FAULT_ENV, "TIDINGS_TEST_FAULT": "remove.between_steps"},
        log_path=tmp_path / "armed.log",
    )  # fmt: skip
    nodes.append(armed.start())
    author, target = f"user:{uid}", f"raid:{uid}"
    followers = [f"timeline:{uid}-{i}" for i in range(3)]
    for follower in followers:
        followed = call(
            armed, "POST", f"feed/{follower.replace(':', '/')}/follows/", json={"target": author}
        )
        assert followed.status_code == 201, followed.text
    added = call(
        armed, "POST", f"feed/user/{uid}/",
        json={"actor": uid, "verb": "post", "object": "o:1", "to": [target]},
    )  # fmt: skip
    assert added.status_code == 201, added.text
    aid = added.json()["id"]
    wait_until(lambda: all(ids(armed, f) == [aid] for f in followers), 15, what="the fanout")

    with pytest.raises(requests.ConnectionError):
        call(armed, "DELETE", f"feed/user/{uid}/{aid}/")
    assert armed.process is not None
    assert armed.process.wait(10) == -9, "the fault point did not fire"

    restarted = ServerProcess(
        store.url, database=armed.database, env=FAULT_ENV, log_path=tmp_path / "restarted.log"
    )
    nodes.append(restarted.start())
    # The removal's job was stored before the crash: its takeover (once the dead node's lease
    # ran out) clears the follower feeds even before any retry.
    wait_until(
        lambda: all(ids(restarted, f) == [] for f in followers), 20,
        what="the removal job's takeover to clear the follower feeds",
    )  # fmt: skip
    assert ids(restarted, author) == [aid]  # the retry still finds it
    retried = call(restarted, "DELETE", f"feed/user/{uid}/{aid}/")
    assert retried.status_code == 200, retried.text
    every = [author, target, *followers]
    wait_until(
        lambda: all(ids(restarted, f) == [] for f in every), 20,
        what="the removal to reach every feed",
    )  # fmt: skip
