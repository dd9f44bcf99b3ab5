"""The client's current token: fetched through `get_token` when there is none, when it is
about to expire, or when the server said it expired.

A token's `exp` is on the server's clock and the device's clock may be off (a phone set an hour
ahead sees every token expired on arrival), so a token's life is read on the server's clock:
`exp - iat` counted from its arrival, or `exp` moved by the offset of the server's clock (the
HTTP `Date` header of a REST answer), the sooner when both are known; only with neither is the
device's clock trusted. However a token looks, the next one is fetched by itself no sooner than
a floor after it arrived: 1 s, doubling while tokens keep arriving that look nearly expired (up
to 60 s), so a skewed clock cannot make the client ask in a loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .tokens import TokenSource, claims_of, fetch

FLOOR = 1.0  # seconds: the soonest a new token is fetched by itself after one arrived ...
FLOOR_MAX = 60.0  # ... doubling up to this while tokens keep arriving (nearly) expired
Clock = Callable[[], float]


class TokenKeeper:
    def __init__(
        self,
        token: str | None,
        get_token: TokenSource | None,
        ahead: float | None,
        clock: Clock = time.time,
    ):
        if token is None and get_token is None:
            raise ValueError("give a token, a get_token callback, or both")
        self.get_token = get_token
        self.ahead = ahead  # seconds before `exp` to fetch a new one; None: only when told
        self.clock = clock
        self.fetches = 0
        self.offset: float | None = None  # the server's clock minus the device's, seconds
        self._lock = asyncio.Lock()
        self._short = 0  # tokens in a row that wanted a refresh sooner than FLOOR
        self.token: str | None = None
        self._arrived = 0.0
        if token is not None:
            self._arrive(token)

    def server_time(self, timestamp: float) -> None:
        """The server's time (seconds since the epoch) of an answer that arrived just now."""
        self.offset = timestamp - self.clock()

    def expiry(self) -> float | None:
        """When the current token expires, on the device's clock (None: it has no `exp`)."""
        exp, iat = claims_of(self.token) if self.token else (None, None)
        if exp is None:
            return None
        found = []
        if iat is not None:
            found.append(self._arrived + exp - iat)
        if self.offset is not None:
            found.append(exp - self.offset)
        return min(found) if found else exp

    def _remaining(self) -> float | None:
        expiry = self.expiry()
        return None if expiry is None else expiry - self.clock()

    def _wanted(self) -> float | None:
        """Seconds until a refresh: `ahead` seconds before the expiry, at most half the
        token's life (may be negative: it looks expired)."""
        remaining = self._remaining()
        if remaining is None or self.ahead is None:
            return None
        expiry = self.expiry()
        assert expiry is not None
        lifetime = expiry - self._arrived
        return remaining - min(self.ahead, lifetime / 2)

    def _floor(self) -> float:
        return min(FLOOR * float(2 ** max(0, self._short - 1)), FLOOR_MAX)

    def refresh_in(self) -> float | None:
        """Seconds until a new token should be fetched (None: never by itself)."""
        wanted = self._wanted()
        if wanted is None or self.get_token is None:
            return None
        return max(wanted, self._arrived + self._floor() - self.clock())

    async def current(self) -> str:
        """A token to use now: a new one when there is none, or when it looks expired and
        did not arrive just now (a new one would look the same)."""
        remaining = self._remaining()
        arrived_lately = self.clock() - self._arrived < self._floor()
        if self.token is None or (remaining is not None and remaining <= 0 and not arrived_lately):
            await self.renew()
        assert self.token is not None
        return self.token

    async def renew(self, stale: str | None = None) -> bool:
        """Fetch a new token (when `stale` is given, only if the token is still that one:
        concurrent callers fetch once). False when there is no `get_token`."""
        if self.get_token is None:
            return False
        async with self._lock:
            if stale is not None and self.token != stale:
                return True
            token = await fetch(self.get_token)
            self.fetches += 1
            self._arrive(token)
        return True

    def _arrive(self, token: str) -> None:
        self.token, self._arrived = token, self.clock()
        wanted = self._wanted()
        if wanted is not None:
            self._short = self._short + 1 if wanted < FLOOR else 0
