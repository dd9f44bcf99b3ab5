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
import contextlib
import ctypes
import ipaddress
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.errors import BulkWriteError, PyMongoError

from server.auth import server_token
from server.store.embedded import embedded_store, free_port

ROOT = Path(__file__).resolve().parent.parent
DEV_API_KEY = "tidings-dev-key"
DEV_API_SECRET = "tidings-dev-secret-change-me-please"
API = "/api/v1.0"
SERVER_START_TIMEOUT = 90.0
HTTP_TIMEOUT = 30.0
REST_FOLLOW_CONCURRENCY = 20
READY_MESSAGE_TIMEOUT_BASE = 120.0  # + 0.25 s per subscriber: connecting 1000 clients is slow
RESULTS_MESSAGE_MARGIN = 60.0
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


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
        type=_counts,
        default=[10, 100, 1000],
        help="comma-separated follower counts (default 10,100,1000)",
    )
    load.add_argument(
        "--activities",
        type=_positive_int,
        default=20,
        help="activities posted per follower count (default 20)",
    )
    load.add_argument(
        "--rate", type=_positive_float, default=5.0, help="activities per second (default 5)"
    )
    load.add_argument(
        "--batch-size",
        type=_positive_int,
        default=500,
        help="fanout.batch_size of a started server, and the batch of the raw insert",
    )
    load.add_argument(
        "--concurrency",
        type=_positive_int,
        default=4,
        help="fanout.concurrency of a started server, and batches in flight in the raw insert",
    )
    load.add_argument(
        "--raw-docs",
        type=_positive_int,
        default=20_000,
        help="documents of the raw bulk-insert measurement (default 20000)",
    )

    clients = parser.add_argument_group("subscribers")
    clients.add_argument(
        "--subscriber-procs",
        type=_positive_int,
        default=1,
        help="processes the subscriber sockets are spread over (default 1)",
    )
    clients.add_argument(
        "--connect-concurrency",
        type=_positive_int,
        default=50,
        help="sockets connecting at once, per subscriber process (default 50)",
    )
    clients.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=20.0,
        help="seconds for one socket to connect and subscribe",
    )
    clients.add_argument(
        "--drain-timeout",
        type=_positive_float,
        default=30.0,
        help="seconds to wait for the last deliveries after the last POST answered",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text}: must be greater than 0")
    return value


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text}: comma-separated integers") from exc
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"{text}: comma-separated integers, each at least 1")
    return counts


def _require_loopback(url: str, what: str) -> None:
    hosts = urlsplit(url).netloc.rpartition("@")[2].split(",")
    for host in hosts:
        name = urlsplit(f"//{host}").hostname or ""
        if name.lower() in LOOPBACK_NAMES:
            continue
        try:
            if ipaddress.ip_address(name).is_loopback:
                continue
        except ValueError:
            pass
        raise SystemExit(f"bench: {what} {url!r} is not a loopback address")


# --------------------------------------------------------------------------- statistics


def percentiles(values: Sequence[float]) -> dict[str, float] | None:
    """p50/p90/p99/max of `values`, rounded to 0.1 (None when there are none)."""
    if not values:
        return None
    if len(values) == 1:
        cuts = [values[0]] * 99
    else:
        cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 1),
        "p90": round(cuts[89], 1),
        "p99": round(cuts[98], 1),
        "max": round(max(values), 1),
    }


def busy_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """The length of the union of the intervals: the time some fanout was in progress."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


# --------------------------------------------------------------------------- services


@dataclass
class Target:
    """The Tidings under test and (when known) its database."""

    url: str
    api_key: str
    token: str
    store: str
    db: Any = None  # AsyncDatabase when a MongoDB URL is known
    server: asyncio.subprocess.Process | None = None
    server_log: Path | None = None

    def check_alive(self) -> None:
        if self.server is not None and self.server.returncode is not None:
            code = self.server.returncode
            raise RuntimeError(f"the Tidings server exited ({code}); {self.tail()}")

    def tail(self, lines: int = 20) -> str:
        if self.server_log is None or not self.server_log.exists():
            return "no server log"
        text = self.server_log.read_text(errors="replace").splitlines()[-lines:]
        return f"server log {self.server_log} ends with:\n" + "\n".join(text)


async def _wait_ready(http: aiohttp.ClientSession, target: Target, within: float) -> None:
    deadline = time.monotonic() + within
    last = "no answer"
    while time.monotonic() < deadline:
        target.check_alive()
        try:
            async with http.get(target.url + "/readyz", timeout=aiohttp.ClientTimeout(2)) as rsp:
                if rsp.status == 200:
                    return
                last = f"/readyz answered {rsp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(0.2)
    raise RuntimeError(f"Tidings at {target.url} is not ready after {within:.0f}s ({last})")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    """Linux: SIGTERM the started server if the benchmark dies, even by kill -9."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.asynccontextmanager
