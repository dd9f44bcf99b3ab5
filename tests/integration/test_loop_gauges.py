"""/metrics says how a node's event loop is doing: its asyncio tasks and its lag."""

from __future__ import annotations

import time

import requests

from harness.server import ServerProcess


def _gauges(server: ServerProcess) -> dict[str, float]:
    text = requests.get(server.url + "/metrics", timeout=5).text
    wanted = ("tidings_asyncio_tasks ", "tidings_event_loop_lag_seconds ")
    return {
        line.partition(" ")[0]: float(line.partition(" ")[2])
        for line in text.splitlines()
        if line.startswith(wanted)
    }


def test_metrics_show_the_event_loops_tasks_and_lag(server: ServerProcess) -> None:
    deadline = time.monotonic() + 5
    gauges = _gauges(server)
    while gauges.get("tidings_asyncio_tasks", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)  # the first measurement comes half a second after the start
        gauges = _gauges(server)
    assert gauges["tidings_asyncio_tasks"] >= 3  # the node's own background tasks at least
    assert 0 <= gauges["tidings_event_loop_lag_seconds"] < 5
