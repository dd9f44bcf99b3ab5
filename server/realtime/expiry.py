"""Tokens that expire while their socket is connected.

At the token's `exp` the socket is sent `token.expired {grace}`; unless it sends
`token.refresh {token}` with a valid token within `realtime.token_grace_seconds`, it is
disconnected. A refresh replaces the socket's grant; subscriptions the new token may not read are
dropped and named in the ack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ..auth import Grant
from ..background import spawn

TOKEN_EXPIRED = "token.expired"
Notify = Callable[[str], Awaitable[None]]


class ExpiryTimers:
    """One timer per socket whose token has an `exp`: warn at `exp`, drop at `exp + grace`."""

    def __init__(self, grace: float, warn: Notify, drop: Notify) -> None:
        self.grace = grace
        self._warn, self._drop = warn, drop
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def watch(self, sid: str, grant: Grant) -> None:
        self.forget(sid)
        if grant.expires_at is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, grant.expires_at - time.time())
        self._timers[sid] = loop.call_later(delay, self._expired, sid)

    def _expired(self, sid: str) -> None:
        loop = asyncio.get_running_loop()
        self._timers[sid] = loop.call_later(self.grace, self._overdue, sid)
        spawn(self._warn(sid))

    def _overdue(self, sid: str) -> None:
        self._timers.pop(sid, None)
        spawn(self._drop(sid))

    def forget(self, sid: str) -> None:
        timer = self._timers.pop(sid, None)
        if timer is not None:
            timer.cancel()

    def __len__(self) -> int:
        return len(self._timers)
