"""This node's fanout rate: follower entries stored per second by its fanout batches' bulk
inserts, kept current from the batches themselves, so that push or pull is decided by how long
a push takes here (domain/fanout_mode.py).

- Throughput, not the speed of one insert: batches run `fanout.concurrency` at once, so the
  time an insert counts is its share of the time the metered inserts were in flight (while k
  of them are, each counts a k-th of it): the shares of overlapping inserts add up to the time
  once. An insert adds its entries and its share when it ends.
- Windows: entries and time add up until a window holds a full batch's worth of entries
  (`full`), then the window's rate is folded into an exponentially weighted moving average
  (`smoothing` per window). Every window weighs the same number of entries, so a small batch
  weighs in proportion to its size.
- Batches under a quarter of a full batch are not metered at all: their time is mostly the
  round trip, not the writing, and a deployment of many small fanouts would otherwise look
  slow for the big ones.
- Until its first window closes the rate is `initial` (the caller picks the rate at which the
  budget meets the upper bound: a node that measured nothing decides as with counts alone).
  The first window replaces it whole: `initial` is a stand-in, not a measurement, and averaging
  away from it would take a dozen windows during which big feeds stay push.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..config import FanoutSettings
from ..domain.fanout_mode import ModeBounds

SMOOTHING = 0.3  # weight of each new window in the average


class FanoutRate:
    def __init__(
        self,
        initial: float,
        full: int,
        smoothing: float = SMOOTHING,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._rate = initial
        self._full, self._smoothing, self._clock = max(1, full), smoothing, clock
        self._in_flight = 0
        self._mark = 0.0  # when the shared clock was last moved
        self._shared = 0.0  # seconds of in-flight time per insert in flight, summed over time
        self._busy = 0.0  # the shares of the inserts that ended, in this window
        self._entries = 0  # entries of the inserts that ended, in this window
        self.windows = 0  # windows folded in so far

    @property
    def per_second(self) -> float:
        return self._rate

    @contextmanager
    def insert(self, entries: int) -> Iterator[None]:
        """Meter one bulk insert of `entries` follower entries (one that fails counts its
        time with no entries: a failing store is a slow one)."""
        if entries * 4 < self._full:
            yield
            return
        begun = self._count()
        self._in_flight += 1
        stored = 0
        try:
            yield
            stored = entries
        finally:
            self._busy += self._count() - begun
            self._in_flight -= 1
            self._entries += stored
            self._fold()

    def _count(self) -> float:
        """Move the shared clock to now; answer it."""
        now = self._clock()
        if self._in_flight:
            self._shared += (now - self._mark) / self._in_flight
        self._mark = now
        return self._shared

    def _fold(self) -> None:
        if self._entries < self._full or self._busy <= 0:
            return
        measured = self._entries / self._busy
        weight = self._smoothing if self.windows else 1.0
        self._rate += weight * (measured - self._rate)
        self._entries, self._busy = 0, 0.0
        self.windows += 1


def initial_rate(settings: FanoutSettings) -> float:
    """The rate at which the budget meets `pull_threshold`: until it measures, a node decides
    as with the follower counts alone."""
    if settings.push_budget_ms <= 0:
        return 0.0
    return settings.pull_threshold * 1000 / settings.push_budget_ms


def mode_bounds(settings: FanoutSettings) -> ModeBounds:
    return ModeBounds(
        budget_ms=settings.push_budget_ms,
        min_pull=settings.min_pull_followers,
        pull_above=settings.pull_threshold,
        push_below=settings.push_threshold,
    )
