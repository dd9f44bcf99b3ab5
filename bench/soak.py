"""The soak: two nodes under a steady mixed load for `--minutes`, watched for leaks and drift.

Two `python -m tidings serve` nodes (rate limits off) on one store and one redis-server;
`--sockets` raw sockets (bench/subscribers.py), half on each node, each on its own timeline
following one of `--authors` author feeds; `--presence-members` raid-room members
(bench/raid_members.py) on both nodes. Then `--rate` operations a second, drawn by the weights of
`--mix`: add (timed to delivery at its followers' sockets), read, follow (a spare timeline
follows an author, copying 10 activities, and unfollows half a cycle later), reaction (a like),
presence (asked over a member's socket), reconnect (a member moves to the other node).

stdout is JSON lines: one before the load and one every `--sample-seconds` (per node RSS, FDs,
asyncio tasks, loop lag, sockets; the p99s; operations and errors), then the summary: growth
after the warm-up, the p99s' trend, the errors and the pass criteria (bench/README.md says what
each field means). `--out DIR` also writes DIR/soak.json and the plot DIR/soak.png.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import random
import re
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from tidings.auth import feed_token, server_token
from tidings.domain.feeds import FeedId

from . import options, wsclient
from .children import SubscriberProcess, start_subscribers, subscriber_config
from .feeds import API
from .nodes import node_ready, node_state, redis_node, shared_services
from .options import DEV_API_KEY, DEV_API_SECRET, positive_float, positive_int
from .raid_members import RaidMember
from .services import Report, log, report_head, run_report
from .stats import percentiles, soak_summary

MIX = {"add": 3.0, "read": 3.0, "follow": 1.0, "reaction": 1.5, "presence": 1.0, "reconnect": 0.5}
TIMED = ("add_to_delivered", "read", "follow")  # the kinds with a p99
CALL_TIMEOUT = 30.0
POLL_SECONDS = 5.0  # receipts fetched from the subscriber processes
MAX_IN_FLIGHT = 500  # operations under way: past it the next one is skipped, counted an error
RECENT, FOLLOW_COPY, FOLLOW_MANY_BATCH = 100, 10, 500
KEPT = 20_000  # latencies per kind the run's p99 is read from: a uniform sample of them all
SERVER_ERROR = re.compile(r" (ERROR|CRITICAL) |Traceback")


def mix(text: str) -> dict[str, float]:
    weights = dict.fromkeys(MIX, 0.0)
    for part in filter(None, text.split(",")):
        kind, _, weight = part.partition("=")
        if kind.strip() not in MIX:
            raise argparse.ArgumentTypeError(f"{kind}: one of {', '.join(MIX)}")
        weights[kind.strip()] = float(weight)
    if sum(weights.values()) <= 0 or min(weights.values()) < 0:
        raise argparse.ArgumentTypeError(f"{text}: weights >= 0, some above 0")
    return weights


def setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not name.startswith("TIDINGS_") or not equals:
        raise argparse.ArgumentTypeError(f"{text}: TIDINGS_<SECTION>_<KEY>=value")
    return name, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    load = parser.add_argument_group("load")
    load.add_argument("--minutes", type=positive_float, default=60.0)
    load.add_argument("--warmup-minutes", type=float,
                      help="not in the summary (default 5; a third of a short run)")  # fmt: skip
    load.add_argument("--sockets", type=positive_int, default=2000)
    load.add_argument("--authors", type=positive_int, default=50, help="author feeds")
    load.add_argument("--rate", type=positive_float, default=20.0, help="operations/s in all")
    load.add_argument("--mix", type=mix, default=MIX,
                      help="weights, e.g. add=3,read=3,follow=1,reaction=1.5,presence=1,"
                      "reconnect=0.5 (the default; a kind left out is not run)")  # fmt: skip
    load.add_argument("--rooms", type=positive_int, default=4, help="raid rooms")
    load.add_argument("--presence-members", type=positive_int, default=40)
    load.add_argument("--spare-feeds", type=positive_int, default=200,
                      help="timelines that follow and unfollow")  # fmt: skip
    load.add_argument("--sample-seconds", type=positive_float, default=60.0)
    options.add_subscriber_arguments(parser, client="raw", procs=2, connect_concurrency=50,
                             connect_timeout=20.0, drain_timeout=10.0)  # fmt: skip
    nodes = parser.add_argument_group("the nodes (always started by the benchmark)")
    nodes.add_argument("--mongodb-url", default="", help="instead of an embedded store")
    nodes.add_argument("--api-key", default=DEV_API_KEY)
    nodes.add_argument("--api-secret", default=DEV_API_SECRET)
    nodes.add_argument("--out", type=Path, help="a folder: soak.json and soak.png there")
    nodes.add_argument("--set", dest="server_env", type=setting, action="append",
                       metavar="TIDINGS_…=VALUE",
                       help="a setting of both nodes, e.g. TIDINGS_CACHE_ACTIVITIES_MB=0 (again "
                       "for more)")  # fmt: skip
    parser.set_defaults(batch_size=500, concurrency=4)  # fmt: skip


class Load:
    """The operations, their timings and errors, and the deliveries matched to the adds."""

    def __init__(self, args: argparse.Namespace, run: str, urls: dict[str, str],
                 http: aiohttp.ClientSession) -> None:  # fmt: skip
        self.args, self.run, self.urls, self.http = args, run, urls, http
        self.rng = random.Random(run)
        self.auth = {"Authorization": server_token(args.api_secret), "stream-auth-type": "jwt"}
        self.posted: dict[str, tuple[float, int]] = {}  # id -> (time before POST, followers)
        self.delivered: collections.Counter[str] = collections.Counter()
        self.early: dict[str, list[float]] = {}  # receipts that came before their POST's answer
        self.recent: collections.deque[str] = collections.deque(maxlen=RECENT)
        self.span: dict[str, list[float]] = {k: [] for k in TIMED}
        self.whole: dict[str, list[float]] = {k: [] for k in TIMED}  # at most KEPT each
        self.timings: collections.Counter[str] = collections.Counter()
        self.sampling = random.Random(run)
        self.ops: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.first_errors: list[str] = []
        self.members: list[RaidMember] = []
        self.busy: set[int] = set()  # members reconnecting
        self.calls = 0  # REST calls: A and B in turn
        self.followers = collections.Counter(i % args.authors for i in range(args.sockets))

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.first_errors) < 20:
            self.first_errors.append(f"{kind}: {what}"[:300])

    async def call(self, method: str, path: str, **kw: Any) -> tuple[Any, float]:
        url = self.urls["AB"[self.calls % 2]] + API + path
        self.calls += 1
        params = {"api_key": self.args.api_key, **kw.pop("params", {})}
        started = time.perf_counter()
        timeout = aiohttp.ClientTimeout(CALL_TIMEOUT)
        async with self.http.request(method, url, params=params, headers=self.auth,
                                     timeout=timeout, **kw) as rsp:  # fmt: skip
            body = await rsp.json(content_type=None)
            if rsp.status not in (200, 201):
                raise RuntimeError(f"{method} {path}: HTTP {rsp.status}: {str(body)[:200]}")
        return body, (time.perf_counter() - started) * 1000  # fmt: skip

    def member(self, j: int, node: str) -> RaidMember:
        room, user = f"{self.run}-{j % self.args.rooms}", f"m{j}"
        host, port = wsclient.address(self.urls[node])
        token = feed_token(FeedId("raid", room), self.args.api_secret, action="*", user_id=user)
        return RaidMember(host, port, token, f"raid:{room}", user, node, {"slot": j})

    # ------------------------------------------------------------------ the operations

    async def add(self) -> None:
        author = self.rng.randrange(self.args.authors)
        activity = {"actor": f"a{author}", "verb": "post", "object": f"o:{self.ops['add']}",
                    "text": "x" * 100}  # fmt: skip
        at = time.time()
        body, _ = await self.call("POST", f"/feed/user/{self.run}-{author}/", json=activity)
        self.posted[body["id"]] = (at, self.followers[author])
        self.recent.append(body["id"])
        for arrival in self.early.pop(body["id"], []):
            self.receipt(body["id"], arrival)

    async def read(self) -> None:
        feed = f"/feed/timeline/{self.run}-{self.rng.randrange(self.args.sockets)}/"
        _, ms = await self.call("GET", feed, params={"limit": "25"})
        self.timed("read", ms)

    async def follow(self) -> None:
        """Turn t: spare t follows its author (timed), then the spare of half a cycle of
        turns earlier (its follow long answered) unfollows: each spare in and out in turn."""
        n, spare = self.ops["follow"] - 1, self.args.spare_feeds
        turn = n // 2
        k = (turn - spare // 2) % spare if n % 2 else turn % spare
        path = f"/feed/timeline/{self.run}-s{k}/follows/"
        target = f"user:{self.run}-{k % self.args.authors}"
        if not n % 2:
            body = {"target": target, "activity_copy_limit": FOLLOW_COPY}
            self.timed("follow", (await self.call("POST", path, json=body))[1])
        elif turn >= spare // 2:
            await self.call("DELETE", f"{path}{target}/", params={"keep_history": "false"})

    async def reaction(self) -> None:
        if self.recent:
            like = {"kind": "like", "activity_id": self.rng.choice(self.recent),
                    "user_id": f"u{self.ops['reaction']}"}  # fmt: skip
            await self.call("POST", "/reaction/", json=like)

    def idle_member(self) -> int:
        idle = [j for j, m in enumerate(self.members) if m.connected and j not in self.busy]
        if not idle:
            raise RuntimeError("no member connected")
        return self.rng.choice(idle)

    async def presence(self) -> None:
        member = self.members[self.idle_member()]
        ask = {"feed": member.feed, "limit": 100}
        ack, _ = await member.call("presence", ask, CALL_TIMEOUT)
        if not (isinstance(ack, dict) and "count" in ack):
            raise RuntimeError(f"presence: {str(ack)[:200]}")

    async def reconnect(self) -> None:
        j = self.idle_member()
        self.busy.add(j)
        try:
            old = self.members[j]
            await old.stop(1.0)
            self.members[j] = self.member(j, "B" if old.node == "A" else "A")
            await self.members[j].start(CALL_TIMEOUT)
        finally:
            self.busy.discard(j)

    async def one(self, kind: str) -> None:
        self.ops[kind] += 1
        try:
            await getattr(self, kind)()
        except (RuntimeError, aiohttp.ClientError, OSError, TimeoutError, ValueError,
                KeyError) as exc:  # fmt: skip
            self.error(kind, f"{type(exc).__name__}: {exc}")

    async def drive(self, seconds: float) -> None:
        """`--rate` operations a second for `seconds`, each on its own task."""
        kinds, weights = list(self.args.mix), list(self.args.mix.values())
        tasks: set[asyncio.Task[None]] = set()
        started, n = time.monotonic(), 0
        while (due := started + n / self.args.rate) < started + seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            n += 1
            if len(tasks) >= MAX_IN_FLIGHT:
                self.error("behind", f"{len(tasks)} operations under way")
                continue
            task = asyncio.create_task(self.one(self.rng.choices(kinds, weights)[0]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)

    # ------------------------------------------------------------------ what is measured

    def timed(self, kind: str, ms: float) -> None:
        """One more latency: in the span's, and maybe in the run's sample (a reservoir: each
        latency of the run is in it with the same chance, and its p99 costs no pause)."""
        self.span[kind].append(ms)
        self.timings[kind] += 1
        whole, seen = self.whole[kind], self.timings[kind]
        if len(whole) < KEPT:
            whole.append(ms)
        elif (slot := self.sampling.randrange(seen)) < KEPT:
            whole[slot] = ms

    def receipt(self, activity_id: str, arrival: float) -> None:
        posted = self.posted.get(activity_id)
        if posted is None:
            self.early.setdefault(activity_id, []).append(arrival)
            return
        self.delivered[activity_id] += 1
        self.timed("add_to_delivered", (arrival - posted[0]) * 1000)

    async def poll(self, children: list[SubscriberProcess]) -> dict[str, int]:
        """The receipts since the last poll, matched; the sockets' state."""
        state = {"connected": 0, "dropped": 0, "duplicates": 0}
        for child in children:
            answer = await child.poll(CALL_TIMEOUT)
            for key in state:
                state[key] += int(answer[key])
            for received in answer["received"].values():
                for activity_id, arrival in received.items():
                    self.receipt(activity_id, arrival)
        return state

    def deliveries(self) -> dict[str, int]:
        expected = sum(n for _, n in self.posted.values())
        extra = sum(max(0, self.delivered[i] - n) for i, (_, n) in self.posted.items())
        got = sum(self.delivered.values()) - extra
        return {"expected": expected, "delivered": got, "missing": expected - got,
                "duplicates": extra, "unmatched": sum(map(len, self.early.values()))}  # fmt: skip

    async def sample(self, nodes: dict[str, tuple[str, Any]], elapsed: float,
                     sockets: dict[str, int]) -> Report:  # fmt: skip
        """One line: each node's resources, the p99s, the operations and errors."""
        per_node: Report = {}
        for name, (url, process) in nodes.items():
            if process.returncode is not None:
                raise RuntimeError(f"node {name} exited ({process.returncode})")
            per_node[name] = await node_state(self.http, url, process.pid)
            if per_node[name]["tasks"] is None:
                self.error("metrics", f"node {name}: no /metrics answer")
        line = {
            "minute": round(elapsed / 60, 2), "nodes": per_node,
            "p99_ms": {k: _p99(v) for k, v in self.span.items()},
            "run_p99_ms": {k: _p99(v) for k, v in self.whole.items()},
            "ops": dict(self.ops), "errors": sum(self.errors.values()), "sockets": sockets,
        }  # fmt: skip
        self.span = {k: [] for k in TIMED}
        for m in self.members:
            m.events.clear()  # presence events: not looked at, not kept
        return line


