"""The live part of the reactions benchmark: a reaction event against the feed round trip.

`--watchers` raw sockets (bench/wsclient.py, in the benchmark's process), each subscribed to
one feed F (`user:<run>-live`, through the normal `subscribe`) and watching the reactions of
one activity A of F (`reaction.watch`). Then `--live` times, alternating and paced (a wait drawn
from `--pace-ms` between two posts, each POST on its own task, so that a slow answer does not
delay the next): an activity added to F, then a like added to A. A latency is the kernel's
receive time of the event on a socket (`feed.update`, `reaction.added`) minus `time.time()`
just before its POST, for every socket and every event; each socket must get every event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

import aiohttp

from .enrich import _call
from .services import Target, log
from .stats import percentiles
from .wsclient import Subscriber, _acked_ok, address

FEED, REACTION = "feed.update", "reaction.added"
KINDS = (FEED, REACTION)
PREFIXES = {kind: b'42["' + kind.encode() + b'"' for kind in KINDS}
CONNECT_CONCURRENCY = 50
CONNECT_TIMEOUT = 30.0
DRAIN_TIMEOUT = 30.0
POLL_SECONDS = 0.05


def pace(text: str) -> tuple[float, float]:
    """`--pace-ms LOW,HIGH`: the wait between two posts, drawn uniformly (milliseconds)."""
    low, _, high = text.partition(",")
    try:
        bounds = (float(low), float(high or low))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text}: LOW,HIGH in milliseconds") from exc
    if not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"{text}: 0 <= LOW <= HIGH")
    return bounds


class Watcher(Subscriber):
    """Subscribed to a feed and watching the reactions of one activity. Every event packet is
    kept with its arrival time, and parsed after the run (the clients share the cores with the
    server: they do as little as they can while it works)."""

    def __init__(self, host: str, port: int, token: str, feed: str, activity_id: str) -> None:
        self.packets: list[tuple[bytes, float]] = []
        self.counts = dict.fromkeys(KINDS, 0)
        super().__init__(host, port, token, feed, self._keep)
        self.activity_id = activity_id

    def _keep(self, packet: bytes, at: float) -> None:
        self.packets.append((packet, at))
        for kind, prefix in PREFIXES.items():
            if packet.startswith(prefix):
                self.counts[kind] += 1

    def _packet(self, packet: bytes) -> None:
        if packet.startswith(b"430"):  # subscribed: now watch; started once watching
            if not _acked_ok(packet[3:]):
                self._fail(f"subscribe {self.feed} refused: {packet[:200]!r}")
                return
            watch = ["reaction.watch", {"activity_id": self.activity_id}]
            self._send(b"421" + json.dumps(watch).encode())
        elif packet.startswith(b"431"):
            if not _acked_ok(packet[3:]):
                self._fail(f"reaction.watch {self.activity_id} refused: {packet[:200]!r}")
            elif not self._subscribed.done():
                self._subscribed.set_result(None)
        else:
            super()._packet(packet)

    def received(self) -> dict[str, dict[str, float]]:
        """Kind -> id (the activity's, the reaction's) -> arrival time of its first event."""
        out: dict[str, dict[str, float]] = {kind: {} for kind in KINDS}
        for packet, at in self.packets:
            name, data = json.loads(packet[2:])
            if name == FEED:
                ids = [a["id"] for a in data.get("new", [])]
            elif name == REACTION:
                ids = [data["reaction"]["id"]]
            else:
                continue
            for id_ in ids:
                out[name].setdefault(id_, at)
        return out


async def _connect(
    target: Target, feed: str, activity_id: str, count: int
) -> tuple[list[Watcher], list[str]]:
    host, port = address(target.url)
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    watchers: list[Watcher] = []
    errors: list[str] = []

    async def one() -> None:
        async with gate:
            watcher = Watcher(host, port, target.token, feed, activity_id)
            try:
                await watcher.start(CONNECT_TIMEOUT)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            watchers.append(watcher)

    await asyncio.gather(*(one() for _ in range(count)))
    return watchers, errors


class Posts:
    """The posts of the run: id -> (kind, index, time.time() just before its POST and once
    it answered)."""

    def __init__(self) -> None:
        self.sent: dict[str, tuple[str, int, float, float]] = {}
        self.answer_ms: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self.errors: list[str] = []

    def posted(self, kind: str) -> int:
        return len(self.answer_ms[kind])


async def _post_all(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str,
    feed: str, activity_id: str,
) -> Posts:  # fmt: skip
    posts = Posts()
    rng = random.Random(run)

    async def post(kind: str, n: int) -> None:
        if kind == FEED:
            path, body = f"feed/user/{feed}/", {"actor": f"SU:{feed}", "verb": "post",
                                                "object": f"live:{n}"}  # fmt: skip
        else:
            path, body = "reaction/", {"kind": "like", "activity_id": activity_id,
                                       "user_id": f"{run}-fan{n}"}  # fmt: skip
        started, clock = time.time(), time.perf_counter()
        try:
            answer = await _call(http, target, "POST", path, json=body)
        except Exception as exc:
            posts.errors.append(f"{kind} {n}: {type(exc).__name__}: {exc}"[:300])
            return
        posts.answer_ms[kind].append((time.perf_counter() - clock) * 1000)
        posts.sent[answer["id"]] = (kind, n, started, time.time())

    tasks = []
    for i in range(2 * args.live):
        tasks.append(asyncio.create_task(post(KINDS[i % 2], i // 2)))
        await asyncio.sleep(rng.uniform(*args.pace_ms) / 1000)
    await asyncio.gather(*tasks)
    return posts


async def _drain(watchers: list[Watcher], posts: Posts) -> bool:
    """Until every socket counts every posted event (or DRAIN_TIMEOUT): whether they do."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        short = [
            w for w in watchers
            if any(w.counts[kind] < posts.posted(kind) for kind in KINDS) and not w.dropped
        ]  # fmt: skip
        if not short or time.monotonic() > deadline:
            return not short
        await asyncio.sleep(POLL_SECONDS)


