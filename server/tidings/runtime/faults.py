"""Fault points for crash tests: `fault_point(name)` does what the environment variable
`TIDINGS_TEST_FAULT` arms at that point, a comma-separated list of `name[:action[:times]]`:

- `kill` (the default): the process kills itself (SIGKILL, as `kill -9` would: no cleanup, no
  shutdown);
- `lose_answer`: raise pymongo's AutoReconnect, as when the connection drops after the store
  applied a write and before its answer arrived;
- `write_concern`: raise pymongo's BulkWriteError carrying only a write-concern error, as when
  a write was applied on the primary but not confirmed by a majority before a failover;
- `pause` (at an `await fault_pause(name)` only): hold the task there for PAUSE_SECONDS, so
  that a test can act while a write is half done;
- `hold` (at an `await fault_pause(name)` only): hold the task until the test lets it go. The
  n-th pass (from 1) writes `<name>.<n>.held` in the directory `TIDINGS_TEST_HOLD_DIR` and
  waits until `<name>.<n>.release` or `<name>.open` is there, so that a test lands other
  writes in between and lets held ones go in the order it chooses.

`times` limits the point to its first `times` passes (default: every pass). Test-only; when the
variable is unset (any real deployment) a fault point is one dictionary lookup of an empty dict.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from pymongo.errors import AutoReconnect, BulkWriteError

ENV = "TIDINGS_TEST_FAULT"
ACTIONS = ("kill", "lose_answer", "write_concern", "pause", "hold")
PAUSE_SECONDS = 0.5
HOLD_DIR = "TIDINGS_TEST_HOLD_DIR"
HOLD_POLL = 0.01  # seconds between two looks for the test's marker
WRITE_CONCERN_FAILED = 64  # MongoDB's WriteConcernFailed (a `wtimeout` ran out)


@dataclass
class _Armed:
    action: str
    left: int | None  # passes that still act (None: every one)


def _parse(value: str) -> dict[str, _Armed]:
    armed: dict[str, _Armed] = {}
    for item in filter(None, value.split(",")):
        name, _, rest = item.partition(":")
        action, _, times = rest.partition(":")
        if (action or "kill") not in ACTIONS:
            raise ValueError(f"{ENV}: unknown action {action!r} at {name}")
        armed[name] = _Armed(action or "kill", int(times) if times else None)
    return armed


_ARMED = _parse(os.environ.get(ENV, ""))


def _take(name: str) -> str | None:
    """The action armed at `name` for this pass, if any."""
    armed = _ARMED.get(name)
    if armed is None or armed.left == 0:
        return None
    if armed.left is not None:
        armed.left -= 1
    return armed.action


_PASSES = {name: itertools.count(1) for name, armed in _ARMED.items() if armed.action == "hold"}


async def fault_pause(name: str) -> None:
    """Hold here if the tests armed this point with `pause` or `hold`."""
    if name not in _ARMED or _ARMED[name].action not in ("pause", "hold") or not _take(name):
        return
    if _ARMED[name].action == "pause":
        await asyncio.sleep(PAUSE_SECONDS)
        return
    folder, arrival = Path(os.environ[HOLD_DIR]), next(_PASSES[name])
    (folder / f"{name}.{arrival}.held").touch()
    release, opened = folder / f"{name}.{arrival}.release", folder / f"{name}.open"
    while True:  # a marker that another process writes: nothing to await but the file
        if release.exists() or opened.exists():
            return
        await asyncio.sleep(HOLD_POLL)


def fault_point(name: str) -> None:
    """Act here if the tests armed this point (and it has passes left)."""
    if name in _ARMED and _ARMED[name].action in ("pause", "hold"):
        return
    action = _take(name)
    if action is None:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "lose_answer":
        raise AutoReconnect(f"fault point {name}: the connection dropped")
    raise BulkWriteError({
        "writeErrors": [],
        "writeConcernErrors": [{
            "code": WRITE_CONCERN_FAILED,
            "errmsg": f"fault point {name}: waiting for replication timed out",
            "errInfo": {"wtimeout": True},
        }],
        "nInserted": 0, "nUpserted": 0, "nMatched": 0, "nModified": 0, "nRemoved": 0,
        "upserted": [],
    })  # fmt: skip
