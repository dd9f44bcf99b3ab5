"""The round-trip benchmark: HTTP insert → stored → fanned out → `feed.update` received.

For each follower count n: a fresh feed `user:<run>-<n>` gets n followers
`timeline:<run>-<n>-<i>`, a separate process (bench/subscribers.py) connects one Socket.IO
client per follower feed, then activities are posted to the followed feed at a set rate and every
delivery is timed from the moment just before its POST. In the same run, the raw bulk-insert rate
of the same store is measured, for the ratio of the fanout rate to it. One JSON document goes to
stdout; progress goes to stderr. See bench/README.md for what each figure means.

It starts nothing unless asked (`--start`): by default it talks to a running Tidings on
`--url`. Only loopback addresses are accepted: latencies subtract timestamps taken by two
processes, which only agree on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pymongo.errors import PyMongoError

from .children import SubscriberProcess, start_subscribers
from .feeds import Posts, post_all, setup_follows
from .options import (
    DEV_API_KEY,
    DEV_API_SECRET,
    add_fanout_arguments,
    add_subscriber_arguments,
    counts,
    positive_float,
    positive_int,
    require_loopback,
)
from .services import Target, log, machine, open_target
from .stats import busy_seconds, match_deliveries, percentiles
from .store import count_entries, raw_insert_rate, store_version

READY_MESSAGE_TIMEOUT_BASE = 120.0  # + 0.25 s per subscriber: connecting 1000 clients is slow
RESULTS_MESSAGE_MARGIN = 60.0


# --------------------------------------------------------------------------- options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("what to measure")
    target.add_argument(
        "--start",
        action="store_true",
        help="start a store (embedded SecantusDB, or --mongodb-url) and a Tidings server "
        "process with a fresh database, and stop them at the end",
    )
    target.add_argument(
        "--url",
        default="http://127.0.0.1:8080",
        help="a running Tidings (loopback only; ignored with --start)",
    )
    target.add_argument("--api-key", default=DEV_API_KEY)
    target.add_argument("--api-secret", default=DEV_API_SECRET)
    target.add_argument(
        "--mongodb-url",
        default="",
        help="the store Tidings uses (loopback only): for fast follow setup and the raw "
        "insert rate; with --start, use it instead of starting an embedded store",
    )
    target.add_argument(
        "--database", default="tidings", help="Tidings' database (ignored with --start)"
    )

    load = parser.add_argument_group("load")
    load.add_argument(
        "--followers",
        type=counts,
        default=[10, 100, 1000],
        help="comma-separated follower counts (default 10,100,1000)",
    )
    load.add_argument(
        "--activities",
        type=positive_int,
        default=20,
        help="activities posted per follower count (default 20)",
    )
    load.add_argument(
        "--rate", type=positive_float, default=5.0, help="activities per second (default 5)"
    )
    add_fanout_arguments(load)
    add_subscriber_arguments(
        parser,
        client="socketio",
        procs=1,
        connect_concurrency=50,
        connect_timeout=20.0,
        drain_timeout=30.0,
    )


# --------------------------------------------------------------------------- one round

EMIT_METRIC = "tidings_insert_to_emit_seconds"


async def _emit_totals(http: aiohttp.ClientSession, target: Target) -> tuple[float, float] | None:
    """The server's own (sum, count) of `tidings_insert_to_emit_seconds{path="fanout"}`: from
    a fanout job's creation to the emit of each of its batches. None when not available."""
    try:
        async with http.get(target.url + "/metrics", timeout=aiohttp.ClientTimeout(5)) as rsp:
            if rsp.status != 200:
                return None
            text = await rsp.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        for part in ("sum", "count"):
            if name == f'{EMIT_METRIC}_{part}{{path="fanout"}}':
                found[part] = float(value)
    return (found.get("sum", 0.0), found.get("count", 0.0))


@dataclass
class Round:
    followers: int
    feeds: list[str]
    posts: Posts


async def run_round(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str, n: int
) -> dict[str, Any]:
    target_feed = f"user:{run}-{n}"
    rnd = Round(n, [f"timeline:{run}-{n}-{i}" for i in range(n)], Posts(target_feed, str(n)))
    result: dict[str, Any] = {"followers": n, "activities": args.activities}
    loop = asyncio.get_running_loop()
    started = loop.time()
    how = await setup_follows(http, target, target_feed, rnd.feeds)
    log(f"[{n}] {n} follows of {target_feed} ({how}) in {loop.time() - started:.1f}s")

    procs = min(args.subscriber_procs, n)
    children: list[SubscriberProcess] = []
    try:
        config = {
            "url": target.url,
            "token": target.token,
            "client": args.client,
            "concurrency": args.connect_concurrency,
            "connect_timeout": args.connect_timeout,
        }
        await start_subscribers(rnd.feeds, procs, config, children)
        ready_timeout = READY_MESSAGE_TIMEOUT_BASE + 0.25 * n
        readies = await asyncio.gather(*(c.receive("ready", ready_timeout) for c in children))
        connected = sum(r["connected"] for r in readies)
        result["subscribers_connected"] = connected
        result["subscribe_seconds"] = max(r["seconds"] for r in readies)
        errors = [e for r in readies for e in r["errors"]]
        if errors:
            result["subscribe_errors"] = errors[:10]
        log(f"[{n}] {connected}/{n} sockets subscribed in {result['subscribe_seconds']:.1f}s")
        target.check_alive()

        log(f"[{n}] posting {args.activities} activities at {args.rate}/s")
        emits_before = await _emit_totals(http, target)
        await post_all(http, target, rnd.posts, args.activities, args.rate, run)
        ids = list(rnd.posts.started)
        for child in children:
            await child.send({"expect": ids, "timeout": args.drain_timeout})
        outcomes = await asyncio.gather(
            *(c.receive("results", args.drain_timeout + RESULTS_MESSAGE_MARGIN) for c in children)
        )
    finally:
        await asyncio.gather(*(c.close() for c in children), return_exceptions=True)
    target.check_alive()
    result["offered_entries_per_s"] = round(args.rate * n, 1)
    result.update(await _measure(target, rnd, outcomes))
    emits_after = await _emit_totals(http, target)
    if emits_before is not None and emits_after is not None:
        batches = emits_after[1] - emits_before[1]
        seconds = emits_after[0] - emits_before[0]
        result["server_fanout_emit_mean_ms"] = (
            round(seconds / batches * 1000, 1) if batches > 0 else None
        )
    return result


