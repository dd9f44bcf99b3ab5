"""The event loop's gauges (tidings.runtime.loop_watch): the lag gauge keeps the largest
measurement of its window, the task gauge counts the loop's tasks."""

from __future__ import annotations

import asyncio
import time

from tidings.metrics import ASYNCIO_TASKS, EVENT_LOOP_LAG
from tidings.runtime.loop_watch import LoopWatch


def _value(gauge: object) -> float:
    return float(gauge._value.get())  # type: ignore[attr-defined]


async def test_the_lag_gauge_holds_the_largest_lag_of_its_window() -> None:
    watch = LoopWatch(interval=1.0, window=3.0)  # three measurements
    watch.measured(0.25)
    watch.measured(0.01)
    assert _value(EVENT_LOOP_LAG) == 0.25
    watch.measured(-0.001)  # woken a hair early: no lag, never a negative one
    assert _value(EVENT_LOOP_LAG) == 0.25
    watch.measured(0.02)  # the 0.25 has left the window
    assert _value(EVENT_LOOP_LAG) == 0.02


async def test_the_task_gauge_counts_the_loops_tasks() -> None:
    idle = [asyncio.create_task(asyncio.sleep(10)) for _ in range(5)]
    try:
        LoopWatch().measured(0.0)
        assert _value(ASYNCIO_TASKS) == len(asyncio.all_tasks()) >= 6
    finally:
        for task in idle:
            task.cancel()
        await asyncio.gather(*idle, return_exceptions=True)


async def test_run_measures_a_stall() -> None:
    watch = LoopWatch(interval=0.01, window=1.0)
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(0.05)
    time.sleep(0.1)  # noqa: ASYNC251  (the stall is the point: the watch's timer fires late)
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert _value(EVENT_LOOP_LAG) >= 0.05