async def _started_server(
    args: argparse.Namespace, store_url: str, database: str, workdir: Path
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process, Path]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update({
        "TIDINGS_MONGODB_URL": store_url,
        "TIDINGS_MONGODB_DATABASE": database,
        "TIDINGS_REDIS_URL": "",
        "TIDINGS_AUTH_API_KEY": args.api_key,
        "TIDINGS_AUTH_API_SECRET": args.api_secret,
        "TIDINGS_SERVER_HOST": "127.0.0.1",
        "TIDINGS_SERVER_PORT": str(port),
        "TIDINGS_SERVER_DATA_DIR": str(workdir / "var"),
        "TIDINGS_FANOUT_BATCH_SIZE": str(args.batch_size),
        "TIDINGS_FANOUT_CONCURRENCY": str(args.concurrency),
    })  # fmt: skip
    log_path = workdir / "server.log"
    with log_path.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", "serve", "--log-level", "WARNING",
            cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )  # fmt: skip
    log(f"started Tidings pid {process.pid} on 127.0.0.1:{port} (log {log_path})")
    try:
        yield f"http://127.0.0.1:{port}", process, log_path
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        log(f"Tidings stopped ({process.returncode})")


@contextlib.asynccontextmanager
async def open_target(
    args: argparse.Namespace, http: aiohttp.ClientSession, run: str
) -> AsyncIterator[Target]:
    token = server_token(args.api_secret)
    async with contextlib.AsyncExitStack() as stack:
        store_url = args.mongodb_url
        store = "mongodb" if store_url else "unknown (no --mongodb-url)"
        database = args.database
        if args.start:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tidings-")))
            if not store_url:
                log("starting the embedded store (SecantusDB)")
                store_url = await stack.enter_async_context(
                    embedded_store(workdir / "store-data", "256M")
                )
                store = "embedded SecantusDB"
            database = f"bench_{run}"
            url, process, log_path = await stack.enter_async_context(
                _started_server(args, store_url, database, workdir)
            )
            target = Target(url, args.api_key, token, store, None, process, log_path)
        else:
            target = Target(args.url.rstrip("/"), args.api_key, token, store)
        try:
            await _wait_ready(http, target, SERVER_START_TIMEOUT if args.start else 5.0)
        except RuntimeError as exc:
            if args.start:
                raise RuntimeError(f"{exc}\n{target.tail()}") from exc
            raise RuntimeError(f"{exc}; start one (make run), or pass --start") from exc
        if store_url:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                store_url, tz_aware=True, serverSelectionTimeoutMS=5000, appname="tidings-bench"
            )
            stack.push_async_callback(client.close)
            target.db = client[database]
        yield target


# --------------------------------------------------------------------------- raw insert


