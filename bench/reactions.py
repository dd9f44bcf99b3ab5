"""The reactions benchmark: what an add costs, many users liking one activity, live events.

1. `--adds` reaction adds, one at a time, each to its own activity (of one feed), without
   target feeds; then as many with one target feed each (the reacting user's `user` feed, where
   the add also puts an activity). The server is fresh (with `--start`): the first adds of
   each kind are cold (no cache, no connection, no index pages read yet). Latency percentiles
   of all of them, the first ones included, and the first `--cold` separately.
2. `--rounds` times: `--likers` distinct users like one new activity all at once. The
   activity's `reaction_counts` afterwards must be exactly `--likers`, and so must a recount
   (the filter pages of its likes read through); adds/s is the likers over the time from the
   first add sent to the last answer.
3. `live` (bench/reaction_events.py): `--watchers` sockets subscribed to one feed and watching
   the reactions of one of its activities; `--live` activities added to the feed and as many
   likes of the activity, alternating and paced: from just before each POST to each socket's
   receipt of its event (`feed.update`, `reaction.added`), and the ratio of the p99s.

`--parts` runs some of them only. One JSON document on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import aiohttp

from . import reaction_events
from .enrich import _call
from .options import add_target_arguments, positive_int, require_loopback
from .services import Report, Target, describe_store, log, open_target, report_head, run_report
from .stats import percentiles

PAGE = 25  # the most reactions a filter page answers
PARTS = ("add", "likers", "live")


def parts(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    if not chosen or any(part not in PARTS for part in chosen):
        raise argparse.ArgumentTypeError(f"{text}: comma-separated, of {', '.join(PARTS)}")
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser, "with --start: use this store instead of starting an embedded one")
    load = parser.add_argument_group("load")
    load.add_argument("--adds", type=positive_int, default=200, help="per kind of add")
    load.add_argument("--cold", type=positive_int, default=5, help="first ones shown apart")
    load.add_argument("--likers", type=positive_int, default=100, help="at once, on one activity")
    load.add_argument("--rounds", type=positive_int, default=3, help="of concurrent likers")
    live = parser.add_argument_group("live reaction events against the feed round trip")
    live.add_argument("--watchers", type=positive_int, default=100, help="sockets (default 100)")
    live.add_argument(
        "--live", type=positive_int, default=200, help="activities, and as many likes"
    )
    live.add_argument(
        "--pace-ms", type=reaction_events.pace, default=(20.0, 50.0), metavar="LOW,HIGH",
        help="the wait between two posts, drawn uniformly (default 20,50)",
    )  # fmt: skip
    parser.add_argument(
        "--parts", type=parts, default=list(PARTS), help=f"which to run (default {','.join(PARTS)})"
    )
    parser.set_defaults(batch_size=500, concurrency=4)  # the server's own fanout defaults


async def _activities(
    http: aiohttp.ClientSession, target: Target, feed: str, count: int
) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        batch = [
            {"actor": f"SU:{feed}", "verb": "post", "object": f"thing:{len(ids) + i}"}
            for i in range(min(100, count - len(ids)))
        ]
        added = await _call(http, target, "POST", f"feed/user/{feed}/", json={"activities": batch})
        ids += [a["id"] for a in added["activities"]]
    return ids


async def _adds(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str, targets: bool
) -> dict[str, Any]:
    """One add at a time, each to an activity of its own: latencies (ms)."""
    name = "with_target_feeds" if targets else "without_target_feeds"
    activities = await _activities(http, target, f"{run}-{name}", args.adds)
    log(f"{args.adds} adds {name.replace('_', ' ')}")
    latencies = []
    for i, activity_id in enumerate(activities):
        user = f"{run}-u{i % 50}"
        body: dict[str, Any] = {"kind": "like", "activity_id": activity_id, "user_id": user}
        if targets:
            body["target_feeds"] = [f"user:{user}"]
        started = time.perf_counter()
        await _call(http, target, "POST", "reaction/", json=body)
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "adds": len(latencies),
        "latency_ms": percentiles(latencies),
        "cold_ms": [round(x, 1) for x in latencies[: args.cold]],
        "warm_latency_ms": percentiles(latencies[args.cold :]),
    }


async def _recount(http: aiohttp.ClientSession, target: Target, activity_id: str) -> int:
    """The likes of the activity, counted from its filter pages."""
    seen, params = 0, {"limit": str(PAGE)}
    while True:
        page = await _call(
            http, target, "GET", f"reaction/activity_id/{activity_id}/like/", params=params
        )
        seen += len(page["results"])
        if len(page["results"]) < PAGE:
            return seen
        params = {"limit": str(PAGE), "id_lt": page["results"][-1]["id"]}


async def _likers(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str, n: int
) -> dict[str, Any]:
    [activity_id] = await _activities(http, target, f"{run}-liked{n}", 1)
    latencies: list[float] = []
    errors: list[str] = []

    async def like(i: int) -> None:
        body = {"kind": "like", "activity_id": activity_id, "user_id": f"{run}-liker{i}"}
        sent = time.perf_counter()
        try:
            await _call(http, target, "POST", "reaction/", json=body)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            return
        latencies.append((time.perf_counter() - sent) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(like(i) for i in range(args.likers)))
    elapsed = time.perf_counter() - started
    read = await _call(
        http, target, "GET", "enrich/activities/",
        params={"ids": activity_id, "withReactionCounts": "true"},
    )  # fmt: skip
    counted = read["results"][0].get("reaction_counts", {}).get("like", 0)
    recounted = await _recount(http, target, activity_id)
    result: dict[str, Any] = {
        "likers": args.likers,
        "added": len(latencies),
        "adds_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": percentiles(latencies),
        "reaction_counts_like": counted,
        "recount": recounted,
        "exact": counted == recounted == args.likers,
    }
    if errors:
        result["errors"] = errors[:5]
    return result


async def reactions(args: argparse.Namespace) -> Report:
    if not args.start:
        require_loopback(args.url, "--url")
    run = uuid.uuid4().hex[:8]
    report: Report = {**report_head("reactions", run)}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        open_target(args, http, run) as target,
    ):
        await describe_store(report, target)
        if "add" in args.parts:
            report["add"] = {
                "without_target_feeds": await _adds(args, http, target, run, targets=False),
                "with_target_feeds": await _adds(args, http, target, run, targets=True),
            }
        if "likers" in args.parts:
            rounds = []
            for n in range(args.rounds):
                log(f"{args.likers} likers at once, round {n + 1}")
                rounds.append(await _likers(args, http, target, run, n))
            report["concurrent_likers"] = rounds
        if "live" in args.parts:
            report["live"] = await reaction_events.live(args, http, target, run)
    return report


def _failed(report: Report) -> bool:
    inexact = not all(r["exact"] for r in report.get("concurrent_likers", []))
    return inexact or "error" in report.get("live", {})


def main(args: argparse.Namespace) -> int:
    return run_report(reactions(args), _failed)
