"""Socket.IO's own protocol conformance suite (tests/protocol/socket.io-protocol, adapted to
Tidings: its README says how) run by mocha against two servers at once: one with the fast
WebSocket path (direct WebSockets on Tidings' own codec, long-polling and upgrades on
python-socketio) and one with `realtime.fast_websocket = false` (python-socketio for all).

Both runs are one mocha process each, started together (they mostly wait on timers: about
20 s for both); each test of the suite is reported by its full title when it fails. The
servers' logs must hold no traceback afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.common import SERVER_TOKEN
from harness.pool import ServerPool
from harness.server import ServerProcess
from tests.support import ROOT

SUITE = ROOT / "tests/protocol/socket.io-protocol"
NODE_MODULES = ROOT / "tests/js/node_modules"
PING_INTERVAL, PING_TIMEOUT, CONNECT_TIMEOUT = 1.0, 1.0, 4.0  # the schema's minimum heartbeat
TIMERS = {
    "TIDINGS_REALTIME_PING_INTERVAL": str(PING_INTERVAL),
    "TIDINGS_REALTIME_PING_TIMEOUT": str(PING_TIMEOUT),
    # above the heartbeat tests' length (three pings, no Socket.IO connect)
    "TIDINGS_REALTIME_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
}
PATHS = {"fast": "true", "socketio": "false"}


def suite_env(server: ServerProcess) -> dict[str, str]:
    return {
        **os.environ,
        "TIDINGS_URL": server.url,
        "TIDINGS_TOKEN": SERVER_TOKEN,
        "TIDINGS_FEED": f"user:{uuid.uuid4().hex[:10]}",
        "TIDINGS_PING_INTERVAL_MS": str(int(PING_INTERVAL * 1000)),
        "TIDINGS_PING_TIMEOUT_MS": str(int(PING_TIMEOUT * 1000)),
        "TIDINGS_CONNECT_TIMEOUT_MS": str(int(CONNECT_TIMEOUT * 1000)),
    }


def exported(into: Path) -> Path:
    """The suite in a directory of its own, as an ES module package beside tests/js's
    node_modules (node resolves bare imports from the importing file's directories)."""
    into.mkdir()
    for name in ("test-suite.js", "node-imports.js"):
        shutil.copy(SUITE / name, into / name)
    (into / "package.json").write_text('{"private": true, "type": "module"}\n')
    (into / "node_modules").symlink_to(NODE_MODULES)
    return into


@pytest.fixture(scope="module")
def reports(pool: ServerPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """{path: (mocha's JSON report, the server)} of one run of the suite on each path."""
    if shutil.which("node") is None or not (NODE_MODULES / ".bin/mocha").exists():
        pytest.fail("node and tests/js/node_modules (with mocha) are needed: make install-test")
    work = tmp_path_factory.mktemp("socket.io-protocol")
    runs = {}
    for path, fast in PATHS.items():
        server = pool.get({**TIMERS, "TIDINGS_REALTIME_FAST_WEBSOCKET": fast})
        cwd = exported(work / path)
        command = [
            str(NODE_MODULES / ".bin/mocha"), "test-suite.js", "--exit", "--timeout", "4000",
            "--reporter", "json", "--reporter-option", f"output={cwd / 'report.json'}",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=cwd, env=suite_env(server), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        runs[path] = (process, cwd, server)
    results = {}
    for path, (process, cwd, server) in runs.items():
        output, _ = process.communicate(timeout=120)
        report = cwd / "report.json"
        assert report.exists(), output[-3000:]
        results[path] = (json.loads(report.read_text()), server)
    yield results


@pytest.mark.parametrize("path", list(PATHS))
def test_socketio_protocol_suite(path: str, reports: Any) -> None:
    """Every test of the suite passes, none is skipped, and the server logged no traceback."""
    report, server = reports[path]
    failures = [
        f"- {t['fullTitle']}: {(t.get('err') or {}).get('message', '')[:300]}"
        for t in report["failures"]
    ]
    assert not failures, "\n".join(failures)
    assert not report["pending"], [t["fullTitle"] for t in report["pending"]]
    assert len(report["passes"]) >= 33, report["stats"]
    assert server.log_path is not None
    assert "Traceback" not in server.log_path.read_text(errors="replace")