async def raw_insert_rate(db: Any, run: str, docs: int, batch: int, concurrency: int) -> float:
    """Docs/s of unordered bulk inserts of feed-entry-shaped docs into a scratch collection with
    the same unique index: what one fanout batch does, with the same batch size and number of
    batches in flight. The collection is dropped afterwards."""
    scratch = db[f"bench_raw_{run}"]
    await scratch.create_indexes(
        [IndexModel([("feed", ASCENDING), ("activity_id", ASCENDING)], unique=True)]
    )
    try:
        # As the fanout writes them: each "activity" goes to `batch` distinct follower feeds.
        batches = [
            [
                {
                    "feed": f"timeline:raw-{run}-{i % batch}",
                    "activity_id": f"raw-{run}-{i // batch:08d}",
                    "origin": f"user:raw-{run}",
                }
                for i in range(start, min(start + batch, docs))
            ]
            for start in range(0, docs, batch)
        ]
        slots = asyncio.Semaphore(concurrency)

        async def one(chunk: list[dict[str, Any]]) -> None:
            async with slots:
                try:
                    await scratch.insert_many(chunk, ordered=False)
                except BulkWriteError as exc:  # a repeat would be ignored, as in the fanout
                    if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                        raise

        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one(b) for b in batches)), 300)
        seconds = time.perf_counter() - started
        stored = await scratch.count_documents({})
        if stored != docs:
            raise RuntimeError(f"raw insert stored {stored} of {docs} documents")
        return docs / seconds
    finally:
        await scratch.drop()


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
    target_feed: str
    feeds: list[str]
    post_started: dict[str, float] = field(default_factory=dict)  # activity id -> time.time()
    post_seconds: list[float] = field(default_factory=list)
    post_errors: list[str] = field(default_factory=list)


async def _setup_follows(http: aiohttp.ClientSession, target: Target, rnd: Round) -> str:
    now = datetime.now(UTC)
    if target.db is not None:
        docs = [
            {"source": feed, "target": rnd.target_feed, "created_at": now, "updated_at": now}
            for feed in rnd.feeds
        ]
        for start in range(0, len(docs), 1000):
            await target.db["follows"].insert_many(docs[start : start + 1000], ordered=False)
        return "direct insert into follows"
    slots = asyncio.Semaphore(REST_FOLLOW_CONCURRENCY)

    async def follow(feed: str) -> None:
        group, _, user_id = feed.partition(":")
        async with (
            slots,
            http.post(
                f"{target.url}{API}/feed/{group}/{user_id}/follows/",
                params={"api_key": target.api_key},
                json={"target": rnd.target_feed, "activity_copy_limit": 0},
                headers=_headers(target),
            ) as rsp,
        ):
            if rsp.status != 201 and rsp.status != 200:
                raise RuntimeError(f"follow {feed}: HTTP {rsp.status}: {await rsp.text()}")

    await asyncio.gather(*(follow(feed) for feed in rnd.feeds))
    return "REST follows"


def _headers(target: Target) -> dict[str, str]:
    return {"Authorization": target.token, "stream-auth-type": "jwt"}


