"""Fault points for crash tests: `fault_point(name)` kills its own process (SIGKILL, as `kill -9`
would: no cleanup, no shutdown) when the environment variable `TIDINGS_TEST_FAULT` names that
point. Test-only; when the variable is unset (any real deployment) a fault point is one
comparison against a value read once at import.
"""

from __future__ import annotations

import os
import signal

ENV = "TIDINGS_TEST_FAULT"
_ARMED = frozenset(name for name in os.environ.get(ENV, "").split(",") if name)


def fault_point(name: str) -> None:
    """Die here, at once, if the tests armed this point."""
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
