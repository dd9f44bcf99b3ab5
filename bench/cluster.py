"""The multi-node benchmark: one feed fanned out to thousands of subscribers spread over workers.

For each worker count W of `--workers` (default 1,2), one after the other, each on fresh data:
a fresh store (an embedded SecantusDB the benchmark starts, or a fresh database of
`--mongodb-url`) and `python -m tidings serve --workers W` on a free port. The feed
`user:<run>-w<W>` gets `--subscribers` followers `timeline:<run>-w<W>-<i>`, written straight into
the store; the subscriber processes connect one socket per follower feed through the shared
port, so the kernel spreads them over the workers; then `--activities` activities are posted at
`--rate`, and every delivery is timed from the moment just before its POST. One JSON document
goes to stdout, progress to stderr; see bench/README.md for what each figure means.

The server starts what `tidings serve --workers W` starts by itself when only the store is given:
with W > 1 the supervisor runs a redis-server that carries the emits between the workers, and a
single node runs without one. `--redis always` gives every worker count a Redis (started by the
benchmark), for the cost of the workers alone with the Redis hop held equal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from harness.store import embedded_store
from tidings.auth import server_token
from tidings.runtime.local_redis import local_redis

from . import procinfo
from .children import SubscriberProcess, start_subscribers, subscriber_config
from .feeds import Posts, post_all, setup_follows
from .nodes import (
    SOCKETS,
    Nodes,
    cpu_snapshot,
    cpu_used,
    server_side,
    started_nodes,
    wait_ready,
    worker_metrics,
)
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
from .services import (
    EMBEDDED_CACHE_SIZE,
    Target,
    log,
    mongo_client,
    report_head,
    run_report,
)
from .stats import busy_seconds, match_deliveries, percentiles
from .store import count_entries, raw_insert_rate, store_version

READY_MESSAGE_TIMEOUT_BASE = 120.0  # + 0.1 s per subscriber
RESULTS_MESSAGE_MARGIN = 120.0  # sending 10,000 feeds' receipts back takes a while


def add_arguments(parser: argparse.ArgumentParser) -> None:
    nodes = parser.add_argument_group("the nodes (always started by the benchmark)")
    nodes.add_argument(
        "--workers",
        type=counts,
        default=[1, 2],
        help="comma-separated worker counts, run one after the other (default 1,2)",
    )
    nodes.add_argument(
        "--redis",
        choices=("auto", "always"),
        default="auto",
        help="auto: as `serve --workers W` runs with no redis.url (the supervisor starts a "
        "redis-server for W > 1, one worker runs without); always: the benchmark starts one "
        "for every W, 1 included (default auto)",
    )
    nodes.add_argument(
        "--mongodb-url",
        default="",
        help="use this MongoDB (loopback only; a fresh database per worker count) instead of "
        "a fresh embedded store per worker count",
    )
    nodes.add_argument("--api-key", default=DEV_API_KEY)
    nodes.add_argument("--api-secret", default=DEV_API_SECRET)
    nodes.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="where the server, Redis and store logs are kept (default: a new directory "
        "tidings-bench-cluster-<run> in the temporary directory); the data is removed",
    )

    load = parser.add_argument_group("load")
    load.add_argument(
        "--subscribers",
        type=positive_int,
        default=10_000,
        help="follower feeds of the one followed feed, one subscribed socket each (default 10000)",
    )
    load.add_argument(
        "--activities", type=positive_int, default=10, help="activities posted (default 10)"
    )
    load.add_argument(
        "--rate",
        type=positive_float,
        default=0.1,
        help="activities per second (default 0.1: one 10k fanout into the embedded store takes "
        "~8 s, so they do not overlap; 0.5 offers 5,000 entries/s, about 4x what it takes, and "
        "measures queueing)",
    )
    add_fanout_arguments(load)
    clients = add_subscriber_arguments(
        parser,
        client="raw",
        procs=2,
        connect_concurrency=100,
        connect_timeout=30.0,
        drain_timeout=600.0,
    )
    clients.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=30.0,
        help="stop waiting for deliveries once none came for this many seconds (default 30); "
        "--drain-timeout caps the whole wait after the last POST",
    )


# --------------------------------------------------------------------------- one worker count


async def run_workers(
    args: argparse.Namespace, run: str, workers: int, workdir: Path
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "workers": workers,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    async with contextlib.AsyncExitStack() as stack:
        store_url = args.mongodb_url
        if not store_url:
            log(f"[w{workers}] starting a fresh embedded store")
            store_url = await stack.enter_async_context(
                embedded_store(workdir, EMBEDDED_CACHE_SIZE)
            )
        redis_url = ""
        if args.redis == "always":
            redis_url = await stack.enter_async_context(local_redis(workdir / "bench-redis"))
        database = f"bench_{run}_w{workers}"
        client = mongo_client(store_url)
        stack.push_async_callback(client.close)
        db = client[database]
        result["store_version"] = await store_version(db)

        nodes = await stack.enter_async_context(
            started_nodes(args, workers, store_url, redis_url, database, workdir)
        )
        result["redis"] = nodes.redis
        log(f"[w{workers}] started {nodes.url} (pid {nodes.process.pid}, log {nodes.log_path})")
        token = server_token(args.api_secret)
        target = Target(nodes.url, args.api_key, token, "", db, nodes.process, nodes.log_path)
        try:
            await wait_ready(nodes)
            log(f"[w{workers}] workers ready: pids {nodes.worker_pids}")
            result.update(await _measure_round(args, run, nodes, target))
        except Exception as exc:
            log(f"[w{workers}] failed: {type(exc).__name__}: {exc}")
            result["error"] = f"{type(exc).__name__}: {exc}"
        result["worker_pids_at_end"] = nodes.find_workers()
        result["server_exit_code"] = nodes.process.returncode
        result["server_log"] = nodes.log_problems()
    return result


async def _measure_round(
    args: argparse.Namespace, run: str, nodes: Nodes, target: Target
) -> dict[str, Any]:
    w, n = nodes.workers, args.subscribers
    result: dict[str, Any] = {"worker_pids": nodes.worker_pids}
    log(f"[w{w}] raw bulk insert of {args.raw_docs} docs")
    raw = await raw_insert_rate(target.db, run, args.raw_docs, args.batch_size, args.concurrency)
    result["raw_bulk_insert_docs_per_s"] = round(raw, 1)
    log(f"[w{w}] raw bulk insert: {raw:.0f} docs/s")

    feed = f"user:{run}-w{w}"
    feeds = [f"timeline:{run}-w{w}-{i}" for i in range(n)]
    posts = Posts(feed, f"w{w}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)  # every POST on a new connection
    async with aiohttp.ClientSession(connector=connector) as http:
        await setup_follows(http, target, feed, feeds)
        result["follows_setup_s"] = round(loop.time() - started, 2)
        log(f"[w{w}] {n} follows of {feed} in {result['follows_setup_s']}s")

        children: list[SubscriberProcess] = []
        try:
            config = subscriber_config(args, target.url, target.token)
            await start_subscribers(feeds, min(args.subscriber_procs, n), config, children)
            within = READY_MESSAGE_TIMEOUT_BASE + 0.1 * n
            readies = await asyncio.gather(*(c.receive("ready", within) for c in children))
            connected = sum(r["connected"] for r in readies)
            result["subscribers_connected"] = connected
            result["connect_subscribe_s"] = max(r["seconds"] for r in readies)
            errors = [e for r in readies for e in r["errors"]]
            if errors:
                result["subscribe_errors"] = errors[:10]
            log(f"[w{w}] {connected}/{n} sockets subscribed in {result['connect_subscribe_s']}s")
            target.check_alive()

            established = procinfo.established_on_port(nodes.worker_pids, nodes.port)
            before = await worker_metrics(nodes)
            result["sockets_per_worker"] = [
                {
                    "pid": pid,
                    "established_connections": established.get(pid),
                    "tidings_connected_sockets": before.get(pid, {}).get(SOCKETS),
                }
                for pid in nodes.worker_pids
            ]
            log(f"[w{w}] sockets per worker: {json.dumps(result['sockets_per_worker'])}")

            log(f"[w{w}] posting {args.activities} activities at {args.rate}/s")
            cpu_before = cpu_snapshot(nodes)
            clock = loop.time()
            await post_all(http, target, posts, args.activities, args.rate, run)
            ids = list(posts.started)
            wait = {"timeout": args.drain_timeout, "idle_timeout": args.idle_timeout}
            for child in children:
                await child.send({"expect": ids, **wait})
            within = args.drain_timeout + RESULTS_MESSAGE_MARGIN
            outcomes = await asyncio.gather(*(c.receive("results", within) for c in children))
            cpu = cpu_used(cpu_before, cpu_snapshot(nodes))
            cpu["wall_s"] = round(loop.time() - clock, 2)
        finally:
            await asyncio.gather(*(c.close() for c in children), return_exceptions=True)
    target.check_alive()
    after = await worker_metrics(nodes)
    result["offered_entries_per_s"] = round(args.rate * n, 1)
    result.update(_deliveries(feeds, posts, outcomes, raw))
    result["entries_in_store"] = await count_entries(target.db, feed, posts.started)
    result.update(server_side(before, after))
    result["cpu_seconds_while_posting_and_delivering"] = cpu
    return result


def _deliveries(
    feeds: Sequence[str], posts: Posts, outcomes: list[dict[str, Any]], raw: float
) -> dict[str, Any]:
    received: dict[str, dict[str, float]] = {}
    for outcome in outcomes:
        received.update(outcome["received"])
    got = match_deliveries(feeds, received, posts.started)
    expected = len(feeds) * len(posts.started)
    spans = {a: t - posts.started[a] for a, t in got.last.items()}
    busy = busy_seconds([(posts.started[a], t) for a, t in got.last.items()])
    whole = max(got.last.values()) - min(posts.started.values()) if got.last else 0.0
    fanout_rate = got.received / busy if busy > 0 else None
    peaks = [got.count[a] / s for a, s in spans.items() if s > 0]
    result: dict[str, Any] = {
        "posted": len(posts.started),
        "deliveries_expected": expected,
        "deliveries_received": got.received,
        "deliveries_missing": expected - got.received,
        "latency_ms": percentiles(got.latencies_ms),
        "deliveries_per_s": round(got.received / whole, 1) if whole > 0 else None,
        "activity_deliveries_per_s_median": round(statistics.median(peaks), 1) if peaks else None,
        "fanout_complete_ms": percentiles([s * 1000 for s in spans.values()]),
        "post_answer_ms": percentiles([s * 1000 for s in posts.seconds]),
        "fanout_entries_per_s": None if fanout_rate is None else round(fanout_rate, 1),
        "fanout_vs_raw_insert_ratio": round(fanout_rate / raw, 3) if fanout_rate else None,
    }
    problems = {
        "post_errors": posts.errors[:10],
        "unexpected_deliveries": got.unexpected,
        "duplicate_deliveries": sum(o["duplicates"] for o in outcomes),
        "sockets_dropped": sum(o["dropped"] for o in outcomes),
        "complete_before_timeout": all(o["complete"] for o in outcomes),
    }
    result.update({k: v for k, v in problems.items() if v or k == "complete_before_timeout"})
    return result


# --------------------------------------------------------------------------- main


def _prune(workdir: Path) -> None:
    """Keep the logs, drop the data."""
    for data in ("store", "bench-redis/redis", "var/redis", "var/store"):
        shutil.rmtree(workdir / data, ignore_errors=True)


async def cluster(args: argparse.Namespace) -> dict[str, Any]:
    if args.mongodb_url:
        require_loopback(args.mongodb_url, "--mongodb-url")
    run = uuid.uuid4().hex[:8]
    log_dir = args.log_dir or Path(tempfile.gettempdir()) / f"tidings-bench-cluster-{run}"
    report: dict[str, Any] = {
        **report_head("cluster", run),
        "settings": {
            "workers": args.workers,
            "subscribers": args.subscribers,
            "activities": args.activities,
            "rate_per_s": args.rate,
            "store": "mongodb (--mongodb-url), a fresh database per worker count"
            if args.mongodb_url
            else "embedded SecantusDB started by the benchmark, a fresh one per worker count",
            "redis": args.redis,
            "posts": "each POST on a new connection: the kernel picks the worker that fans out",
            "fanout_batch_size": args.batch_size,
            "fanout_concurrency": args.concurrency,
            "raw_insert_docs": args.raw_docs,
            "subscriber_client": args.client,
            "subscriber_procs": args.subscriber_procs,
            "connect_concurrency": args.connect_concurrency,
            "drain_timeout_s": args.drain_timeout,
            "idle_timeout_s": args.idle_timeout,
        },
        "logs": str(log_dir),
    }
    results = []
    for workers in args.workers:
        workdir = log_dir / f"w{workers}"
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            result = await run_workers(args, run, workers, workdir)
        except Exception as exc:
            log(f"[w{workers}] failed: {type(exc).__name__}: {exc}")
            result = {"workers": workers, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            _prune(workdir)
        results.append(result)
        log(f"[w{workers}] {json.dumps(result)}")
    report["results"] = results
    report["summary"] = [
        {
            "workers": r["workers"],
            "subscribers_connected": r.get("subscribers_connected"),
            "latency_p50_ms": (r.get("latency_ms") or {}).get("p50"),
            "latency_p99_ms": (r.get("latency_ms") or {}).get("p99"),
            "deliveries_per_s": r.get("deliveries_per_s"),
            "activity_deliveries_per_s_median": r.get("activity_deliveries_per_s_median"),
            "deliveries_missing": r.get("deliveries_missing", "error" if "error" in r else None),
        }
        for r in results
    ]
    return report


def main(args: argparse.Namespace) -> int:
    return run_report(cluster(args), lambda report: any(
        "error" in r or r.get("deliveries_missing") for r in report["results"]
    ))  # fmt: skip
