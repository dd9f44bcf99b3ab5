"""The read benchmark: feed reads from memory, against the store's own rate.

(a) `GET feed/timeline/<run>/?limit=L` of one feed of `--entries` activities, `--in-flight` at
once for `--seconds`, for L = 25 and 100: reads/s and latency percentiles; then, in the same
run, the raw store answering the same two queries per read (the feed's newest L entries by the
(feed, activity_id) index, then their activities by `$in`) at the same concurrency: the ratio.
The same for a follower feed of a pull feed that holds the activities (`merged_feed_reads`).
(b) For each count of `--followers` (default 200), the round trip of bench/roundtrip.py (one
activity every 1/`--rate` s), cold (fresh follower feeds, never read) and warm with
`--reads-rate` feed reads per second alongside, of up to 200 of the round's follower feeds,
each read once before (`warm_up` says how long that took): the insert → delivered percentiles
of both, and their ratio.
One JSON document on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import aiohttp

from . import roundtrip
from .feeds import API, HTTP_TIMEOUT, measure_rate_first, setup_pull_follows
from .options import positive_float, positive_int, require_loopback
from .services import (
    Report,
    Target,
    describe_store,
    headers,
    log,
    open_target,
    report_head,
    run_report,
)
from .stats import percentiles

READ_FEEDS = 200  # follower feeds of a round read alongside its warm round trip, at most
WARM_UP_IN_FLIGHT = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    roundtrip.add_arguments(parser)
    reads = parser.add_argument_group("reads")
    reads.add_argument("--entries", type=positive_int, default=200, help="activities of the feed")
    reads.add_argument("--in-flight", type=positive_int, default=20)
    reads.add_argument("--seconds", type=positive_float, default=10.0, help="per measurement")
    reads.add_argument("--reads-rate", type=positive_float, default=100.0)
    reads.add_argument("--skip-roundtrip", action="store_true")
    parser.set_defaults(followers=[200], rate=10.0, activities=50)


async def _get(http: aiohttp.ClientSession, target: Target, feed: str, limit: int) -> int:
    group, _, user = feed.partition(":")
    async with http.get(
        f"{target.url}{API}/feed/{group}/{user}/",
        params={"api_key": target.api_key, "limit": str(limit)},
        headers=headers(target),
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT),
    ) as rsp:
        body = await rsp.json()
        if rsp.status != 200:
            raise RuntimeError(f"read {feed}: HTTP {rsp.status}: {body}")
        return len(body["results"])


async def _fill(http: aiohttp.ClientSession, target: Target, feed: str, count: int) -> None:
    group, _, user = feed.partition(":")
    for start in range(0, count, 100):
        batch = [
            {"actor": "bench", "verb": "post", "object": f"o:{i}", "n": i, "text": "x" * 200}
            for i in range(start, min(count, start + 100))
        ]
        async with http.post(
            f"{target.url}{API}/feed/{group}/{user}/",
            params={"api_key": target.api_key},
            json={"activities": batch},
            headers=headers(target),
            timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT),
        ) as rsp:
            if rsp.status not in (200, 201):
                raise RuntimeError(f"add to {feed}: HTTP {rsp.status}: {await rsp.text()}")


async def _closed_loop(in_flight: int, seconds: float, one: Any) -> dict[str, Any]:
    """`one()` by `in_flight` workers for `seconds`: rate and latency percentiles (ms)."""
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await one()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    result: dict[str, Any] = {
        "per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": percentiles(latencies),
    }
    if errors:
        result["errors"] = errors[:5]
    return result


async def _raw_read(db: Any, feed: str, limit: int) -> None:
    entries = db["feed_entries"].find({"feed": feed}, {"activity_id": 1, "origin": 1, "_id": 0})
    ids = [d["activity_id"] async for d in entries.sort("activity_id", -1).limit(limit)]
    found = [d async for d in db["activities"].find({"_id": {"$in": ids}})]
    assert len(found) == len(ids)


async def _compare(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, feed: str, raw: str
) -> dict[str, Any]:
    """Reads of `feed` through Tidings, then the raw store's page of `raw`, for limits 25 and
    100, at the same concurrency: rates, latencies and their ratio."""
    results: dict[str, Any] = {"feed_entries": args.entries, "in_flight": args.in_flight}
    for limit in (25, 100):
        assert await _get(http, target, feed, limit) == min(limit, args.entries)
        tidings = await _closed_loop(
            args.in_flight, args.seconds, lambda limit=limit: _get(http, target, feed, limit)
        )
        row: dict[str, Any] = {"tidings": tidings}
        if target.db is not None:
            store = await _closed_loop(
                args.in_flight, args.seconds, lambda limit=limit: _raw_read(target.db, raw, limit)
            )
            row["raw_store"] = store
            row["vs_raw_store"] = (
                round(tidings["per_s"] / store["per_s"], 2) if store["per_s"] else None
            )
        results[f"limit_{limit}"] = row
        log(f"{feed}, limit {limit}: {row}")
    return results


async def feed_reads(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str
) -> dict[str, Any]:
    feed = f"timeline:{run}-reads"
    log(f"adding {args.entries} activities to {feed}")
    await _fill(http, target, feed, args.entries)
    return await _compare(args, http, target, feed, feed)


async def merged_reads(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str
) -> dict[str, Any]:
    """(a) again for a follower feed of a pull feed that holds the `--entries` activities (more
    followers than `--pull-threshold`): each page merges the pull feed in at read time. The raw
    store answers the pull feed's page (a merged page costs at least that)."""
    pull = f"user:{run}-pull"
    followers = [f"timeline:{run}-m-{i}" for i in range(args.pull_threshold + 1)]
    await setup_pull_follows(http, target, pull, followers, args.pull_threshold)
    await _fill(http, target, pull, args.entries)  # after the follows: every follower merges all
    return {"merged_from": pull, **await _compare(args, http, target, followers[0], pull)}