def _p99(values: list[float]) -> float | None:
    cuts = percentiles(values)
    return None if cuts is None else cuts["p99"]


# --------------------------------------------------------------------------- the run


async def _run(args: argparse.Namespace) -> Report:
    run = uuid.uuid4().hex[:8]
    warmup = args.warmup_minutes if args.warmup_minutes is not None else min(5, args.minutes / 3)
    keys = ("minutes", "sockets", "authors", "rate", "mix", "rooms", "presence_members", "client")
    settings = {k: getattr(args, k) for k in keys} | {
        "warmup_minutes": warmup,
        "set": dict(args.server_env or []),
    }
    report: Report = {**report_head("soak", run), "settings": settings}
    children: list[SubscriberProcess] = []
    samples: list[Report] = []
    async with contextlib.AsyncExitStack() as stack:
        shared = await shared_services(args, stack, "soak")
        workdir, store_url, redis_url = shared.workdir, shared.store_url, shared.redis_url
        report["store"] = shared.store
        nodes = {name: await stack.enter_async_context(
            redis_node(args, name, store_url, redis_url, f"bench_soak_{run}", workdir))
            for name in "AB"}  # fmt: skip
        urls = {name: url for name, (url, _) in nodes.items()}
        http = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)))  # fmt: skip
        for url, process in nodes.values():
            await node_ready(http, url, process)
        load = Load(args, run, urls, http)
        feeds = [f"timeline:{run}-{i}" for i in range(args.sockets)]
        follows = [{"source": f, "target": f"user:{run}-{i % args.authors}"}
                   for i, f in enumerate(feeds)]  # fmt: skip
        for at in range(0, len(feeds), FOLLOW_MANY_BATCH):  # authors still empty: no copy
            await load.call("POST", "/follow_many/", json=follows[at : at + FOLLOW_MANY_BATCH])
        stack.push_async_callback(
            lambda: asyncio.gather(*(c.close() for c in children), return_exceptions=True)
        )
        for k, url in enumerate(urls.values()):
            config = subscriber_config(args, url, server_token(args.api_secret))
            procs = max(1, args.subscriber_procs // 2)  # each process on one node
            await start_subscribers(feeds[k::2], procs, config, children)
        for child in children:
            ready = await child.receive("ready", 600)
            if ready["failed"]:
                load.error("connect", f"{ready['failed']} sockets: {ready['errors'][:2]}")
        load.members = [load.member(j, "AB"[j % 2]) for j in range(args.presence_members)]
        await asyncio.gather(*(m.start(CALL_TIMEOUT) for m in load.members))
        stack.push_async_callback(lambda: asyncio.gather(
            *(m.stop(1.0) for m in load.members), return_exceptions=True))  # fmt: skip
        log(f"{args.sockets} sockets and {args.presence_members} members up: soaking for "
            f"{args.minutes:g} min at {args.rate:g} ops/s")  # fmt: skip
        started = time.monotonic()
        spans = int(args.minutes * 60 / args.sample_seconds + 1e-6)
        due = [started + k * args.sample_seconds for k in range(spans + 1)]  # 0: no load yet
        driver = asyncio.create_task(load.drive(args.minutes * 60))
        while due:  # the receipts every POLL_SECONDS, a sample when one is due
            await asyncio.sleep(min(POLL_SECONDS, max(0.0, due[0] - time.monotonic())))
            sockets = await load.poll(children)
            if time.monotonic() >= due[0]:
                due.pop(0)
                samples.append(await load.sample(nodes, time.monotonic() - started, sockets))
                print(json.dumps(samples[-1]), flush=True)
        await driver
        await asyncio.sleep(args.drain_timeout)  # the last deliveries
        sockets = await load.poll(children)
        report["deliveries"] = load.deliveries()
        report["sockets_at_end"] = sockets
        logs = {n: (workdir / f"node-{n}.log").read_text(errors="replace") for n in nodes}
        lines = [f"node {n}: {line}" for n, text in logs.items()
                 for line in text.splitlines() if SERVER_ERROR.search(line)]  # fmt: skip
        logged = len(lines)
        load.first_errors.extend(lines[:10])  # the log is gone with the run's folder
    delivered = report["deliveries"]
    errors = {**load.errors, "missing_deliveries": delivered["missing"], "duplicate_deliveries":
              delivered["duplicates"], "sockets_dropped": sockets["dropped"],
              "server_log_errors": logged}  # fmt: skip
    verdict = soak_summary(samples, warmup, sum(errors.values()))
    report |= {"ops": dict(load.ops), "errors": errors, "first_errors": load.first_errors,
               "run_p99_ms": {k: _p99(v) for k, v in load.whole.items()}, **verdict,
               "samples": samples}  # fmt: skip
    if args.out:
        from .plots import soak_trend  # matplotlib: the `bench` extra

        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
        soak_trend(report, args.out / "soak.png")
    del report["samples"]  # on stdout already, a line each
    return report


def main(args: argparse.Namespace) -> int:
    # the summary on one line, as the samples: stdout is JSON lines
    return run_report(_run(args), lambda report: not report["pass"]["all"], indent=None)
