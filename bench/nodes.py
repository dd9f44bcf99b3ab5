"""The nodes of `python -m bench cluster`: `python -m tidings serve --workers W` started on a free
port, its worker processes found, every one of them waited for, and what each one reports.

With W > 1 the process started is the supervisor (server/cluster.py) and the workers are its
children; with W = 1 it is the single server process itself, which is then the one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from harness.common import free_port
from harness.store import embedded_store
from tidings.runtime.local_redis import local_redis

from . import procinfo
from .services import EMBEDDED_CACHE_SIZE, log, server_env, spawn_server, stop_process

START_TIMEOUT = 120.0
# The supervisor stops its workers within 2 * server.shutdown_timeout + 10 s, then Redis.
STOP_TIMEOUT = 60.0
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=5)
READY_STREAK = 8  # per worker: answers in a row over fresh connections that say Redis is up
EMIT_SUM = 'tidings_insert_to_emit_seconds_sum{path="fanout"}'
EMIT_COUNT = 'tidings_insert_to_emit_seconds_count{path="fanout"}'
ENTRIES = 'tidings_fanout_entries_total{kind="add"}'
SOCKETS = "tidings_connected_sockets"
ROLES = [  # what the processes of a run are, by a part of their command line
    ("secantus", "store"),
    ("redis-server", "redis"),
    ("bench.subscribers", "subscribers"),
    ("tidings serve", "other workers"),
]
Metrics = dict[str, float]
LOG_PROBLEM = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback|Exception")


@dataclass
class Nodes:
    workers: int
    url: str
    port: int
    process: asyncio.subprocess.Process  # the supervisor, or the single server
    log_path: Path
    redis: str  # "none", "started by the supervisor" or "started by the benchmark"
    worker_pids: list[int] = field(default_factory=list)

    def find_workers(self) -> list[int]:
        if self.workers == 1:
            return [self.process.pid]
        kids = procinfo.children(self.process.pid)
        return [p for p in kids if "tidings serve" in procinfo.cmdline(p)]

    def log_problems(self, limit: int = 20) -> dict[str, object]:
        """The server log's warnings, errors and tracebacks (the supervisor's and every
        worker's: they share the file)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        problems = [line for line in lines if LOG_PROBLEM.search(line)]
        return {
            "path": str(self.log_path),
            "problem_lines": len(problems),
            "first": problems[:limit],
        }


@contextlib.asynccontextmanager
async def started_nodes(
    args: argparse.Namespace,
    workers: int,
    store_url: str,
    redis_url: str,
    database: str,
    workdir: Path,
) -> AsyncIterator[Nodes]:
    """`python -m tidings serve --workers W` with this store (and Redis, when given: else the
    supervisor starts one for W > 1, and a single node runs without); stopped at the end."""
    port = free_port()
    env = server_env(args, store_url, database)
    env["TIDINGS_REDIS_URL"] = redis_url
    log_path = workdir / "server.log"
    argv = ["serve", "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(workdir / "var"), "--log-level", "INFO"]  # fmt: skip
    process = await spawn_server(argv, env, log_path)
    if redis_url:
        redis = "started by the benchmark"
    else:
        redis = "started by the supervisor" if workers > 1 else "none (a single node)"
    nodes = Nodes(workers, f"http://127.0.0.1:{port}", port, process, log_path, redis)
    try:
        yield nodes
    finally:
        await stop_process(process, STOP_TIMEOUT)


@dataclass(frozen=True)
class Shared:
    """What the nodes of a many-node benchmark share: a working folder, the store and Redis."""

    workdir: Path
    store_url: str
    redis_url: str
    store: str  # as the report names it


async def shared_services(
    args: argparse.Namespace, stack: contextlib.AsyncExitStack, name: str
) -> Shared:
    """A temporary folder `tidings-<name>-…`, the store of `--mongodb-url` or an embedded one
    started there, and a redis-server: undone by `stack`."""
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"tidings-{name}-")))
    store_url = args.mongodb_url or await stack.enter_async_context(
        embedded_store(workdir / "store", EMBEDDED_CACHE_SIZE)
    )
    redis_url = await stack.enter_async_context(local_redis(workdir / "redis"))
    store = "mongodb" if args.mongodb_url else "embedded SecantusDB"
    return Shared(workdir, store_url, redis_url, store)


