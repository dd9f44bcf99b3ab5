"""A token bucket: the per-socket bound of `publish` (`realtime.publish_rate`, `publish_burst`).

A publish takes a token; tokens come back at `rate` per second up to `burst`. With none left the
publish is refused at once (RateLimitReached), never queued: a game client that floods a room is
told to slow down instead of growing the server's queues.
"""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float | None = None) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic() if now is None else now

    def take(self, now: float | None = None) -> bool:
        """Take one token; False (and nothing taken) when there is none."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def retry_after(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1.0 - self.tokens) / self.rate)
