"""Fault points for crash tests: `fault_point(name)` does what the environment variable
`TIDINGS_TEST_FAULT` arms at that point, a comma-separated list of `name[:action]`:

- `kill` (the default): the process kills itself (SIGKILL, as `kill -9` would: no cleanup, no
  shutdown);
- `lose_answer`: raise pymongo's AutoReconnect, as when the store's connection drops at that
  step (the request answers 503; the process carries on).

Test-only; when the variable is unset (any real deployment) a fault point is one lookup in an
empty dict.
"""

from __future__ import annotations

import os
import signal

from pymongo.errors import AutoReconnect

ENV = "TIDINGS_TEST_FAULT"
ACTIONS = ("kill", "lose_answer")


def _parse(value: str) -> dict[str, str]:
    armed: dict[str, str] = {}
    for item in filter(None, value.split(",")):
        name, _, action = item.partition(":")
        if (action or "kill") not in ACTIONS:
            raise ValueError(f"{ENV}: unknown action {action!r} at {name}")
        armed[name] = action or "kill"
    return armed


_ARMED = _parse(os.environ.get(ENV, ""))


def fault_point(name: str) -> None:
    """Act here if the tests armed this point."""
    action = _ARMED.get(name)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "lose_answer":
        raise AutoReconnect(f"fault point {name}: the connection dropped")
