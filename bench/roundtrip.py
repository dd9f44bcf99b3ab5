"""The round-trip benchmark: HTTP insert → stored → fanned out → `feed.update` received.

For each follower count n: a fresh feed `user:<run>-<n>` gets n followers
`timeline:<run>-<n>-<i>` (or of the group `--feed-group`: `notification` measures the fanout
into notification feeds, which group each activity as it arrives), a separate process
(bench/subscribers.py) connects one Socket.IO client per follower feed (or per `--connected` of
them, spread over the list), then activities are posted to the followed feed at a set rate and
every delivery is timed from the moment just before its POST; afterwards a sample of follower
feeds is read back through REST. Above `--pull-threshold` followers the feed is made a pull feed
first (a pull round: nothing is copied, reads merge it in, one emit reaches every connected
follower). In the same run, the raw bulk-insert rate of the same store is measured, for the
ratio of the fanout rate to it. One JSON document goes to stdout; progress goes to stderr. See
bench/README.md for what each figure means.

It starts nothing unless asked (`--start`): by default it talks to a running Tidings on
`--url`. Only loopback addresses are accepted: latencies subtract timestamps taken by two
processes, which only agree on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from .children import SubscriberProcess, start_subscribers, subscriber_config
from .feeds import (
    Posts,
    measure_rate_first,
    post_all,
    read_missing,
    settled_mode,
    setup_follows,
    setup_pull_follows,
)
from .options import (
    add_fanout_arguments,
    add_subscriber_arguments,
    add_target_arguments,
    counts,
    positive_float,
    positive_int,
    push_threshold,
    require_loopback,
)
from .services import Target, describe_store, log, open_target, report_head, run_report
from .stats import busy_seconds, distribution, match_deliveries, percentiles
from .store import count_entries, fanout_mode, raw_insert_rate

READY_MESSAGE_TIMEOUT_BASE = 120.0  # + 0.25 s per subscriber: connecting 1000 clients is slow
RESULTS_MESSAGE_MARGIN = 60.0
DEFAULT_PULL_THRESHOLD = 10_000  # the server's fanout.pull_threshold default
READ_SAMPLE = 20  # random follower feeds read back per round, besides the first and the last
READ_CONCURRENCY = 10
GROUPED_VERBS = 4  # verbs of the posts into grouped follower feeds (groups by verb and day)


# --------------------------------------------------------------------------- options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(
        parser,
        "the store Tidings uses (loopback only): for fast follow setup and the raw insert "
        "rate; with --start, use it instead of starting an embedded store",
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
    load.add_argument(
        "--warm-rate",
        type=int,
        default=2000,
        metavar="N",
        help="before the rounds, push 2 activities to N feeds so that the server has measured "
        "its fanout rate, by which it picks push or pull (default 2000; 0: none)",
    )
    load.add_argument(
        "--connected",
        type=positive_int,
        default=None,
        metavar="N",
        help="subscribe at most this many of a round's follower feeds, every (n/N)-th of them, "
        "so that they sit in many follower chunks (default: all)",
    )
    load.add_argument(
        "--pull-threshold",
        type=positive_int,
        metavar="T",
        default=DEFAULT_PULL_THRESHOLD,
        help="the server's fanout.pull_threshold: rounds with more followers are pull rounds "
        f"(default {DEFAULT_PULL_THRESHOLD}, the server's default). With --start the server "
        "gets it, and push_threshold = 0.8 x it; without, give the running server's own",
    )
    load.add_argument(
        "--feed-group",
        default="timeline",
        metavar="GROUP",
        help="the follower feeds' group (default timeline, flat): notification or "
        "timeline_aggregated measure a fanout into grouped feeds (push rounds only; the posts "
        "then use 4 verbs, so that no group holds more than the 15 activities a read shows)",
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


async def _emit_totals(
    http: aiohttp.ClientSession, target: Target, path: str
) -> tuple[float, float] | None:
    """The server's own (sum, count) of `tidings_insert_to_emit_seconds{path=...}`: "fanout",
    from a fanout job's creation to the emit of each of its batches; "direct", from an insert's
    arrival to its own emits (a pull feed's one pull-room emit among them). None when not
    available."""
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
            if name == f'{EMIT_METRIC}_{part}{{path="{path}"}}':
                found[part] = float(value)
    return (found.get("sum", 0.0), found.get("count", 0.0))


@dataclass
class Round:
    followers: int
    feeds: list[str]
    connected: list[str]  # the follower feeds with a subscribed socket
    posts: Posts
    pull: bool  # a pull round: more followers than the pull threshold


def spread(feeds: list[str], count: int | None) -> list[str]:
    """At most `count` of `feeds`, evenly spread over the list (every (n/count)-th, the first
    included; the last is left out whenever some are): connected followers then sit in many
    follower chunks, as the connected share of a big audience would."""
    n = len(feeds)
    if count is None or count >= n:
        return list(feeds)
    return [feeds[i * n // count] for i in range(count)]


async def run_round(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str, n: int
) -> dict[str, Any]:
    target_feed = f"user:{run}-{n}"
    feeds = [f"{args.feed_group}:{run}-{n}-{i}" for i in range(n)]
    pull = n > args.pull_threshold
    verbs = 1 if args.feed_group == "timeline" else GROUPED_VERBS
    posts = Posts(target_feed, str(n), verbs=verbs)
    rnd = Round(n, feeds, spread(feeds, args.connected), posts, pull)
    result: dict[str, Any] = {
        "followers": n,
        "connected": len(rnd.connected),
        "activities": args.activities,
    }
    await _set_up(args, http, target, rnd, result)

    procs = min(args.subscriber_procs, len(rnd.connected))
    emit_path = "direct" if rnd.pull else "fanout"  # a pull feed's insert emits once, itself
    children: list[SubscriberProcess] = []
    try:
        config = subscriber_config(args, target.url, target.token)
        await start_subscribers(rnd.connected, procs, config, children)
        ready_timeout = READY_MESSAGE_TIMEOUT_BASE + 0.25 * len(rnd.connected)
        readies = await asyncio.gather(*(c.receive("ready", ready_timeout) for c in children))
        connected = sum(r["connected"] for r in readies)
        result["subscribers_connected"] = connected
        result["subscribe_seconds"] = max(r["seconds"] for r in readies)
        errors = [e for r in readies for e in r["errors"]]
        if errors:
            result["subscribe_errors"] = errors[:10]
        log(
            f"[{n}] {connected}/{len(rnd.connected)} sockets subscribed "
            f"in {result['subscribe_seconds']:.1f}s"
        )
        target.check_alive()

        log(f"[{n}] posting {args.activities} activities at {args.rate}/s")
        emits_before = await _emit_totals(http, target, emit_path)
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
    result["offered_entries_per_s"] = 0.0 if rnd.pull else round(args.rate * n, 1)
    result["offered_deliveries_per_s"] = round(args.rate * len(rnd.connected), 1)
    result.update(await _measure(target, rnd, outcomes))
    result.update(await _check_reads(http, target, rnd, run))
    if target.db is not None:  # the server may have switched it meanwhile (its time budget)
        result["fanout_mode_after"] = await fanout_mode(target.db, rnd.posts.target_feed)
    emits_after = await _emit_totals(http, target, emit_path)
    if emits_before is not None and emits_after is not None:
        result["server_emit_path"] = emit_path
        batches = emits_after[1] - emits_before[1]
        seconds = emits_after[0] - emits_before[0]
        result["server_fanout_emit_mean_ms"] = (
            round(seconds / batches * 1000, 1) if batches > 0 else None
        )
    return result


async def _set_up(
    args: argparse.Namespace,
    http: aiohttp.ClientSession,
    target: Target,
    rnd: Round,
    result: dict[str, Any],
) -> None:
    """The follows of the round (a pull round: with the switch to pull in the middle); into
    `result`: how long that took and the feed's fanout mode once settled. Below the pull
    threshold the server picks the mode by its time budget: the round is a pull round if it did."""
    n, target_feed = rnd.followers, rnd.posts.target_feed
    loop = asyncio.get_running_loop()
    started = loop.time()
    if rnd.pull:
        how = await setup_pull_follows(http, target, target_feed, rnd.feeds, args.pull_threshold)
    else:
        how = await setup_follows(http, target, target_feed, rnd.feeds)
    result["follows_setup_s"] = round(loop.time() - started, 1)
    if target.db is None:
        result["fanout_mode"] = None
        return
    settling = loop.time()
    result["fanout_mode"] = await settled_mode(target, target_feed)
    result["mode_settled_s"] = round(loop.time() - settling, 1)
    log(
        f"[{n}] {n} follows of {target_feed} ({how}) in {result['follows_setup_s']:.1f}s; "
        f"fanout mode {result['fanout_mode']} ({result['mode_settled_s']:.1f}s to settle)"
    )
    if rnd.pull and result["fanout_mode"] != "pull":
        raise RuntimeError(
            f"{target_feed} is a {result['fanout_mode']} feed after its set-up, not pull: "
            "is the server's fanout.pull_threshold the --pull-threshold given?"
        )
    rnd.pull = result["fanout_mode"] == "pull"


async def _measure(target: Target, rnd: Round, outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    received: dict[str, dict[str, float]] = {}
    for outcome in outcomes:
        received.update(outcome["received"])
    posts = rnd.posts
    got = match_deliveries(rnd.connected, received, posts.started)
    expected = len(rnd.connected) * len(posts.started)
    busy = busy_seconds([(posts.started[a], t) for a, t in got.last.items()])
    rate = round(got.received / busy, 1) if busy > 0 else None
    # Entries per second only when each delivery stands for one stored entry.
    entries_rate = rate if not rnd.pull and len(rnd.connected) == rnd.followers else None
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
        "deliveries_per_s": rate,
        "fanout_entries_per_s": entries_rate,
        "latency_cdf_ms": distribution(got.latencies_ms),
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
        result["entries_expected"] = 0 if rnd.pull else rnd.followers * len(posts.started)
        result["entries_in_store"] = await count_entries(
            target.db, posts.target_feed, posts.started
        )
    return result


def read_sample(feeds: list[str], seed: str) -> list[str]:
    """The follower feeds read back: the first, the last (never connected when only some
    are), and READ_SAMPLE others at random."""
    middle = feeds[1:-1]
    picked = random.Random(seed).sample(middle, min(READ_SAMPLE, len(middle)))
    return list(dict.fromkeys([feeds[0], feeds[-1], *picked]))


async def _check_reads(
    http: aiohttp.ClientSession, target: Target, rnd: Round, run: str
) -> dict[str, Any]:
    """Read a sample of follower feeds through REST: each must show every posted activity
    (copied into it in a push round, merged in by the read in a pull round)."""
    sample = read_sample(rnd.feeds, f"{run}-{rnd.followers}")
    slots = asyncio.Semaphore(READ_CONCURRENCY)

    async def missing(feed: str) -> int:
        async with slots:
            return await read_missing(http, target, feed, rnd.posts.started)

    counts_missing = await asyncio.gather(*(missing(feed) for feed in sample))
    short = [feed for feed, m in zip(sample, counts_missing, strict=True) if m]
    result: dict[str, Any] = {
        "reads_checked": len(sample),
        "reads_missing_activities": sum(counts_missing),
    }
    if short:
        result["reads_short_feeds"] = short[:10]
    return result


# --------------------------------------------------------------------------- main


async def roundtrip(args: argparse.Namespace) -> dict[str, Any]:
    if not args.start:
        require_loopback(args.url, "--url")
    if args.mongodb_url:
        require_loopback(args.mongodb_url, "--mongodb-url")
    pull_rounds = [n for n in args.followers if n > args.pull_threshold]
    if pull_rounds and not (args.start or args.mongodb_url):
        raise SystemExit(
            f"bench: {pull_rounds} followers are above --pull-threshold {args.pull_threshold}: "
            "a pull round writes its follows into the store and watches the switch there; "
            "give --mongodb-url (and --database), or --start"
        )
    run = uuid.uuid4().hex[:8]
    report: dict[str, Any] = {
        **report_head("roundtrip", run),
    }
    connector = aiohttp.TCPConnector(limit=0)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        open_target(args, http, run) as target,
    ):
        await describe_store(report, target)
        report["settings"] = {
            "started": args.start,
            "url": target.url,
            "followers": args.followers,
            "feed_group": args.feed_group,
            "connected": args.connected if args.connected else "all",
            "pull_threshold": args.pull_threshold,
            "push_threshold": (
                push_threshold(args.pull_threshold) if args.start else "the server's own"
            ),
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
        report["fanout_rate_measured_first"] = await measure_rate_first(
            http, target, run, args.warm_rate
        )
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
            shown = {k: v for k, v in result.items() if k != "latency_cdf_ms"}
            log(f"[{n}] {json.dumps(shown)}")
        report["results"] = results
    return report


def main(args: argparse.Namespace) -> int:
    return run_report(roundtrip(args), lambda report: any(
        "error" in r or r.get("deliveries_missing") or r.get("reads_missing_activities")
        for r in report["results"]
    ))  # fmt: skip
