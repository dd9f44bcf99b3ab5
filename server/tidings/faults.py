"""Fault points for crash and race tests. Test-only; when the variables are unset (any real
deployment) a fault point is one comparison against a value read once at import.

- `fault_point(name)` kills its own process (SIGKILL, as `kill -9` would: no cleanup, no
  shutdown) when `TIDINGS_TEST_FAULT` names that point, and raises `InjectedFault` the first
  time it is reached when `TIDINGS_TEST_RAISE` names it (an error the caller did not expect,
  after which the process carries on).
- `await fault_hold(name)` holds its task when `TIDINGS_TEST_HOLD` names that point: the n-th
  arrival (from 1) writes `<name>.<n>.held` in the directory `TIDINGS_TEST_HOLD_DIR` and waits
  until `<name>.<n>.release` or `<name>.open` exists there, so a test can land other writes
  in between and let the held ones go in the order it chooses.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path

ENV = "TIDINGS_TEST_FAULT"
RAISE_ENV = "TIDINGS_TEST_RAISE"
HOLD_ENV = "TIDINGS_TEST_HOLD"
HOLD_DIR_ENV = "TIDINGS_TEST_HOLD_DIR"
HOLD_POLL = 0.01  # seconds between two looks for the release marker


def _names(env: str) -> frozenset[str]:
    return frozenset(name for name in os.environ.get(env, "").split(",") if name)


_ARMED = _names(ENV)
_RAISING = set(_names(RAISE_ENV))  # each raises once
_HOLDING = _names(HOLD_ENV)
_ARRIVALS = {name: itertools.count(1) for name in _HOLDING}


class InjectedFault(RuntimeError):
    """Raised by a fault point armed with TIDINGS_TEST_RAISE."""


def fault_point(name: str) -> None:
    """Die here, at once, or raise (once), if the tests armed this point."""
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
    if name in _RAISING:
        _RAISING.discard(name)
        raise InjectedFault(name)


async def fault_hold(name: str) -> None:
    """Wait here until the test releases this arrival, if the tests armed this point."""
    if name not in _HOLDING:
        return
    folder = Path(os.environ[HOLD_DIR_ENV])
    arrival = next(_ARRIVALS[name])
    (folder / f"{name}.{arrival}.held").touch()
    release, opened = folder / f"{name}.{arrival}.release", folder / f"{name}.open"
    while True:  # a marker written by another process: nothing to await but the file
        if release.exists() or opened.exists():
            return
        await asyncio.sleep(HOLD_POLL)