class SubscriberProcess:
    """bench/subscribers.py as a child process, spoken to in JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, config: dict[str, Any]) -> SubscriberProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.subscribers",
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=256 * 1024 * 1024,
        )  # fmt: skip
        child = cls(process)
        await child.send(config)
        return child

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    async def receive(self, event: str, within: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), within)
        if not line:
            raise RuntimeError(f"the subscriber process exited ({await self.process.wait()})")
        message: dict[str, Any] = json.loads(line)
        if message.get("event") != event:
            raise RuntimeError(f"expected {event!r} from the subscribers, got {line[:200]!r}")
        return message

    async def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 45)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def _post_all(
    http: aiohttp.ClientSession, target: Target, rnd: Round, count: int, rate: float, run: str
) -> None:
    """POST `count` activities to the followed feed, one every 1/rate s, each on its own task
    so that a slow answer does not delay the next post."""
    group, _, user_id = rnd.target_feed.partition(":")
    url = f"{target.url}{API}/feed/{group}/{user_id}/"
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)

    async def post(index: int) -> None:
        body = {
            "actor": rnd.target_feed,
            "verb": "post",
            "object": f"bench:{run}:{rnd.followers}:{index}",
            "foreign_id": f"bench:{run}:{rnd.followers}:{index}",
        }
        started = time.time()
        clock = time.perf_counter()
        try:
            async with http.post(
                url,
                params={"api_key": target.api_key},
                json=body,
                headers=_headers(target),
                timeout=timeout,
            ) as rsp:
                answer = await rsp.json(content_type=None)
                if rsp.status != 201:
                    rnd.post_errors.append(f"HTTP {rsp.status}: {json.dumps(answer)[:300]}")
                    return
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            rnd.post_errors.append(f"{type(exc).__name__}: {exc}")
            return
        rnd.post_seconds.append(time.perf_counter() - clock)
        rnd.post_started[str(answer["id"])] = started

    loop = asyncio.get_running_loop()
    first = loop.time()
    tasks = []
    for index in range(count):
        await asyncio.sleep(max(0.0, first + index / rate - loop.time()))
        tasks.append(asyncio.create_task(post(index)))
    await asyncio.wait_for(asyncio.gather(*tasks), HTTP_TIMEOUT + 5)


async def run_round(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str, n: int
) -> dict[str, Any]:
    target_feed = f"user:{run}-{n}"
    rnd = Round(n, target_feed, [f"timeline:{run}-{n}-{i}" for i in range(n)])
    result: dict[str, Any] = {"followers": n, "activities": args.activities}
    started = time.monotonic()
    how = await _setup_follows(http, target, rnd)
    log(f"[{n}] {n} follows of {target_feed} ({how}) in {time.monotonic() - started:.1f}s")

    procs = min(args.subscriber_procs, n)
    children: list[SubscriberProcess] = []
    try:
        for k in range(procs):
            children.append(
                await SubscriberProcess.start(
                    {
                        "url": target.url,
                        "token": target.token,
                        "feeds": rnd.feeds[k::procs],
                        "concurrency": args.connect_concurrency,
                        "connect_timeout": args.connect_timeout,
                    }
                )
            )
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
        await _post_all(http, target, rnd, args.activities, args.rate, run)
        ids = list(rnd.post_started)
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
    ids = set(rnd.post_started)
    latencies: list[float] = []
    last_delivery: dict[str, float] = {}
    unexpected = 0
    for feed in rnd.feeds:
        for activity_id, at in received.get(feed, {}).items():
            if activity_id not in ids:
                unexpected += 1
                continue
            latencies.append((at - rnd.post_started[activity_id]) * 1000)
            last_delivery[activity_id] = max(last_delivery.get(activity_id, at), at)
    expected = rnd.followers * len(ids)
    busy = busy_seconds([(rnd.post_started[a], t) for a, t in last_delivery.items()])
    delivered = len(latencies)
    result: dict[str, Any] = {
        "posted": len(ids),
        "deliveries_expected": expected,
        "deliveries_received": delivered,
        "deliveries_missing": expected - delivered,
        "latency_ms": percentiles(latencies),
        # Per activity: from just before its POST until its last follower got it.
        "fanout_complete_ms": percentiles(
            [(t - rnd.post_started[a]) * 1000 for a, t in last_delivery.items()]
        ),
        "post_answer_ms": percentiles([s * 1000 for s in rnd.post_seconds]),
        "fanout_entries_per_s": round(delivered / busy, 1) if busy > 0 else None,
    }
    problems = {
        "post_errors": rnd.post_errors[:10],
        "unexpected_deliveries": unexpected,
        "duplicate_deliveries": sum(o["duplicates"] for o in outcomes),
        "sockets_dropped": sum(o["dropped"] for o in outcomes),
        "complete_before_timeout": all(o["complete"] for o in outcomes),
    }
    result.update({k: v for k, v in problems.items() if v or k == "complete_before_timeout"})
    if target.db is not None:
        result["entries_in_store"] = await target.db["feed_entries"].count_documents(
            {"activity_id": {"$in": sorted(ids)}, "origin": rnd.target_feed}
        )
    return result


# --------------------------------------------------------------------------- main


async def _store_version(db: Any) -> str | None:
    try:
        info = await db.client.admin.command("buildInfo")
    except PyMongoError:
        return None
    return str(info.get("version")) if info.get("version") is not None else None


async def roundtrip(args: argparse.Namespace) -> dict[str, Any]:
    if not args.start:
        _require_loopback(args.url, "--url")
    if args.mongodb_url:
        _require_loopback(args.mongodb_url, "--mongodb-url")
    run = uuid.uuid4().hex[:8]
    report: dict[str, Any] = {
        "benchmark": "roundtrip",
        "run": run,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    connector = aiohttp.TCPConnector(limit=0)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        open_target(args, http, run) as target,
    ):
        report["store"] = target.store
        if target.db is not None:
            report["store_version"] = await _store_version(target.db)
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
