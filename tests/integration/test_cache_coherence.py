"""Memory that needs no luck: what a node answers from its caches when the messages between the
nodes are lost. Real processes: node A reaches Redis through a TCP proxy that the test cuts or
freezes (tests/tcp_proxy.py), node B reaches it directly; both share one store.

- a `since` answer holds every entry the store held when the subscribe arrived, whatever B
  heard: A wrote while cut off and died; A died between its entries and their publish (a
  fault point); B's own read of the head was delayed across A's write (a hold point);
- feed pages and activity lookups lag by at most `cache.max_staleness_seconds`;
- a half-open link shows on /readyz within seconds, and the link comes back after it;
- a lost publish resyncs only the sockets of its feeds on the other nodes and drops no cache;
  a retried write tells the other nodes what its dead first try did not;
- the caches are bounded by measured memory, shown in /metrics.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from harness.cluster import start_all
from tests.integration.nodes import (
    DEGRADED,
    READY,
    Rest,
    Sub,
    poll,
    subscriber,
    wait_ready,
)
from tests.support import RedisServer, ServerProcess, Store
from tests.tcp_proxy import TcpProxy

STALENESS = 1.0  # cache.max_staleness_seconds of these nodes
MARGIN = 2.0  # what a loaded 2-core machine adds to it (a poll, a request)


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[TcpProxy]:
    started = TcpProxy(redis_server.port).start()
    yield started
    started.stop()


def _nodes(
    store: Store, redis_server: RedisServer, proxy: TcpProxy, workdir: Path, env_a: dict[str, str]
) -> tuple[ServerProcess, ServerProcess]:
    database = f"t_coherence_{uuid.uuid4().hex[:8]}"
    shared = {
        "TIDINGS_REDIS_CHANNEL": f"coherence-{uuid.uuid4().hex[:8]}",
        "TIDINGS_CACHE_MAX_STALENESS_SECONDS": str(STALENESS),
    }
    a = ServerProcess(store.url, database, proxy.url(), {**shared, **env_a},
                      log_path=workdir / "coherence-A.log")  # fmt: skip
    b = ServerProcess(store.url, database, redis_server.url, shared,
                      log_path=workdir / "coherence-B.log")  # fmt: skip
    return a, b


@pytest.fixture
def nodes(
    store: Store, redis_server: RedisServer, proxy: TcpProxy, workdir: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    a, b = _nodes(store, redis_server, proxy, workdir, {})
    start_all([a, b])
    yield a, b
    for node in (a, b):
        node.kill()


async def _warm(rest: Rest, feed: str, want: list[str]) -> None:
    """B reads `feed` (its head and the activities go into B's memory) and sees `want`."""
    assert await rest.read_ids(feed) == want


async def test_since_holds_what_a_node_wrote_while_cut_off_from_redis_before_it_died(
    nodes: tuple[ServerProcess, ServerProcess], proxy: TcpProxy,
    http: aiohttp.ClientSession, subs: list[Sub], uid: str,
) -> None:  # fmt: skip
    a, b = nodes
    rest_a, rest_b = Rest(http, a), Rest(http, b)
    await wait_ready([rest_a, rest_b], READY)
    feed = f"user:{uid}"
    first = await rest_b.add(feed)
    await _warm(rest_b, feed, [first])
    proxy.cut()
    await wait_ready([rest_a], DEGRADED)
    lost = await rest_a.add(feed)  # its publish (and the resync it owes) dies with A
    a.kill()
    sub = await subscriber(subs, b, [])
    ack = await sub.subscribe(feed, since=first)
    assert ack["ok"] is True and [x["id"] for x in ack["missed"]] == [lost], ack
    assert await rest_b.read_ids(feed, limit=5) in ([first], [lost, first])  # a page may lag


async def test_since_holds_what_a_node_stored_before_it_died_without_publishing(
    store: Store, redis_server: RedisServer, proxy: TcpProxy, workdir: Path,
    http: aiohttp.ClientSession, subs: list[Sub], uid: str,
) -> None:  # fmt: skip
    a, b = _nodes(store, redis_server, proxy, workdir, {"TIDINGS_TEST_FAULT": "entries.inserted"})
    start_all([a, b])
    try:
        rest_a, rest_b = Rest(http, a), Rest(http, b)
        feed = f"user:{uid}"
        first = await rest_b.add(feed)
        await _warm(rest_b, feed, [first])
        with pytest.raises(aiohttp.ClientError):  # A dies after its insert, before its publish
            await rest_a.add(feed)
        stored = await rest_b.read_ids(feed, limit=1)  # what B's store read finds now
        sub = await subscriber(subs, b, [])
        ack = await sub.subscribe(feed, since=first)
        held = [x["id"] for x in ack["missed"]]
        assert ack["ok"] is True and len(held) == 1 and held != [first], ack
        assert stored in ([first], held)
    finally:
        for node in (a, b):
            node.kill()


async def test_pages_and_lookups_lag_at_most_max_staleness(
    nodes: tuple[ServerProcess, ServerProcess], proxy: TcpProxy,
    http: aiohttp.ClientSession, uid: str,
) -> None:  # fmt: skip
    a, b = nodes
    rest_a, rest_b = Rest(http, a), Rest(http, b)
    await wait_ready([rest_a, rest_b], READY)
    feed = f"user:{uid}"
    first = await rest_b.add(feed)
    await _warm(rest_b, feed, [first])
    lookup = f"{b.url}/api/v1.0/activities/"
    proxy.cut()
    await wait_ready([rest_a], DEGRADED)
    second = await rest_a.add(feed)
    written = time.monotonic()

    async def page_shows_it() -> bool:
        return await rest_b.read_ids(feed) == [second, first]

    await poll(page_shows_it, "B's page to show A's activity")
    assert time.monotonic() - written <= STALENESS + MARGIN
    await rest_a.call("POST", f"{a.url}/api/v1.0/activity/", {"changes": [
        {"id": first, "set": {"mood": "new"}}]})  # fmt: skip
    changed = time.monotonic()

    async def lookup_shows_it() -> bool:
        found = await rest_b.call("GET", lookup, ids=first)
        return bool(found["results"][0].get("mood") == "new")

    await poll(lookup_shows_it, "B's lookup to show A's change")
    assert time.monotonic() - changed <= STALENESS + MARGIN


async def test_a_half_open_link_to_redis_shows_on_readyz_within_seconds(
    nodes: tuple[ServerProcess, ServerProcess], proxy: TcpProxy, http: aiohttp.ClientSession,
) -> None:  # fmt: skip
    a, _ = nodes
    rest_a = Rest(http, a)
    await wait_ready([rest_a], READY)
    proxy.freeze()
    frozen = time.monotonic()
    await wait_ready([rest_a], DEGRADED)
    assert time.monotonic() - frozen <= 6.0
    proxy.restore()
    await wait_ready([rest_a], READY)


async def test_the_link_comes_back_after_a_freeze_and_carries_events(
    nodes: tuple[ServerProcess, ServerProcess], proxy: TcpProxy,
    http: aiohttp.ClientSession, subs: list[Sub], uid: str,
) -> None:  # fmt: skip
    a, b = nodes
    rest_a, rest_b = Rest(http, a), Rest(http, b)
    await wait_ready([rest_a, rest_b], READY)
    proxy.freeze()
    await wait_ready([rest_a], DEGRADED)
    proxy.restore()
    await wait_ready([rest_a], READY)
    feed = f"user:{uid}"
    sub = await subscriber(subs, a, [feed])
    added = await rest_b.add(feed)
    await asyncio.wait_for(sub.wait_update(added, "on A from B's write"), 15)


async def test_a_failed_publish_leaves_the_other_nodes_caches_alone(
    nodes: tuple[ServerProcess, ServerProcess], proxy: TcpProxy,
    http: aiohttp.ClientSession, subs: list[Sub], uid: str,
) -> None:  # fmt: skip
    a, b = nodes
    rest_a, rest_b = Rest(http, a), Rest(http, b)
    await wait_ready([rest_a, rest_b], READY)
    feed, other = f"user:{uid}", f"user:{uid}x"
    first = await rest_b.add(feed)
    await _warm(rest_b, feed, [first])
    heads = 'tidings_cache_items{cache="heads"}'
    kept = await rest_b.metric(heads)
    assert kept >= 1
    sub = await subscriber(subs, b, [other])
    bystander = await subscriber(subs, b, [feed])
    proxy.cut()
    await wait_ready([rest_a], DEGRADED)
    await rest_a.add(other)  # not published: B's socket of `other` missed it
    proxy.restore()
    await sub.wait_for("resync", what="after A's lost publish")
    # A resync for the bystander would have been written before the answer to this.
    assert (await bystander.subscribe(feed))["ok"] is True
    assert bystander.named("resync") == []  # only the sockets of what A could not publish
    assert await rest_b.metric(heads) >= kept  # and B's memory stays


async def test_caches_are_bounded_by_measured_memory_shown_in_metrics(
    store: Store, workdir: Path, http: aiohttp.ClientSession, uid: str,
) -> None:  # fmt: skip
    bound = 0.002  # MB: a few heads of one entry
    node = ServerProcess(store.url, env={"TIDINGS_CACHE_HEADS_MB": str(bound)},
                         log_path=workdir / "coherence-bounded.log").start()  # fmt: skip
    try:
        rest = Rest(http, node)
        feeds = [f"user:{uid}{n}" for n in range(20)]
        await rest.add(feeds[0], to=feeds[1:])
        for feed in feeds:
            assert len(await rest.read_ids(feed)) == 1
        used = await rest.metric('tidings_cache_bytes{cache="heads"}')
        kept = await rest.metric('tidings_cache_items{cache="heads"}')
        assert 0 < used <= bound * (1 << 20) and 1 <= kept < len(feeds)
        assert await rest.metric('tidings_cache_bytes{cache="activities"}') > 0
    finally:
        node.kill()


async def test_a_delayed_reader_keeps_an_old_head_that_answers_no_since_and_pages_briefly(
    store: Store, redis_server: RedisServer, proxy: TcpProxy, workdir: Path, tmp_path: Path,
    http: aiohttp.ClientSession, subs: list[Sub], uid: str,
) -> None:  # fmt: skip
    """B's read of a feed's head is held between its store read and its keep while A writes
    the feed (cut off from Redis: B hears nothing); the head B then keeps is older than A's
    write."""
    a, b = _nodes(store, redis_server, proxy, workdir, {})
    b.env.update({"TIDINGS_TEST_FAULT": "heads.read:hold:1",
                  "TIDINGS_TEST_HOLD_DIR": str(tmp_path)})  # fmt: skip
    start_all([a, b])
    try:
        rest_a, rest_b = Rest(http, a), Rest(http, b)
        await wait_ready([rest_a, rest_b], READY)
        feed = f"user:{uid}"
        first = await rest_a.add(feed)
        reading = asyncio.ensure_future(rest_b.read_ids(feed))
        await poll(_exists(tmp_path / "heads.read.1.held"), "B's read to be held")
        proxy.cut()
        await wait_ready([rest_a], DEGRADED)
        second = await rest_a.add(feed)
        written = time.monotonic()
        (tmp_path / "heads.read.1.release").touch()
        assert await reading == [first]  # what the read found when it began
        sub = await subscriber(subs, b, [])
        ack = await sub.subscribe(feed, since=first)
        assert [x["id"] for x in ack["missed"]] == [second], ack

        async def page_shows_it() -> bool:
            return await rest_b.read_ids(feed) == [second, first]

        await poll(page_shows_it, "B's page to show A's activity")
        assert time.monotonic() - written <= STALENESS + MARGIN
    finally:
        for node in (a, b):
            node.kill()


def _exists(path: Path) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await asyncio.to_thread(path.exists)

    return check


async def test_a_retried_write_tells_the_other_nodes_what_the_dead_first_try_did_not(
    store: Store, redis_server: RedisServer, proxy: TcpProxy, workdir: Path,
    http: aiohttp.ClientSession, uid: str,
) -> None:  # fmt: skip
    """A dies between its entries and their publish; the client's retry (the same activity,
    on A restarted) finds them written and still tells B, whose memory would otherwise keep
    its page for a long max_staleness."""
    a, b = _nodes(store, redis_server, proxy, workdir, {"TIDINGS_TEST_FAULT": "entries.inserted"})
    b.env["TIDINGS_CACHE_MAX_STALENESS_SECONDS"] = "60"
    start_all([a, b])
    try:
        rest_a, rest_b = Rest(http, a), Rest(http, b)
        feed = f"user:{uid}"
        first = await rest_b.add(feed)
        await _warm(rest_b, feed, [first])
        same = {"foreign_id": f"f:{uid}", "time": "2026-12-01T00:00:00"}
        with pytest.raises(aiohttp.ClientError):  # A dies after its insert, before its publish
            await rest_a.add(feed, **same)
        a.env.pop("TIDINGS_TEST_FAULT")
        a.start()
        await wait_ready([rest_a, rest_b], READY)
        again = await rest_a.add(feed, **same)

        async def page_shows_it() -> bool:
            return await rest_b.read_ids(feed) == [first, again]

        await poll(page_shows_it, "B's page to show the retried activity", within=10)
    finally:
        for node in (a, b):
            node.kill()
