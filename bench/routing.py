"""The routing benchmark: four nodes on one Redis, rooms spread across them, events routed to the
nodes that hold their rooms against every event to every node, side by side in one run.

Two clusters of four nodes each share one store and one redis-server (each its own database and
channel): `broadcast` (`redis.routed_rooms` = 0) and `routed` (the default). Each has `--rooms`
feeds `user:<run>-<mode>-<i>` with a raw socket each, that of room i on node i mod 4 (a
subscriber process per node). Then `--events` activities at `--rate`, one to each cluster in
turn (so that both run on the same machine at the same moment), each to a random room through
the node after the one holding it, so that every event crosses the bus. Per mode: each
delivery from just before its POST to its arrival (p50, p99), the POSTs' own latency, and per
node the messages of other nodes it decoded (`tidings_bus_messages_received_total`) and the CPU
seconds it spent meanwhile. One JSON document on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
import uuid

import aiohttp

from tidings.auth import server_token

from . import options, procinfo
from .children import SubscriberProcess, start_subscribers, subscriber_config
from .feeds import API
from .nodes import Shared, node_ready, parse_metrics, redis_node, shared_services
from .options import DEV_API_KEY, DEV_API_SECRET, positive_float, positive_int
from .services import Report, log, report_head, run_report
from .stats import percentiles

NODES = 4
MODES = {"broadcast": "0", "routed": "64"}  # redis.routed_rooms
RECEIVED = "tidings_bus_messages_received_total"
CALL_TIMEOUT = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    load = parser.add_argument_group("load")
    load.add_argument("--rooms", type=positive_int, default=800, help="a socket each")
    load.add_argument("--events", type=positive_int, default=6000, help="half to each mode")
    load.add_argument("--rate", type=positive_float, default=200.0, help="events/s in all")
    options.add_subscriber_arguments(parser, client="raw", procs=NODES, connect_concurrency=50,
                                     connect_timeout=20.0, drain_timeout=5.0)  # fmt: skip
    nodes = parser.add_argument_group("the nodes (always started by the benchmark)")
    nodes.add_argument("--mongodb-url", default="", help="instead of an embedded store")
    nodes.add_argument("--api-key", default=DEV_API_KEY)
    nodes.add_argument("--api-secret", default=DEV_API_SECRET)
    parser.set_defaults(batch_size=500, concurrency=4)


async def _node_counters(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url + "/metrics", timeout=aiohttp.ClientTimeout(CALL_TIMEOUT)) as rsp:
        metrics = parse_metrics(await rsp.text())
    received = {k: v for k, v in metrics.items() if k.startswith(RECEIVED + "{")}
    return {"emit": received.get(f'{RECEIVED}{{kind="emit"}}', 0.0), "all": sum(received.values())}


class Mode:
    """Four nodes of one mode, a socket per room, and what was posted to them."""

    def __init__(self, name: str, run: str) -> None:
        self.name = name
        self.feeds: list[str] = []
        self.nodes: list[tuple[str, asyncio.subprocess.Process]] = []
        self.children: list[SubscriberProcess] = []
        self.posted: dict[str, float] = {}  # activity id -> time just before its POST
        self.posts_ms: list[float] = []
        self.rng = random.Random(f"{run}-{name}")
        self.failed = 0

    async def start(self, args: argparse.Namespace, stack: contextlib.AsyncExitStack, run: str,
                    shared: Shared) -> None:  # fmt: skip
        env = {"TIDINGS_REDIS_ROUTED_ROOMS": MODES[self.name]}
        database = f"bench_routing_{run}_{self.name}"
        for k in range(NODES):
            self.nodes.append(await stack.enter_async_context(redis_node(
                args, f"{self.name}-{k}", shared.store_url, shared.redis_url, database,
                shared.workdir, env)))  # fmt: skip
        self.feeds = [f"user:{run}-{self.name}-{i}" for i in range(args.rooms)]
        stack.push_async_callback(
            lambda: asyncio.gather(*(c.close() for c in self.children), return_exceptions=True)
        )

    async def connect(self, args: argparse.Namespace, http: aiohttp.ClientSession) -> None:
        for url, process in self.nodes:
            await node_ready(http, url, process)
        for k, (url, _) in enumerate(self.nodes):
            config = subscriber_config(args, url, server_token(args.api_secret))
            await start_subscribers(self.feeds[k::NODES], 1, config, self.children)
        self.failed = sum([(await c.receive("ready", 600))["failed"] for c in self.children])

    async def counters(self, http: aiohttp.ClientSession) -> list[dict[str, float]]:
        found = [await _node_counters(http, url) for url, _ in self.nodes]
        for (_, process), counted in zip(self.nodes, found, strict=True):
            counted["cpu"] = procinfo.cpu_seconds(process.pid) or 0.0
        return found

    async def post(self, args: argparse.Namespace, http: aiohttp.ClientSession, n: int) -> None:
        """Activity `n` to a random room, through the node after the one holding it."""
        room = self.rng.randrange(len(self.feeds))
        url = self.nodes[(room + 1) % NODES][0]
        slug, _, user = self.feeds[room].partition(":")
        activity = {"actor": "a", "verb": "post", "object": f"o:{n}", "text": "x" * 100}
        auth = {"Authorization": server_token(args.api_secret), "stream-auth-type": "jwt"}
        at = time.time()
        async with http.post(f"{url}{API}/feed/{slug}/{user}/", json=activity, headers=auth,
                             params={"api_key": args.api_key}) as rsp:  # fmt: skip
            body = await rsp.json(content_type=None)
            if rsp.status != 201:
                raise RuntimeError(f"POST: HTTP {rsp.status}: {str(body)[:200]}")
        self.posts_ms.append((time.time() - at) * 1000)
        self.posted[body["id"]] = at

    async def report(
        self, before: list[dict[str, float]], after: list[dict[str, float]],
    ) -> Report:  # fmt: skip
        latencies = []
        for child in self.children:
            for received in (await child.poll(CALL_TIMEOUT))["received"].values():
                for activity_id, arrival in received.items():
                    if activity_id in self.posted:
                        latencies.append((arrival - self.posted[activity_id]) * 1000)

        def spent(key: str) -> list[float]:
            return [round(a[key] - b[key], 2) for a, b in zip(after, before, strict=True)]

        return {
            "deliveries": {"expected": len(self.posted), "arrived": len(latencies)},
            "delivery_ms": percentiles(latencies),
            "post_ms": percentiles(self.posts_ms),
            "emits_decoded_per_node": spent("emit"),
            "messages_decoded_per_node": spent("all"),
            "cpu_seconds_per_node": spent("cpu"),
            "sockets_failed": self.failed,
        }


async def _run(args: argparse.Namespace) -> Report:
    run = uuid.uuid4().hex[:8]
    keys = ("rooms", "events", "rate", "client")
    report: Report = {**report_head("routing", run), "nodes_per_mode": NODES,
                      "settings": {k: getattr(args, k) for k in keys}}  # fmt: skip
    modes = [Mode(name, run) for name in MODES]
    async with contextlib.AsyncExitStack() as stack:
        shared = await shared_services(args, stack, "routing")
        report["store"] = shared.store
        http = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)))  # fmt: skip
        for mode in modes:
            await mode.start(args, stack, run, shared)
        for mode in modes:
            await mode.connect(args, http)
        log(f"{len(modes)} x {NODES} nodes, {args.rooms} rooms each; posting")
        before = [await mode.counters(http) for mode in modes]
        started, tasks = time.monotonic(), []
        for n in range(args.events):  # in turn to each mode: both see the same machine
            await asyncio.sleep(max(0.0, started + n / args.rate - time.monotonic()))
            tasks.append(asyncio.create_task(modes[n % 2].post(args, http, n)))
        await asyncio.gather(*tasks)
        await asyncio.sleep(args.drain_timeout)
        after = [await mode.counters(http) for mode in modes]
        report["modes"] = {
            mode.name: await mode.report(b, a)
            for mode, b, a in zip(modes, before, after, strict=True)
        }
    b, r = report["modes"]["broadcast"], report["modes"]["routed"]
    report["routed_vs_broadcast"] = {
        "emits_decoded": _ratio(sum(r["emits_decoded_per_node"]),
                                sum(b["emits_decoded_per_node"])),
        "messages_decoded": _ratio(sum(r["messages_decoded_per_node"]),
                                   sum(b["messages_decoded_per_node"])),
        "cpu_seconds": _ratio(sum(r["cpu_seconds_per_node"]), sum(b["cpu_seconds_per_node"])),
        "delivery_p99": _ratio((r["delivery_ms"] or {}).get("p99"),
                               (b["delivery_ms"] or {}).get("p99")),
    }  # fmt: skip
    return report


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def main(args: argparse.Namespace) -> int:
    def failed(report: Report) -> bool:
        return any(
            m["deliveries"]["arrived"] < m["deliveries"]["expected"]
            for m in report["modes"].values()
        )

    return run_report(_run(args), failed)
