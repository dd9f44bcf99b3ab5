"""Writes run to their end whatever happens to their caller (runtime.background.completes)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tidings.runtime.background import TaskSet, completes


class Service:
    """A writer whose write steps wait on `gate`, recording how far each got."""

    def __init__(self) -> None:
        self.writes = TaskSet("write")
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.steps: list[str] = []
        self.tasks: list[asyncio.Task[object] | None] = []

    @completes
    async def write(self, name: str, fail: bool = False) -> str:
        self.steps.append(f"{name} started")
        self.tasks.append(asyncio.current_task())
        self.started.set()
        await self.gate.wait()
        if fail:
            raise RuntimeError(f"{name} failed")
        self.steps.append(f"{name} done")
        return name

    @completes
    async def outer(self) -> str:
        self.tasks.append(asyncio.current_task())
        return await self.write("inner")


async def test_a_cancelled_caller_stops_waiting_and_the_write_runs_to_its_end() -> None:
    service = Service()
    caller = asyncio.ensure_future(service.write("a"))
    await service.started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert len(service.writes) == 1
    service.gate.set()
    await service.writes.drain(grace=5)
    assert service.steps == ["a started", "a done"] and len(service.writes) == 0


async def test_the_caller_gets_the_result_and_the_failure_unlogged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = Service()
    service.gate.set()
    assert await service.write("a") == "a"
    with caplog.at_level(logging.ERROR, logger="tidings.runtime.background"):
        with pytest.raises(RuntimeError, match="b failed"):
            await service.write("b", fail=True)
        await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.name == "tidings.runtime.background"]


async def test_a_failure_once_the_caller_left_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    service = Service()
    caller = asyncio.ensure_future(service.write("a", fail=True))
    await service.started.wait()
    caller.cancel()
    with caplog.at_level(logging.ERROR, logger="tidings.runtime.background"):
        service.gate.set()
        await service.writes.drain(grace=5)
        await asyncio.sleep(0)
    [record] = [r for r in caplog.records if r.name == "tidings.runtime.background"]
    assert record.exc_info is not None and str(record.exc_info[1]) == "a failed"


async def test_a_write_within_a_write_runs_in_the_same_task() -> None:
    service = Service()
    service.gate.set()
    assert await service.outer() == "inner"
    outer, inner = service.tasks
    assert outer is inner and outer is not asyncio.current_task()
