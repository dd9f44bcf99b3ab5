"""Fault points for crash tests: `fault_point(name)` does what the environment variable
`TIDINGS_TEST_FAULT` arms at that point, a comma-separated list of `name[:action[:times]]`:

- `kill` (the default): the process kills itself (SIGKILL, as `kill -9` would: no cleanup, no
  shutdown);
- `lose_answer`: raise pymongo's AutoReconnect, as when the connection drops after the store
  applied a write and before its answer arrived;
- `write_concern`: raise pymongo's BulkWriteError carrying only a write-concern error, as when
  a write was applied on the primary but not confirmed by a majority before a failover;
- `pause` (at an `await fault_pause(name)` only): hold the task there for PAUSE_SECONDS, so
  that a test can act while a write is half done.

`times` limits the point to its first `times` passes (default: every pass). Test-only; when the
variable is unset (any real deployment) a fault point is one dictionary lookup of an empty dict.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass

from pymongo.errors import AutoReconnect, BulkWriteError

ENV = "TIDINGS_TEST_FAULT"
ACTIONS = ("kill", "lose_answer", "write_concern", "pause")
PAUSE_SECONDS = 0.5
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


async def fault_pause(name: str) -> None:
    """Hold here if the tests armed this point with `pause`."""
    if name in _ARMED and _ARMED[name].action == "pause" and _take(name):
        await asyncio.sleep(PAUSE_SECONDS)


def fault_point(name: str) -> None:
    """Act here if the tests armed this point (and it has passes left)."""
    if name in _ARMED and _ARMED[name].action == "pause":
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
