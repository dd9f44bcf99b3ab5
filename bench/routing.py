"""The routing benchmark: four nodes on one Redis, rooms spread across them, events routed to the
nodes that hold their rooms against every event to every node, in one run.

For each mode (`redis.routed_rooms` 0: broadcast, then the default: routed), on fresh nodes and
feeds: `--rooms` feeds `user:<run>-<mode>-<i>`, each with `--sockets-per-room` raw sockets, all
of room i on node i mod 4 (a subscriber process per node); then `--events` activities at
`--rate`, each posted to a random room through the next node (never the one holding it, so
every event crosses the bus). Measured per mode: each delivery from just before its POST to
its arrival (p50, p99), the POSTs' own latency, and per node the messages of other nodes it
decoded (`tidings_bus_messages_received_total`) and the CPU seconds it spent, during the
events. One JSON document on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from harness.store import embedded_store
from tidings.auth import server_token
from tidings.runtime.local_redis import local_redis

from . import options, procinfo
from .children import SubscriberProcess, start_subscribers, subscriber_config
from .feeds import API
from .nodes import node_ready, parse_metrics, redis_node
from .options import DEV_API_KEY, DEV_API_SECRET, positive_float, positive_int
from .services import EMBEDDED_CACHE_SIZE, Report, log, report_head, run_report
from .stats import percentiles

NODES = 4
MODES = {"broadcast": "0", "routed": "64"}  # redis.routed_rooms
RECEIVED = "tidings_bus_messages_received_total"
CALL_TIMEOUT = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    load = parser.add_argument_group("load")
    load.add_argument("--rooms", type=positive_int, default=400)
    load.add_argument("--sockets-per-room", type=positive_int, default=2)
    load.add_argument("--events", type=positive_int, default=3000)
    load.add_argument("--rate", type=positive_float, default=150.0, help="events/s")
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


async def _mode(
    args: argparse.Namespace, mode: str, run: str, store_url: str, redis_url: str,
    workdir: Path,
) -> Report:  # fmt: skip
    """One mode on four fresh nodes: what each decoded and spent, and the deliveries' times."""
    auth = {"Authorization": server_token(args.api_secret), "stream-auth-type": "jwt"}
    env = {"TIDINGS_REDIS_ROUTED_ROOMS": MODES[mode]}
    rng = random.Random(f"{run}-{mode}")
    async with contextlib.AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(redis_node(
            args, f"{mode}-{k}", store_url, redis_url, f"bench_routing_{run}_{mode}", workdir,
            env)) for k in range(NODES)]  # fmt: skip
        http = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)))  # fmt: skip
        for url, process in nodes:
            await node_ready(http, url, process)
        feeds = [f"user:{run}-{mode}-{i}" for i in range(args.rooms)]
        children: list[SubscriberProcess] = []
        stack.push_async_callback(
            lambda: asyncio.gather(*(c.close() for c in children), return_exceptions=True)
        )
        for k, (url, _) in enumerate(nodes):
            mine = [f for i, f in enumerate(feeds) if i % NODES == k] * args.sockets_per_room
            config = subscriber_config(args, url, server_token(args.api_secret))
            await start_subscribers(mine, 1, config, children)
        failed = sum([(await c.receive("ready", 600))["failed"] for c in children])
        log(f"{mode}: {NODES} nodes, {len(feeds)} rooms, {failed} sockets failed; posting")
        before = [await _node_counters(http, url) for url, _ in nodes]
        cpu0 = [procinfo.cpu_seconds(p.pid) or 0.0 for _, p in nodes]
        posted: dict[str, float] = {}
        posts_ms: list[float] = []

        async def post(n: int) -> None:
            room = rng.randrange(len(feeds))
            url = nodes[(room + 1) % NODES][0]
            slug, _, user = feeds[room].partition(":")
            activity = {"actor": "a", "verb": "post", "object": f"o:{n}", "text": "x" * 100}
            at = time.time()
            async with http.post(f"{url}{API}/feed/{slug}/{user}/", json=activity, headers=auth,
                                 params={"api_key": args.api_key}) as rsp:  # fmt: skip
                body = await rsp.json(content_type=None)
                if rsp.status != 201:
                    raise RuntimeError(f"POST: HTTP {rsp.status}: {str(body)[:200]}")
            posts_ms.append((time.time() - at) * 1000)
            posted[body["id"]] = at

        started, tasks = time.monotonic(), []
        for n in range(args.events):
            await asyncio.sleep(max(0.0, started + n / args.rate - time.monotonic()))
            tasks.append(asyncio.create_task(post(n)))
        await asyncio.gather(*tasks)
        await asyncio.sleep(args.drain_timeout)
        cpu1 = [procinfo.cpu_seconds(p.pid) or 0.0 for _, p in nodes]
        after = [await _node_counters(http, url) for url, _ in nodes]
        latencies, arrived = [], 0
        for child in children:
            for received in (await child.poll(CALL_TIMEOUT))["received"].values():
                for activity_id, arrival in received.items():
                    if activity_id in posted:
                        arrived += 1
                        latencies.append((arrival - posted[activity_id]) * 1000)
    return {
        "deliveries": {"expected": args.events * args.sockets_per_room, "arrived": arrived},
        "delivery_ms": percentiles(latencies),
        "post_ms": percentiles(posts_ms),
        "emits_decoded_per_node": [round(a["emit"] - b["emit"]) for a, b in zip(after, before,
                                                                                strict=True)],
        "messages_decoded_per_node": [round(a["all"] - b["all"]) for a, b in zip(after, before,
                                                                                 strict=True)],
        "cpu_seconds_per_node": [round(b - a, 2) for a, b in zip(cpu0, cpu1, strict=True)],
        "sockets_failed": failed,
    }  # fmt: skip


async def _run(args: argparse.Namespace) -> Report:
    run = uuid.uuid4().hex[:8]
    keys = ("rooms", "sockets_per_room", "events", "rate", "client")
    report: Report = {**report_head("routing", run), "nodes": NODES,
                      "settings": {k: getattr(args, k) for k in keys}}  # fmt: skip
    async with contextlib.AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tidings-routing-")))
        store_url = args.mongodb_url or await stack.enter_async_context(
            embedded_store(workdir / "store", EMBEDDED_CACHE_SIZE))  # fmt: skip
        report["store"] = "mongodb" if args.mongodb_url else "embedded SecantusDB"
        redis_url = await stack.enter_async_context(local_redis(workdir / "redis"))
        modes: dict[str, Any] = {}
        for mode in MODES:
            modes[mode] = await _mode(args, mode, run, store_url, redis_url, workdir)
            log(f"{mode}: {modes[mode]}")
    report["modes"] = modes
    b, r = modes["broadcast"], modes["routed"]
    report["routed_vs_broadcast"] = {
        "emits_decoded": _ratio(sum(r["emits_decoded_per_node"]),
                                sum(b["emits_decoded_per_node"])),
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