async def _measure(target: Target, rnd: Round, outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    received: dict[str, dict[str, float]] = {}
    for outcome in outcomes:
        received.update(outcome["received"])
    posts = rnd.posts
    got = match_deliveries(rnd.feeds, received, posts.started)
    expected = rnd.followers * len(posts.started)
    busy = busy_seconds([(posts.started[a], t) for a, t in got.last.items()])
    result: dict[str, Any] = {
        "posted": len(posts.started),
        "deliveries_expected": expected,
        "deliveries_received": got.received,
        "deliveries_missing": expected - got.received,
        "latency_ms": percentiles(got.latencies_ms),
        # Per activity: from just before its POST until its last follower got it.
        "fanout_complete_ms": percentiles(
            [(t - posts.started[a]) * 1000 for a, t in got.last.items()]
        ),
        "post_answer_ms": percentiles([s * 1000 for s in posts.seconds]),
        "fanout_entries_per_s": round(got.received / busy, 1) if busy > 0 else None,
    }
    problems = {
        "post_errors": posts.errors[:10],
        "unexpected_deliveries": got.unexpected,
        "duplicate_deliveries": sum(o["duplicates"] for o in outcomes),
        "sockets_dropped": sum(o["dropped"] for o in outcomes),
        "complete_before_timeout": all(o["complete"] for o in outcomes),
    }
    result.update({k: v for k, v in problems.items() if v or k == "complete_before_timeout"})
    if target.db is not None:
        result["entries_in_store"] = await count_entries(
            target.db, posts.target_feed, posts.started
        )
    return result


# --------------------------------------------------------------------------- main


async def roundtrip(args: argparse.Namespace) -> dict[str, Any]:
    if not args.start:
        require_loopback(args.url, "--url")
    if args.mongodb_url:
        require_loopback(args.mongodb_url, "--mongodb-url")
    run = uuid.uuid4().hex[:8]
    report: dict[str, Any] = {
        "benchmark": "roundtrip",
        "run": run,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    connector = aiohttp.TCPConnector(limit=0)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        open_target(args, http, run) as target,
    ):
        report["store"] = target.store
        if target.db is not None:
            report["store_version"] = await store_version(target.db)
        report["settings"] = {
            "started": args.start,
            "url": target.url,
            "followers": args.followers,
            "activities": args.activities,
            "rate_per_s": args.rate,
            "fanout_batch_size": args.batch_size if args.start else "the server's own",
            "fanout_concurrency": args.concurrency if args.start else "the server's own",
            "raw_insert_batch_size": args.batch_size,
            "raw_insert_concurrency": args.concurrency,
            "raw_insert_docs": args.raw_docs,
            "subscriber_client": args.client,
            "subscriber_procs": args.subscriber_procs,
            "drain_timeout_s": args.drain_timeout,
        }
        raw: float | None = None
        if target.db is not None:
            log(f"raw bulk insert of {args.raw_docs} docs")
            raw = await raw_insert_rate(
                target.db, run, args.raw_docs, args.batch_size, args.concurrency
            )
            log(f"raw bulk insert: {raw:.0f} docs/s")
        else:
            log("no --mongodb-url: the raw insert rate is not measured")
        report["raw_bulk_insert_docs_per_s"] = None if raw is None else round(raw, 1)
        results = []
        for n in args.followers:
            try:
                result = await run_round(args, http, target, run, n)
            except Exception as exc:
                log(f"[{n}] failed: {type(exc).__name__}: {exc}")
                result = {"followers": n, "error": f"{type(exc).__name__}: {exc}"}
                if target.server is not None and target.server.returncode is not None:
                    results.append(result)
                    break
            rate = result.get("fanout_entries_per_s")
            result["fanout_vs_raw_insert_ratio"] = round(rate / raw, 3) if rate and raw else None
            results.append(result)
            log(f"[{n}] {json.dumps(result)}")
        report["results"] = results
    return report


def main(args: argparse.Namespace) -> int:
    try:
        report = asyncio.run(roundtrip(args))
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, OSError, PyMongoError, aiohttp.ClientError) as exc:
        print(f"bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    failed = any("error" in r or r.get("deliveries_missing") for r in report["results"])
    return 1 if failed else 0
