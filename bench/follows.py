"""The follow benchmark: how fast one feed gains followers through the API.

(a) single REST follows (`POST feed/timeline/<i>/follows/ {target}`) of ONE feed, `--in-flight`
at once, until it has `--followers` followers: the rate over each `--step` follows, so that a
rate falling with the follower count shows; (b) `POST follow_many/` of `--many` follows of
another feed, in calls of `--many-batch` follows (Stream documents 2,500 per call; its SDK sends
one call per `client.follow_many(...)`), one call after the other: follows/s over all of them;
(c) `POST unfollow_many/` of those follows again (`keep_history` false: what they got goes), in
calls of the same size. Both (a) and (b) follow with `activity_copy_limit` = `--copy-limit` (0: a
follow's own cost, not its copies). A `--many-batch` above Stream's 2,500 raises the started
server's `fanout.max_follow_many` to it (one call of 10,000: `--many-batch 10000`). Phase (a)
stops after `--budget` seconds (the old code took over 20 minutes for 10,000): the steps done so
far are reported. One JSON document on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import aiohttp

from .feeds import API, HTTP_TIMEOUT
from .options import (
    add_target_arguments,
    positive_float,
    positive_int,
    require_loopback,
)
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

MANY_TIMEOUT = 300.0
DEFAULT_MAX_FOLLOW_MANY = 2500  # fanout.max_follow_many, Stream's bound


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser, "with --start: use this store instead of starting an embedded one")
    load = parser.add_argument_group("load")
    load.add_argument("--followers", type=positive_int, default=10_000)
    load.add_argument("--step", type=positive_int, default=1000, help="follows per rate sample")
    load.add_argument("--in-flight", type=positive_int, default=100)
    load.add_argument("--budget", type=positive_float, default=600.0, help="seconds for (a)")
    load.add_argument("--many", type=positive_int, default=10_000)
    load.add_argument("--many-batch", type=positive_int, default=2500)
    load.add_argument("--copy-limit", type=int, default=0)
    # The started server's fanout settings (bench/services.py): its defaults.
    parser.set_defaults(batch_size=500, concurrency=4)


async def _follow_one(
    http: aiohttp.ClientSession, target: Target, source: str, feed: str, copy_limit: int
) -> None:
    group, _, user_id = source.partition(":")
    async with http.post(
        f"{target.url}{API}/feed/{group}/{user_id}/follows/",
        params={"api_key": target.api_key},
        json={"target": feed, "activity_copy_limit": copy_limit},
        headers=headers(target),
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT),
    ) as rsp:
        if rsp.status not in (200, 201):
            raise RuntimeError(f"follow {source}: HTTP {rsp.status}: {await rsp.text()}")


async def single_follows(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str
) -> dict[str, Any]:
    feed = f"user:{run}-single"
    queue = iter(range(args.followers))
    done = 0
    steps: list[dict[str, Any]] = []
    started = step_started = time.perf_counter()
    deadline = started + args.budget

    async def worker() -> None:
        nonlocal done, step_started
        for i in queue:
            if time.perf_counter() > deadline:
                return
            await _follow_one(http, target, f"timeline:{run}-s{i}", feed, args.copy_limit)
            done += 1
            if done % args.step == 0:
                now = time.perf_counter()
                rate = args.step / (now - step_started)
                steps.append({"followers": done, "follows_per_s": round(rate, 1)})
                log(f"(a) {done} followers: {rate:.1f} follows/s over the last {args.step}")
                step_started = now

    await asyncio.gather(*(worker() for _ in range(args.in_flight)))
    seconds = time.perf_counter() - started
    return {
        "feed": feed,
        "in_flight": args.in_flight,
        "follows_done": done,
        "finished": done == args.followers,
        "seconds": round(seconds, 2),
        "mean_follows_per_s": round(done / seconds, 1),
        "per_step": steps,
    }


async def _batches(
    args: argparse.Namespace,
    http: aiohttp.ClientSession,
    target: Target,
    run: str,
    call: str,
    params: dict[str, str],
) -> dict[str, Any]:
    """`--many` follows of one feed, in `--many-batch` calls of `call` (follow_many or
    unfollow_many), one after the other."""
    feed = f"user:{run}-many"
    calls = []
    started = time.perf_counter()
    for first in range(0, args.many, args.many_batch):
        body = [
            {"source": f"timeline:{run}-m{i}", "target": feed}
            for i in range(first, min(first + args.many_batch, args.many))
        ]
        call_started = time.perf_counter()
        async with http.post(
            f"{target.url}{API}/{call}/",
            params={"api_key": target.api_key, **params},
            json=body,
            headers=headers(target),
            timeout=aiohttp.ClientTimeout(total=MANY_TIMEOUT),
        ) as rsp:
            if rsp.status not in (200, 201):
                raise RuntimeError(f"{call}: HTTP {rsp.status}: {await rsp.text()}")
        seconds = time.perf_counter() - call_started
        calls.append({"follows": len(body), "seconds": round(seconds, 3)})
        log(f"{call} of {len(body)}: {len(body) / seconds:.0f} follows/s")
    seconds = time.perf_counter() - started
    return {
        "feed": feed,
        "follows": args.many,
        "batch": args.many_batch,
        "seconds": round(seconds, 3),
        "follows_per_s": round(args.many / seconds, 1),
        "calls": calls,
    }


async def many(
    args: argparse.Namespace,
    http: aiohttp.ClientSession,
    target: Target,
    run: str,
    call: str,
    params: dict[str, str],
) -> dict[str, Any]:
    """Phase (b) or (c), with the followers the store holds after it."""
    try:
        report = await _batches(args, http, target, run, call, params)
    except (RuntimeError, aiohttp.ClientError) as exc:  # e.g. no such call (404)
        report = {"feed": f"user:{run}-many", "follows": args.many, "error": str(exc)}
    report["followers_stored"] = await _followers(target, report["feed"])
    return report


async def _followers(target: Target, feed: str) -> int | None:
    if target.db is None:
        return None
    return int(await target.db["follows"].count_documents({"target": feed}))


async def bench_follows(args: argparse.Namespace) -> dict[str, Any]:
    if not args.start:
        require_loopback(args.url, "--url")
    if args.many_batch > DEFAULT_MAX_FOLLOW_MANY:
        args.server_env = {"TIDINGS_FANOUT_MAX_FOLLOW_MANY": str(args.many_batch)}
    run = uuid.uuid4().hex[:8]
    report: dict[str, Any] = {
        **report_head("follows", run),
    }
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        open_target(args, http, run) as target,
    ):
        await describe_store(report, target)
        if target.server is not None:
            report["server_pid"] = target.server.pid
        report["settings"] = {
            "followers": args.followers,
            "in_flight": args.in_flight,
            "step": args.step,
            "budget_s": args.budget,
            "many": args.many,
            "many_batch": args.many_batch,
            "activity_copy_limit": args.copy_limit,
        }
        single = await single_follows(args, http, target, run)
        single["followers_stored"] = await _followers(target, single["feed"])
        report["single_rest_follows"] = single
        copy = {"activity_copy_limit": str(args.copy_limit)}
        report["follow_many"] = await many(args, http, target, run, "follow_many", copy)
        report["unfollow_many"] = await many(args, http, target, run, "unfollow_many", {})
    return report


def main(args: argparse.Namespace) -> int:
    def failed(report: Report) -> bool:
        single, followed = report["single_rest_follows"], report["follow_many"]
        unfollowed = report["unfollow_many"]
        return not (
            single["finished"]
            and "error" not in followed
            and followed["followers_stored"] in (None, followed["follows"])
            and "error" not in unfollowed
            and unfollowed["followers_stored"] in (None, 0)
        )

    return run_report(bench_follows(args), failed)
