"""The firehose benchmark: HTTP insert → stored → fanned out → received by a webhook and by an
SQS queue, against the same insert's socket round trip.

For each follower count n: a fresh feed `user:<run>-<n>` gets n followers (written straight
into the store), up to `--connected` of the follower feeds get a subscribed socket (raw
WebSocket clients in subscriber processes, as `bench roundtrip`), then `--activities` are
posted at `--rate`. Every (follower feed, activity) must reach the webhook receiver (in this
process, each signature verified) and the SQS queue (moto's server mode, long-polled by this
process); each receipt is timed from just before its POST. Rates: fanout entries per second
(from the sockets' last delivery of each activity) and firehose updates (and messages) per
second, over the time some activity was still on its way. It always starts its own Tidings
(`--start` is implied): the server must be configured with the benchmark's endpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from typing import Any

import aiohttp

from tidings.firehose.endpoints import Kind

from .children import SubscriberProcess, start_subscribers, subscriber_config
from .endpoints import AWS_ENV, SECRET, Arrivals, sqs_queue, webhook_receiver
from .feeds import Posts, post_all, setup_follows
from .options import (
    add_fanout_arguments,
    add_subscriber_arguments,
    add_target_arguments,
    counts,
    positive_float,
    positive_int,
)
from .roundtrip import spread
from .services import (
    Report,
    Target,
    describe_store,
    log,
    open_target,
    report_head,
    run_report,
)
from .stats import busy_seconds, match_deliveries, percentiles

READY_TIMEOUT = 180.0
RESULTS_MARGIN = 60.0
TARGET_MARGIN_MS = 50.0  # p99 ≤ the socket round trip's p99 + this, at 1,000 followers
TARGET_RATE_SHARE = 0.8  # firehose updates/s ≥ this x the fanout entries/s
RATE_ROUND_FOLLOWERS = 100
SETTINGS = ("followers", "activities", "rate", "connected", "batch_size", "concurrency", "client")


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser, "with --start: use this store instead of starting an embedded one")
    load = parser.add_argument_group("load")
    load.add_argument(
        "--followers",
        type=counts,
        default=[1, 100, 1000, 10_000],
        help="comma-separated follower counts (default 1,100,1000,10000)",
    )
    load.add_argument("--activities", type=positive_int, default=10)
    load.add_argument("--rate", type=positive_float, default=0.5, help="activities per second")
    load.add_argument(
        "--connected",
        type=positive_int,
        default=1000,
        help="follower feeds with a subscribed socket, spread (default 1000)",
    )
    load.add_argument("--no-sqs", action="store_true", help="the webhook only")
    add_fanout_arguments(load)
    add_subscriber_arguments(
        parser,
        client="raw",
        procs=2,
        connect_concurrency=100,
        connect_timeout=30.0,
        drain_timeout=60.0,
    )


def _latency(arrivals: Arrivals, feeds: list[str], posted: dict[str, float]) -> dict[str, Any]:
    got = {(f, a): at for (f, a), at in arrivals.first.items() if a in posted}
    wanted = {f: True for f in feeds}
    values = [(at - posted[a]) * 1000 for (f, a), at in got.items() if f in wanted]
    last: dict[str, float] = {}
    for (f, a), at in got.items():
        if f in wanted:
            last[a] = max(last.get(a, at), at)
    busy = busy_seconds([(posted[a], t) for a, t in last.items()])
    return {
        "received": len(values),
        "missing": len(feeds) * len(posted) - len(values),
        "latency_ms": percentiles(values),
        "updates_per_s": _rate(len(values), busy),
        "busy_s": round(busy, 2),
    }


async def _wait_for(
    arrivals: Arrivals, wanted: int, posted: dict[str, float], within: float
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if sum(1 for (_, a) in arrivals.first if a in posted) >= wanted:
            return
        await asyncio.sleep(0.1)


async def run_round(
    args: argparse.Namespace,
    http: aiohttp.ClientSession,
    target: Target,
    run: str,
    n: int,
    endpoints: dict[Kind, Arrivals],
) -> dict[str, Any]:
    feed = f"user:{run}-{n}"
    feeds = [f"timeline:{run}-{n}-{i}" for i in range(n)]
    connected = spread(feeds, args.connected)
    started = time.monotonic()
    how = await setup_follows(http, target, feed, feeds)
    log(f"[{n}] {n} follows of {feed} ({how}) in {time.monotonic() - started:.1f}s")
    posts = Posts(feed, str(n))
    before = {kind: (a.messages, a.elements) for kind, a in endpoints.items()}
    children: list[SubscriberProcess] = []
    try:
        config = subscriber_config(args, target.url, target.token)
        await start_subscribers(
            connected, min(args.subscriber_procs, len(connected)), config, children
        )
        readies = await asyncio.gather(*(c.receive("ready", READY_TIMEOUT) for c in children))
        log(f"[{n}] {sum(r['connected'] for r in readies)}/{len(connected)} sockets subscribed")
        log(f"[{n}] posting {args.activities} activities at {args.rate}/s")
        await post_all(http, target, posts, args.activities, args.rate, run)
        ids = list(posts.started)
        for child in children:
            await child.send({"expect": ids, "timeout": args.drain_timeout})
        outcomes = await asyncio.gather(
            *(c.receive("results", args.drain_timeout + RESULTS_MARGIN) for c in children)
        )
        for arrivals in endpoints.values():
            await _wait_for(arrivals, (n + 1) * len(ids), posts.started, args.drain_timeout)
    finally:
        await asyncio.gather(*(c.close() for c in children), return_exceptions=True)
    target.check_alive()
    received: dict[str, dict[str, float]] = {}
    for outcome in outcomes:
        received.update(outcome["received"])
    sockets = match_deliveries(connected, received, posts.started)
    socket_busy = busy_seconds([(posts.started[a], t) for a, t in sockets.last.items()])
    result: dict[str, Any] = {
        "followers": n,
        "connected": len(connected),
        "posted": len(posts.started),
        "post_errors": posts.errors[:5],
        # The insert's answer: with endpoints, it waits for the outbox write too.
        "post_answer_ms": percentiles([s * 1000 for s in posts.seconds]),
        "socket": {
            "received": sockets.received,
            "missing": len(connected) * len(posts.started) - sockets.received,
            "latency_ms": percentiles(sockets.latencies_ms),
            # Every activity's fanout ends with its last connected follower's delivery (they
            # are spread over the follower chunks): entries written per second meanwhile.
            "fanout_entries_per_s": _rate(n * len(posts.started), socket_busy),
        },
    }
    for kind, arrivals in endpoints.items():
        figures = _latency(arrivals, feeds, posts.started)
        messages = arrivals.messages - before[kind][0]
        figures["messages"] = messages
        figures["messages_per_s"] = (
            round(messages / figures["busy_s"], 1) if figures["busy_s"] else None
        )
        origin = _latency(arrivals, [feed], posts.started)
        figures["origin_feed_latency_ms"] = origin["latency_ms"]
        result[kind] = figures
    log(f"[{n}] " + json.dumps({k: result[k]["latency_ms"] for k in ("socket", *endpoints)}))
    return result


def _targets(rounds: list[dict[str, Any]], kinds: list[str]) -> dict[str, Any]:
    """The issue's targets, at 1,000 followers: p99 ≤ socket p99 + 50 ms; and firehose
    updates/s ≥ 0.8 x fanout entries/s in the rounds whose rate is a throughput: those of at
    least RATE_ROUND_FOLLOWERS followers (with 1 follower, 10 updates posted 2 s apart, the
    "rate" is only 10 over the sum of their latencies). Every round's ratio is listed."""
    out: dict[str, Any] = {}
    at = next((r for r in rounds if r["followers"] == 1000), None)
    for kind in kinds:
        if at is not None and at["socket"]["latency_ms"] and at[kind]["latency_ms"]:
            limit = at["socket"]["latency_ms"]["p99"] + TARGET_MARGIN_MS
            out[f"{kind}_p99_at_1000_ms"] = at[kind]["latency_ms"]["p99"]
            out[f"{kind}_p99_limit_ms"] = round(limit, 1)
            out[f"{kind}_p99_met"] = at[kind]["latency_ms"]["p99"] <= limit
        ratios = {
            r["followers"]: round(r[kind]["updates_per_s"] / r["socket"]["fanout_entries_per_s"], 2)
            for r in rounds
            if r[kind]["updates_per_s"] and r["socket"]["fanout_entries_per_s"]
        }
        out[f"{kind}_rate_ratios"] = ratios
        counted = [v for n, v in ratios.items() if n >= RATE_ROUND_FOLLOWERS]
        out[f"{kind}_rate_met"] = bool(counted) and min(counted) >= TARGET_RATE_SHARE
    return out