async def _reads_alongside(
    http: aiohttp.ClientSession, target: Target, feeds: list[str], rate: float, stop: asyncio.Event
) -> list[float]:
    """Reads of `feeds` in turn, `rate` per second (open loop), until `stop`; latencies (ms),
    a failed read (an error or no answer within the HTTP timeout) counted as infinite."""
    latencies: list[float] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(feed: str) -> None:
        started = time.perf_counter()
        try:
            await _get(http, target, feed, 25)
        except (aiohttp.ClientError, TimeoutError, RuntimeError):
            latencies.append(float("inf"))
            return
        latencies.append((time.perf_counter() - started) * 1000)

    i = 0
    while not stop.is_set():
        task = asyncio.ensure_future(one(feeds[i % len(feeds)]))
        pending.add(task)
        task.add_done_callback(pending.discard)
        i += 1
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*pending, return_exceptions=True)
    return latencies


async def roundtrips(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str
) -> list[dict[str, Any]]:
    """(b) for each follower count: the round trip cold (fresh follower feeds, never read),
    then warm with reads alongside."""
    return [await _roundtrip(args, http, target, f"{run}-{i}", n)
            for i, n in enumerate(args.followers)]  # fmt: skip


async def _roundtrip(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str, n: int
) -> dict[str, Any]:
    log(f"round trip of {n} followers alone")
    alone = await roundtrip.run_round(args, http, target, f"{run}a", n)
    stop = asyncio.Event()
    # The feeds read alongside: at most READ_FEEDS of the round's, spread over it, each read
    # once before (steady state: a cold first read of a feed is the store's windowed scan).
    step = max(1, n // READ_FEEDS)
    feeds = [f"{args.feed_group}:{run}b-{n}-{i}" for i in range(0, n, step)]
    started = time.perf_counter()
    gate = asyncio.Semaphore(WARM_UP_IN_FLIGHT)

    async def warm(feed: str) -> None:
        async with gate:
            await _get(http, target, feed, 25)

    await asyncio.gather(*(warm(feed) for feed in feeds))
    cold_ms = (time.perf_counter() - started) * 1000
    reading = asyncio.ensure_future(_reads_alongside(http, target, feeds, args.reads_rate, stop))
    try:
        log(f"round trip of {n} followers with {args.reads_rate:g} reads/s alongside")
        loaded = await roundtrip.run_round(args, http, target, f"{run}b", n)
    finally:
        stop.set()
    latencies = await reading
    keep = ("latency_ms", "post_answer_ms", "deliveries_missing", "deliveries_received",
            "fanout_mode", "mode_settled_s", "fanout_mode_after")  # fmt: skip
    result: dict[str, Any] = {
        "followers": n,
        "rate_per_s": args.rate,
        "cold": {k: alone.get(k) for k in keep},
        "warm_with_reads": {k: loaded.get(k) for k in keep},
        "reads_alongside": {
            "offered_per_s": args.reads_rate,
            "failed": sum(1 for ms in latencies if ms == float("inf")),
            "latency_ms": percentiles([ms for ms in latencies if ms != float("inf")]),
        },
        "warm_up": {"feeds_read_once_before": len(feeds), "all_ms": round(cold_ms, 1)},
    }
    a, b = (alone.get("latency_ms") or {}), (loaded.get("latency_ms") or {})
    if a.get("p50") and b.get("p50"):
        result["warm_vs_cold_p50"] = round(b["p50"] / a["p50"], 2)
        result["warm_vs_cold_p99"] = round(b["p99"] / a["p99"], 2)
    return result


async def reads(args: argparse.Namespace) -> Report:
    if not args.start:
        require_loopback(args.url, "--url")
    run = uuid.uuid4().hex[:8]
    report: Report = {
        **report_head("reads", run),
    }
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        open_target(args, http, run) as target,
    ):
        await describe_store(report, target)
        report["feed_reads"] = await feed_reads(args, http, target, run)
        if target.db is not None:
            report["merged_feed_reads"] = await merged_reads(args, http, target, run)
        if not args.skip_roundtrip:
            report["fanout_rate_measured_first"] = await measure_rate_first(
                http, target, run, args.warm_rate
            )
            report["roundtrip"] = await roundtrips(args, http, target, run)
    return report


def main(args: argparse.Namespace) -> int:
    return run_report(reads(args), lambda report: False)
