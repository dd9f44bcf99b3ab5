"""Tokens that expire while their socket is connected.

At the token's `exp` the socket is sent `token.expired {grace}`; unless it sends
`token.refresh {token}` with a valid token within `realtime.token_grace_seconds`, it is
disconnected. A refresh replaces the socket's grant; subscriptions the new token may not read are
dropped and named in the ack. Only sockets whose token has an `exp` hold a timer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ...runtime.background import spawn
from ..transport.peers import Peer

TOKEN_EXPIRED = "token.expired"
Notify = Callable[[Peer], Awaitable[None]]


class ExpiryTimers:
    """One timer per socket whose token has an `exp`: warn at `exp`, drop at `exp + grace`."""

    def __init__(self, grace: float, warn: Notify, drop: Notify) -> None:
        self.grace = grace
        self._warn, self._drop = warn, drop
        self._timers: dict[Peer, asyncio.TimerHandle] = {}

    def watch(self, peer: Peer) -> None:
        self.forget(peer)
        expires_at = peer.grant.expires_at if peer.grant is not None else None
        if expires_at is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, expires_at - time.time())
        self._timers[peer] = loop.call_later(delay, self._expired, peer)

    def _expired(self, peer: Peer) -> None:
        loop = asyncio.get_running_loop()
        self._timers[peer] = loop.call_later(self.grace, self._overdue, peer)
        spawn(self._warn(peer))

    def _overdue(self, peer: Peer) -> None:
        self._timers.pop(peer, None)
        spawn(self._drop(peer))

    def forget(self, peer: Peer) -> None:
        timer = self._timers.pop(peer, None)
        if timer is not None:
            timer.cancel()

    def __len__(self) -> int:
        return len(self._timers)
