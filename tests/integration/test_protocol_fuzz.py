"""Property-based fuzzing of Engine.IO and Socket.IO frames (tests/integration/fuzz_clients.py)
on both transports of one server, by all three ways in: a direct WebSocket (the fast path,
Tidings' own codec), long-polling, and a long-polling session upgraded to a WebSocket (both
python-socketio's, behind Tidings' checks).

For every example: the fuzzed connection is either still answering or closed by the server,
within a bound, never hung; the server keeps running. After all examples: the server logged
no traceback, and the healthy sockets opened before the fuzzing (one of each transport) still
get the events of their feed.

Examples per transport: TIDINGS_FUZZ_EXAMPLES (default 60, a few seconds each); set it higher
to fuzz for longer, e.g. `TIDINGS_FUZZ_EXAMPLES=5000`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness.engineio import RawSocket
from harness.server import ServerProcess
from tests.integration.fast_path_clients import (
    PyClient,
    RawClient,
    Rest,
    new_ids,
    poll,
    py_client,
    raw_client,
)
from tests.integration.fuzz_clients import (
    ANSWERED,
    CLOSED,
    Frame,
    describe,
    direct,
    frame_lists,
    polling_bodies,
    polling_outcome,
    upgraded,
    websocket_outcome,
)

EXAMPLES = int(os.environ.get("TIDINGS_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no example database left in the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Healthy:
    """A socket of each transport subscribed to one feed before the fuzzing, and what the
    server's log held then."""

    def __init__(self, feed: str, raw: RawClient, polling: PyClient, log_start: int) -> None:
        self.feed, self.raw, self.polling, self.log_start = feed, raw, polling, log_start
        self.reader = asyncio.ensure_future(keep_reading(raw))


async def keep_reading(client: RawClient) -> None:
    """Read the healthy WebSocket all along (answering pings, recording events)."""
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            opcode, payload = await client.frame()
            if opcode == 0x8:
                return
            text = payload.decode()
            if text == "2":
                client.send("3")
            elif text.startswith('42["feed.update"'):
                client.events.append(json.loads(text[2:])[1])


@pytest.fixture(scope="module")
async def healthy(server: ServerProcess) -> AsyncIterator[Healthy]:
    assert server.log_path is not None
    log_start = server.log_path.stat().st_size
    feed = f"user:{uuid.uuid4().hex[:10]}"
    created: list[Any] = []
    raw = await raw_client(created, server.port, [feed])
    polling = await py_client(created, server.url, ["polling"], [feed])
    sockets = Healthy(feed, raw, polling, log_start)
    yield sockets
    sockets.reader.cancel()
    for client in created:
        with contextlib.suppress(Exception):
            await client.close()


@FUZZ
@given(frames=frame_lists, connect=st.booleans())
async def test_fuzzed_websocket_frames_answer_or_close(
    server: ServerProcess, healthy: Healthy, frames: list[Frame], connect: bool
) -> None:
    """The fast path: a direct WebSocket."""
    raw = await direct(server.port, connect)
    await answers_or_closes(server, raw, frames, healthy.feed)


@FUZZ
@given(frames=frame_lists, connect=st.booleans())
async def test_fuzzed_frames_after_an_upgrade_answer_or_close(
    server: ServerProcess, healthy: Healthy, http: aiohttp.ClientSession, frames: list[Frame],
    connect: bool,
) -> None:  # fmt: skip
    """python-socketio's WebSocket: a long-polling session upgraded (the official client's
    default way in)."""
    raw = await upgraded(http, server.url, connect)
    await answers_or_closes(server, raw, frames, healthy.feed)


async def answers_or_closes(
    server: ServerProcess, raw: RawSocket, frames: list[Frame], feed: str
) -> None:
    try:
        outcome = await websocket_outcome(raw, frames, feed)
    except TimeoutError:
        pytest.fail(f"neither answered nor closed after {describe(frames)}")
    event(outcome)
    assert outcome in (ANSWERED, CLOSED)
    assert server.running


@FUZZ
@given(body=polling_bodies, connect=st.booleans())
async def test_fuzzed_polling_payloads_answer_or_close(
    server: ServerProcess, healthy: Healthy, http: aiohttp.ClientSession, body: bytes,
    connect: bool,
) -> None:  # fmt: skip
    try:
        outcome = await polling_outcome(http, server.url, body, connect, healthy.feed)
    except TimeoutError:
        pytest.fail(f"neither answered nor closed after {describe(body.hex())}")
    event(outcome)
    assert outcome in (ANSWERED, CLOSED)
    assert server.running


async def test_after_the_fuzzing_healthy_sockets_get_events_and_no_traceback_was_logged(
    server: ServerProcess, healthy: Healthy, http: aiohttp.ClientSession
) -> None:
    activity_id = await Rest(http, server.url).add(healthy.feed)
    await poll(lambda: asyncio.sleep(0, activity_id in new_ids(healthy.raw.events)),
               "the healthy WebSocket's event")  # fmt: skip
    await healthy.polling.until_update(activity_id)
    assert server.log_path is not None
    with server.log_path.open("rb") as log:
        log.seek(healthy.log_start)
        logged = log.read().decode(errors="replace")
    assert "Traceback" not in logged, logged[logged.index("Traceback") - 2000 :][:6000]
