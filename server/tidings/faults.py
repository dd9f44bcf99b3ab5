"""Fault points for crash tests: `fault_point(name)` kills its own process (SIGKILL, as `kill -9`
would: no cleanup, no shutdown) when the environment variable `TIDINGS_TEST_FAULT` names that
point, or raises a store error there (as a store outage at that step would: the request fails
with 503, the process lives on) when it names it as `name:raise`. Test-only; when the variable is
unset (any real deployment) a fault point is two set lookups of values read once at import.
"""

from __future__ import annotations

import os
import signal

from pymongo.errors import AutoReconnect

ENV = "TIDINGS_TEST_FAULT"
_NAMES = [name for name in os.environ.get(ENV, "").split(",") if name]
_ARMED = frozenset(name for name in _NAMES if not name.endswith(":raise"))
_RAISING = frozenset(name.removesuffix(":raise") for name in _NAMES if name.endswith(":raise"))


def fault_point(name: str) -> None:
    """Die here, at once, if the tests armed this point; fail here if they armed it to raise."""
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
    if name in _RAISING:
        raise AutoReconnect(f"fault point {name}")
