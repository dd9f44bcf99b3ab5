"""The client's current token: fetched through `get_token` when there is none, when it is
about to expire, or when the server said it expired."""

from __future__ import annotations

import asyncio
import time

from .tokens import TokenSource, expires_at, fetch


class TokenKeeper:
    def __init__(self, token: str | None, get_token: TokenSource | None, ahead: float | None):
        if token is None and get_token is None:
            raise ValueError("give a token, a get_token callback, or both")
        self.token = token
        self.get_token = get_token
        self.ahead = ahead  # seconds before `exp` to fetch a new one; None: only when told
        self.fetches = 0
        self._lock = asyncio.Lock()
        self._lifetime = self._remaining()

    def _remaining(self) -> float | None:
        exp = expires_at(self.token) if self.token else None
        return None if exp is None else exp - time.time()

    def refresh_in(self) -> float | None:
        """Seconds until a new token should be fetched (None: never by itself): `ahead`
        seconds before `exp`, at most half the token's lifetime."""
        remaining = self._remaining()
        if remaining is None or self.get_token is None or self.ahead is None:
            return None
        lifetime = self._lifetime if self._lifetime is not None else remaining
        return max(0.0, remaining - min(self.ahead, lifetime / 2))

    async def current(self) -> str:
        """A token to use now: a new one when there is none or it expired."""
        remaining = self._remaining()
        if self.token is None or (remaining is not None and remaining <= 0):
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
            self.token = await fetch(self.get_token)
            self.fetches += 1
            self._lifetime = self._remaining()
        return True