def _kind_report(
    args: argparse.Namespace, kind: str, posts: Posts, watchers: list[Watcher],
    received: list[dict[str, dict[str, float]]],
) -> dict[str, Any]:  # fmt: skip
    """Latencies of one kind of event, over every socket and every event of that kind."""
    by_index: dict[int, list[float]] = {}
    first: dict[str, float] = {}  # id -> its first receipt
    unexpected = 0
    for got in received:
        for id_, at in got[kind].items():
            sent = posts.sent.get(id_)
            if sent is None or sent[0] != kind:
                unexpected += 1
                continue
            by_index.setdefault(sent[1], []).append((at - sent[2]) * 1000)
            first[id_] = min(first.get(id_, at), at)
    after_answer = [(at - posts.sent[id_][3]) * 1000 for id_, at in first.items()]
    every = [x for n in sorted(by_index) for x in by_index[n]]
    warm = [x for n in sorted(by_index) if n >= args.cold for x in by_index[n]]
    expected = posts.posted(kind) * len(watchers)
    out: dict[str, Any] = {
        "posted": posts.posted(kind),
        "deliveries_expected": expected,
        "deliveries_received": len(every),
        "deliveries_missing": expected - len(every),
        "latency_ms": percentiles(every),
        "cold_max_ms": [round(max(by_index[n]), 1) for n in sorted(by_index)[: args.cold]],
        "warm_latency_ms": percentiles(warm),
        "post_answer_ms": percentiles(posts.answer_ms[kind]),
        "first_receipt_after_answer_ms": percentiles(after_answer),
    }
    if unexpected:
        out["unexpected_deliveries"] = unexpected
    return out


def _ratio(report: dict[str, Any], latency: str, cut: str = "p99") -> float | None:
    feed, reaction = report[FEED][latency], report[REACTION][latency]
    if not feed or not reaction or not feed[cut]:
        return None
    return round(reaction[cut] / feed[cut], 2)


async def live(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str
) -> dict[str, Any]:
    """The live part's report; `error` in it when some socket missed some event."""
    feed = f"{run}-live"
    added = await _call(
        http, target, "POST", f"feed/user/{feed}/",
        json={"actor": f"SU:{feed}", "verb": "post", "object": "live:watched"},
    )  # fmt: skip
    activity_id = added["id"]
    log(f"live: {args.watchers} sockets subscribed to user:{feed} and watching {activity_id}")
    started = time.perf_counter()
    watchers, errors = await _connect(target, f"user:{feed}", activity_id, args.watchers)
    connect_s = time.perf_counter() - started
    try:
        log(f"live: {args.live} activities and {args.live} likes, alternating")
        posts = await _post_all(args, http, target, run, feed, activity_id)
        complete = await _drain(watchers, posts)
        dropped = sum(w.dropped for w in watchers)
    finally:
        await asyncio.gather(*(w.stop() for w in watchers))
    received = [w.received() for w in watchers]
    report: dict[str, Any] = {
        "watchers": args.watchers,
        "connected": len(watchers),
        "connect_s": round(connect_s, 2),
        "pace_ms": list(args.pace_ms),
        "cold": args.cold,
        FEED: _kind_report(args, FEED, posts, watchers, received),
        REACTION: _kind_report(args, REACTION, posts, watchers, received),
    }
    report["reaction_vs_feed_p99"] = _ratio(report, "latency_ms")
    report["reaction_vs_feed_p50"] = _ratio(report, "latency_ms", "p50")
    report["warm_reaction_vs_feed_p99"] = _ratio(report, "warm_latency_ms")
    missing = sum(report[kind]["deliveries_missing"] for kind in KINDS)
    problems = [
        f"{len(errors)} sockets failed to connect" if errors else "",
        f"{dropped} sockets dropped" if dropped else "",
        f"{missing} deliveries missing" if missing or not complete else "",
        f"{len(posts.errors)} posts failed" if posts.errors else "",
        "nothing posted" if not all(posts.posted(kind) for kind in KINDS) else "",
    ]
    if any(problems):
        report["error"] = "; ".join(p for p in problems if p)
        report["first_errors"] = (errors + posts.errors)[:5]
    return report
