"""The write benchmark: how long `POST feed/user/<id>/` takes to answer when the feed has 0,
100 and 1,000 followers, and whether a read of a follower feed right after the answer already
holds the activity. A fanout to at most `fanout.sync_max_feeds` follower feeds is done before
the answer, waited for at most `fanout.sync_budget_ms` (README "Fanout"): the price of reading
one's writes is in these answers.

Per follower count: the follows are set up (straight into the store with --start), then
`--activities` posts are made one after the other, starting at most `--rate` per second (slow
enough that each fanout ends before the next post), and after each answer the last follower
feed is read once. One JSON document on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import aiohttp

from .feeds import API, HTTP_TIMEOUT, setup_follows
from .options import add_target_arguments, positive_float, positive_int, require_loopback
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


def follower_counts(text: str) -> list[int]:
    """Comma-separated follower counts, 0 allowed (a feed nobody follows)."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text}: comma-separated integers") from exc
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text}: comma-separated integers, each at least 0")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser, "with --start: use this store instead of starting an embedded one")
    load = parser.add_argument_group("load")
    load.add_argument("--followers", type=follower_counts, default=[0, 100, 1000])
    load.add_argument("--activities", type=positive_int, default=100, help="posts per count")
    load.add_argument("--rate", type=positive_float, default=4.0, help="posts per second")
    server = parser.add_argument_group("the started server's fanout settings")
    server.add_argument("--sync-max-feeds", type=int, help="fanout.sync_max_feeds (0: off)")
    server.add_argument("--sync-budget-ms", type=float, help="fanout.sync_budget_ms")
    parser.set_defaults(batch_size=500, concurrency=4)  # the server's own defaults


def _server_env(args: argparse.Namespace) -> dict[str, str]:
    env = {}
    if args.sync_max_feeds is not None:
        env["TIDINGS_FANOUT_SYNC_MAX_FEEDS"] = str(args.sync_max_feeds)
    if args.sync_budget_ms is not None:
        env["TIDINGS_FANOUT_SYNC_BUDGET_MS"] = str(args.sync_budget_ms)
    return env


async def _call(
    http: aiohttp.ClientSession, target: Target, method: str, path: str, body: Any = None
) -> Any:
    async with http.request(
        method,
        f"{target.url}{API}/{path}",
        params={"api_key": target.api_key},
        json=body,
        headers=headers(target),
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT),
    ) as rsp:
        answer = await rsp.json(content_type=None)
        if rsp.status not in (200, 201):
            raise RuntimeError(f"{method} {path}: HTTP {rsp.status}: {str(answer)[:300]}")
        return answer


async def one_count(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str, n: int
) -> dict[str, Any]:
    feed = f"user:{run}-{n}"
    followers = [f"timeline:{run}-{n}-{i}" for i in range(n)]
    how = await setup_follows(http, target, feed, followers) if followers else None
    log(f"{n} followers ({how}): posting {args.activities} activities")
    seconds: list[float] = []
    visible = 0
    errors: list[str] = []
    first = time.perf_counter()
    for index in range(args.activities):
        await asyncio.sleep(max(0.0, first + index / args.rate - time.perf_counter()))
        body = {"actor": feed, "verb": "post", "object": f"bench:{run}:{n}:{index}"}
        try:
            clock = time.perf_counter()
            added = await _call(http, target, "POST", f"feed/user/{run}-{n}/", body)
            seconds.append(time.perf_counter() - clock)
            if followers:
                read = await _call(http, target, "GET", f"feed/timeline/{run}-{n}-{n - 1}/")
                visible += [a["id"] for a in read["results"][:1]] == [added["id"]]
        except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    millis = [s * 1000 for s in seconds]
    result = {
        "followers": n,
        "follows": how,
        "posts": len(seconds),
        "post_ms": percentiles(millis),
        # A read of the last follower feed right after the answer held the activity.
        "visible_at_answer": round(visible / len(seconds), 3) if followers and seconds else None,
        "errors": errors[:10],
    }
    log(f"{n} followers: {result['post_ms']}, visible at answer {result['visible_at_answer']}")
    return result


async def bench_writes(args: argparse.Namespace) -> Report:
    if not args.start:
        require_loopback(args.url, "--url")
    args.server_env = _server_env(args)
    run = uuid.uuid4().hex[:8]
    report: Report = report_head("writes", run)
    async with (
        aiohttp.ClientSession() as http,
        open_target(args, http, run) as target,
    ):
        await describe_store(report, target)
        report["settings"] = {
            "activities": args.activities,
            "rate_per_s": args.rate,
            "server_env": args.server_env if args.start else None,
        }
        report["rounds"] = [await one_count(args, http, target, run, n) for n in args.followers]
    return report


def main(args: argparse.Namespace) -> int:
    return run_report(bench_writes(args), lambda report: any(r["errors"] for r in report["rounds"]))
