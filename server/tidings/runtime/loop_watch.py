"""How the node's event loop is doing, for /metrics: the asyncio tasks alive, and how late the
loop runs what is due (event-loop lag).

A task wakes every `interval` seconds and measures how much later than asked it woke: the time
the loop was busy with something else. The lag gauge is the largest of the last `window`
seconds' measurements, so that a scrape every 15 s or a minute still sees a stall between two
scrapes. A steady rise of the task count under a steady load is a leak.
"""

from __future__ import annotations

import asyncio
import collections
import time

from ..metrics import ASYNCIO_TASKS, EVENT_LOOP_LAG

INTERVAL = 0.5  # seconds between two measurements
WINDOW = 10.0  # seconds the lag gauge keeps its largest measurement


class LoopWatch:
    def __init__(self, interval: float = INTERVAL, window: float = WINDOW) -> None:
        self.interval = interval
        self._lags: collections.deque[float] = collections.deque(
            maxlen=max(1, round(window / interval))
        )

    def measured(self, lag: float) -> None:
        """One measurement: the gauges updated."""
        self._lags.append(max(0.0, lag))
        EVENT_LOOP_LAG.set(max(self._lags))
        ASYNCIO_TASKS.set(len(asyncio.all_tasks()))

    async def run(self) -> None:
        """Measure until cancelled."""
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.measured(time.perf_counter() - asked - self.interval)