@contextlib.asynccontextmanager
async def redis_node(
    args: argparse.Namespace, name: str, store_url: str, redis_url: str, database: str,
    workdir: Path, env: dict[str, str] | None = None,
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:  # fmt: skip
    """One `python -m tidings serve` node of several on one store and one Redis (`name` tells
    their logs and data dirs apart; `env`: the benchmark's own settings): its URL and process,
    stopped at the end."""
    port = free_port()
    node_env = server_env(args, store_url, database)
    node_env.update({
        "TIDINGS_REDIS_URL": redis_url,
        "TIDINGS_REDIS_CHANNEL": f"bench-{database}",
        "TIDINGS_SERVER_DATA_DIR": str(workdir / f"var-{name}"),
        **(env or {}),
    })  # fmt: skip
    argv = ["serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"]
    process = await spawn_server(argv, node_env, workdir / f"node-{name}.log")
    log(f"node {name}: pid {process.pid} on 127.0.0.1:{port}")
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        await stop_process(process, 30.0)


async def node_ready(
    http: aiohttp.ClientSession, url: str, process: asyncio.subprocess.Process
) -> None:
    """Until /readyz says the store is up and presence spans the nodes (Redis is up)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"the node at {url} exited ({process.returncode})")
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with http.get(url + "/readyz", timeout=aiohttp.ClientTimeout(2)) as rsp:
                if rsp.status == 200 and (await rsp.json()).get("presence") == "cluster":
                    return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the node at {url} is not ready after {START_TIMEOUT:.0f}s")


async def node_state(http: aiohttp.ClientSession, url: str, pid: int) -> dict[str, float | None]:
    """What a node's process uses (/proc) and what its /metrics say of its event loop and
    sockets (None for what could not be read)."""
    metrics: dict[str, float] = {}
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with http.get(url + "/metrics", timeout=PROBE_TIMEOUT) as rsp:
            metrics = parse_metrics(await rsp.text())
    rss, lag = procinfo.rss_kb(pid), metrics.get("tidings_event_loop_lag_seconds")
    return {
        "rss_mb": None if rss is None else round(rss / 1024, 1),
        "fds": procinfo.open_fds(pid),
        "tasks": metrics.get("tidings_asyncio_tasks"),
        "loop_lag_ms": None if lag is None else round(lag * 1000, 1),
        "sockets": metrics.get("tidings_connected_sockets"),
    }


def _check_alive(nodes: Nodes) -> None:
    if nodes.process.returncode is not None:
        tail = "\n".join(nodes.log_path.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(
            f"the server exited ({nodes.process.returncode}); {nodes.log_path} ends with:\n{tail}"
        )


async def _probe(url: str) -> tuple[int, dict[str, str], str] | None:
    """GET over a fresh connection (so that the kernel picks a worker anew): status, headers,
    body; None when nothing answered."""
    connector = aiohttp.TCPConnector(force_close=True)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=PROBE_TIMEOUT) as http,
            http.get(url) as rsp,
        ):
            return rsp.status, dict(rsp.headers), await rsp.text()
    except (aiohttp.ClientError, TimeoutError):
        return None


async def wait_ready(nodes: Nodes, within: float = START_TIMEOUT) -> None:
    """Until all W workers run and answer (each one seen through the shared port, by the pid
    /healthz names), /readyz says the store is reachable, and, with Redis, that enough answers
    in a row say it is up: a worker whose Redis link is not up yet would only deliver to its
    own sockets."""
    deadline = time.monotonic() + within
    seen: set[int] = set()
    streak, last = 0, "no answer"
    while time.monotonic() < deadline:
        _check_alive(nodes)
        await asyncio.sleep(0.1)
        pids = nodes.find_workers()
        if len(pids) < nodes.workers:
            last = f"{len(pids)} of {nodes.workers} workers running"
            continue
        if not set(pids) <= seen:
            answer = await _probe(nodes.url + "/healthz")
            if answer is not None and answer[0] == 200:
                seen.add(int(answer[1].get("X-Tidings-Pid", "0")))
            last = f"{len(seen & set(pids))} of {nodes.workers} workers answered /healthz"
            continue
        answer = await _probe(nodes.url + "/readyz")
        ok = answer is not None and answer[0] == 200
        if ok and nodes.redis.startswith("none"):
            nodes.worker_pids = pids
            return
        ok = ok and answer is not None and _redis_state(answer[2]) == "ok"
        streak = streak + 1 if ok else 0
        last = f"/readyz: {answer[2][:200] if answer else 'no answer'}"
        if streak >= READY_STREAK * nodes.workers:
            nodes.worker_pids = pids
            return
    raise RuntimeError(f"{nodes.workers} workers are not ready after {within:.0f}s ({last})")


def _redis_state(body: str) -> object:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer.get("redis") if isinstance(answer, dict) else None


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus' text format: each sample's value by its name and labels."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                found[name] = float(value)
    return found


async def _one_worker(url: str) -> tuple[int, Metrics] | None:
    """On one new connection (so that the kernel picks a worker anew), kept alive: /healthz,
    which names the worker's pid, then /metrics, from the same worker. None when the two did
    not go over the same connection (the client opened a second one), or something failed."""
    opened: list[int] = []

    async def on_create(*_: object) -> None:
        opened.append(1)

    tracing = aiohttp.TraceConfig()
    tracing.on_connection_create_end.append(on_create)
    connector = aiohttp.TCPConnector(limit=1)
    try:
        async with aiohttp.ClientSession(
            connector=connector, timeout=PROBE_TIMEOUT, trace_configs=[tracing]
        ) as http:
            async with http.get(url + "/healthz") as rsp:
                pid = int(rsp.headers.get("X-Tidings-Pid", "0"))
                await rsp.read()
            async with http.get(url + "/metrics") as rsp:
                text = await rsp.text()
                status = rsp.status
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    if status != 200 or not pid or len(opened) != 1:
        return None
    return pid, parse_metrics(text)


async def worker_metrics(nodes: Nodes, attempts_per_worker: int = 12) -> dict[int, Metrics]:
    """Each worker's /metrics, by pid, sampled over new connections until every worker has
    answered (or the attempts run out)."""
    out: dict[int, Metrics] = {}
    for _ in range(attempts_per_worker * nodes.workers):
        answer = await _one_worker(nodes.url)
        if answer is not None:
            out[answer[0]] = answer[1]
        if set(nodes.worker_pids) <= set(out):
            break
    return out


# --------------------------------------------------------------------------- CPU, metrics


def _role(pid: int, nodes: Nodes) -> str:
    if pid in nodes.worker_pids:
        return f"worker {pid}"
    if pid == nodes.process.pid:
        return "supervisor"
    line = procinfo.cmdline(pid)
    for needle, role in ROLES:
        if needle in line:
            return role
    return "other"


def cpu_snapshot(nodes: Nodes) -> dict[str, float]:
    """CPU seconds used so far by each process of the run, summed by role."""
    out: dict[str, float] = {"bench": time.process_time()}
    for pid in procinfo.descendants(os.getpid()):
        seconds = procinfo.cpu_seconds(pid)
        if seconds is not None:
            role = _role(pid, nodes)
            out[role] = out.get(role, 0.0) + seconds
    return out


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(v - before.get(k, 0.0), 2) for k, v in sorted(after.items())}


def server_side(before: dict[int, Metrics], after: dict[int, Metrics]) -> dict[str, Any]:
    """From each worker's /metrics before the posts and after the deliveries: the follower
    entries each one wrote (where the fanouts ran), and the mean insert-to-emit of the batches."""
    pids = sorted(set(before) & set(after))
    entries = {str(p): after[p].get(ENTRIES, 0.0) - before[p].get(ENTRIES, 0.0) for p in pids}
    emits = sum(after[p].get(EMIT_COUNT, 0.0) - before[p].get(EMIT_COUNT, 0.0) for p in pids)
    seconds = sum(after[p].get(EMIT_SUM, 0.0) - before[p].get(EMIT_SUM, 0.0) for p in pids)
    return {
        "fanout_entries_by_worker": {p: int(v) for p, v in entries.items()},
        "server_fanout_emit_mean_ms": round(seconds / emits * 1000, 1) if emits > 0 else None,
    }