async def firehose(args: argparse.Namespace) -> Report:
    args.start = True
    run = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="tidings-firehose-") as workdir:
        async with webhook_receiver() as (hook_url, hook), _sqs(args, workdir) as sqs:
            endpoints: dict[Kind, Arrivals] = {"webhook": hook}
            args.server_env = {
                "TIDINGS_FIREHOSE_WEBHOOK": json.dumps([{"url": hook_url, "secret": SECRET}]),
                **AWS_ENV,
            }
            if sqs is not None:
                moto_url, queue, endpoints["sqs"] = sqs
                args.server_env["TIDINGS_FIREHOSE_SQS"] = json.dumps(
                    [{"queue_url": queue, "region": "us-east-1", "endpoint_url": moto_url}]
                )
            report: Report = {
                **report_head("firehose"),
                "settings": {k: getattr(args, k) for k in SETTINGS},
            }
            async with aiohttp.ClientSession() as http, open_target(args, http, run) as target:
                await describe_store(report, target)
                rounds = []
                for n in args.followers:
                    rounds.append(await run_round(args, http, target, run, n, endpoints))
            report["rounds"] = rounds
            report["bad_signatures"] = hook.errors
            report["duplicates"] = {k: a.duplicates for k, a in endpoints.items()}
            report["targets"] = _targets(rounds, list(endpoints))
            return report


def _sqs(args: argparse.Namespace, workdir: str) -> Any:
    return contextlib.nullcontext(None) if args.no_sqs else sqs_queue(workdir)


def _failed(report: Report) -> bool:
    return any(r[k]["missing"] for r in report["rounds"] for k in ("webhook", "sqs") if k in r)


def main(args: argparse.Namespace) -> int:
    return run_report(firehose(args), _failed)
