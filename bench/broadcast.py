"""Broadcast benchmark: one event to N sockets in one room, Tidings against node's socket.io 4.

    .venv/bin/python -m bench.broadcast --sockets 10000 > broadcast.json

For each server under test (`--targets`, default `fast,socketio,node`):
- `fast`: Tidings with `realtime.fast_websocket = true` (its own Engine.IO/Socket.IO path);
- `socketio`: Tidings with `realtime.fast_websocket = false` (python-socketio serves everything);
- `fast2` (not by default): `fast` with `server.workers = 2`, one worker per core of a 2-core
  machine (the supervisor adds a redis-server between them); RSS is the workers' together;
- `node`: node's socket.io 4 (installed with npm into a temporary folder at run time), a tiny
  server with a `subscribe` event that joins a room and an HTTP endpoint that emits to it.
Tidings runs as `python -m tidings serve` (of `--tidings-root`, default this checkout: point it at
a `git worktree` of an older commit for a before/after) on an embedded SecantusDB started here.

Before measuring, a Tidings target must answer /readyz; `fast2` more: both workers must answer
through the shared port and /readyz must keep saying `"redis": "ok"` (bench/nodes.py's
`wait_ready`, as `bench cluster` waits), else a worker whose Redis link is not up yet would miss
the events posted through the other one.

N raw WebSocket subscribers (bench/wsclient.py) are spread over `--procs` client processes
(niced): a non-blocking socket each, speaking HTTP/1.1 upgrade, RFC 6455 and Engine.IO v4 /
Socket.IO v5 by hand (connect with a server token, `subscribe {feed: "raid:<run>"}`, answer
pings), with no task per socket and no JSON parse per event (a scan for `bench_seq`). An event's
arrival time is the kernel's receive timestamp of its packet (SO_TIMESTAMPNS), not the time the
client process got around to reading it: on a small machine the clients share the CPUs with the
server, and reading 10k sockets costs them as much CPU as writing them costs the server, so
arrival by read time would measure the clients. All N subscribe to the same feed: each event is
one emit to one room of N sockets.

Measured, per target:
- `connect`: seconds from the start of the connects until all N sockets are subscribed
  (each client process opens at most `--connect-concurrency` handshakes at a time);
- `rss_per_socket_kb`: server RSS after everything is subscribed and idle, less its RSS before
  the first connect, divided by N (Tidings: VmRSS of the server process; node: of node's);
- `latency_ms`: `--events` events, one at a time (the next once the last socket got the previous):
  from the HTTP post (Tidings: a REST insert of an activity, so its store write is included;
  node: a POST that emits) to arrival at each socket; p50, p99, max over all deliveries, and the
  median time until the last socket has it; `latency_cdf_ms`: the 101 percentiles p0..p100 of
  the same deliveries (`bench.stats.distribution`), the whole distribution for a CDF plot;
- `deliveries_per_s`: N / (median time until the last socket has an event), and
  `burst_deliveries_per_s`: `--burst` events posted back to back, N * burst / (last arrival - first
  post).
The JSON document goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from harness.common import die_with_parent

from . import procinfo
from .nodes import STOP_TIMEOUT, Nodes, wait_ready
from .services import stop_process
from .stats import distribution
from .wsclient import Subscriber

ROOT = Path(__file__).resolve().parent.parent
API_KEY, API_SECRET = "bench-key", "bench-secret-0123456789abcdef-0123456789"
SEQ = b'"bench_seq":'
CONNECT_TIMEOUT = 60.0  # one socket: connect, upgrade, connect to "/", subscribe
ONE_EVENT_TIMEOUT = 30.0  # until every socket has an event posted alone
BURST_TIMEOUT = 60.0  # until every socket has each event of the burst
READY_TIMEOUT = 300.0  # until every client process has all its sockets subscribed
REPORT_TIMEOUT = 60.0
POST_TIMEOUT = 60.0


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kb(pid: int) -> int:
    kb = procinfo.rss_kb(pid)
    if kb is None:
        raise RuntimeError(f"no VmRSS for {pid}")
    return kb


# =============================================================================== client side


def bench_seq(packet: bytes) -> int | None:
    """The `bench_seq` of an event packet, found by a scan: no JSON parse of 10,000 copies."""
    at = packet.find(SEQ)
    if at < 0:
        return None
    start = stop = at + len(SEQ)
    while stop < len(packet) and 48 <= packet[stop] <= 57:
        stop += 1
    return int(packet[start:stop]) if stop > start else None


class Client:
    """One client process: `count` subscribers; talks to the coordinator in JSON lines."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.arrivals: dict[int, list[float]] = {}
        self.subs: list[Subscriber] = []

    def on_event(self, packet: bytes, at: float) -> None:
        seq = bench_seq(packet)
        if seq is not None:
            self.arrived(seq, at)

    def arrived(self, seq: int, at: float) -> None:
        times = self.arrivals.setdefault(seq, [])
        times.append(at)
        if len(times) == len(self.subs):
            print(json.dumps({"done": seq}), flush=True)

    async def connect_all(self) -> None:
        o = self.options
        gate = asyncio.Semaphore(o["concurrency"])

        async def one() -> None:
            async with gate:
                sub = Subscriber(o["host"], o["port"], o["token"], o["feed"], self.on_event)
                await sub.start(CONNECT_TIMEOUT)
                self.subs.append(sub)

        await asyncio.gather(*(one() for _ in range(o["count"])))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await reader.readline()  # "go"
        started = time.time()
        try:
            await self.connect_all()
        except Exception as exc:  # said to the coordinator, which stops this target
            print(json.dumps({"error": f"client: {type(exc).__name__}: {exc}"}), flush=True)
            await reader.readline()  # "quit" (or EOF)
            return
        print(json.dumps({"ready": len(self.subs), "started": started, "at": time.time()}),
              flush=True)  # fmt: skip
        await reader.readline()  # "report"
        dropped = sum(sub.dropped for sub in self.subs)
        print(json.dumps({"arrivals": self.arrivals, "dropped": dropped}), flush=True)
        await reader.readline()  # "quit" (or EOF)


def client_main(options: dict[str, Any]) -> None:
    raise_nofile()
    os.nice(10)  # the servers under test come first; arrival times are the kernel's anyway
    asyncio.run(Client(options).run())


# =============================================================================== servers


NODE_SERVER = r"""
import { createServer } from "node:http";
import { Server } from "socket.io";
const http = createServer((req, res) => {
  if (req.url === "/rss") { res.end(String(process.memoryUsage().rss)); return; }
  if (req.url === "/pid") { res.end(String(process.pid)); return; }
  if (req.method === "POST" && req.url.startsWith("/emit/")) {
    const room = decodeURIComponent(req.url.slice(6));
    let body = "";
    req.on("data", (chunk) => { body += chunk; });
    req.on("end", () => { io.to(room).emit("feed.update", JSON.parse(body)); res.end("ok"); });
    return;
  }
  res.statusCode = 404; res.end();
});
const io = new Server(http, { perMessageDeflate: false, cors: { origin: "*" } });
io.on("connection", (socket) => {
  socket.on("subscribe", (data, ack) => {
    socket.join("feed:" + data.feed);
    if (typeof ack === "function") ack({ ok: true, feed: data.feed, missed: [], more: false });
  });
});
http.listen(Number(process.argv[2]), "127.0.0.1");
"""


class Target:
    """A server under test: start, the pids of its RSS, post one event, stop."""

    name = ""

    def __init__(self, port: int, feed: str) -> None:
        self.port, self.feed = port, feed
        self.process: asyncio.subprocess.Process | None = None
        self.token = "unused"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, http: aiohttp.ClientSession) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        """The processes whose RSS is the server's."""
        return [] if self.process is None else [self.process.pid]

    def rss_kb(self) -> int:
        return sum(map(rss_kb, self.pids()))

    async def wait_up(self, http: aiohttp.ClientSession, path: str) -> None:
        """Until `path` answers 200."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process is not None and self.process.returncode is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(self.url + path) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name}: {path} did not answer 200 within 60s")

    async def post(self, http: aiohttp.ClientSession, seq: int) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        if self.process is not None:
            await stop_process(self.process, STOP_TIMEOUT)


def activity(seq: int) -> dict[str, Any]:
    return {"actor": "bench", "verb": "post", "object": f"o:{seq}", "bench_seq": seq,
            "text": "x" * 200}  # fmt: skip


class Tidings(Target):
    """`python -m tidings serve` of `root`; `fast2` with `server.workers = 2` (a supervisor, two
    workers on the port, and the redis-server the supervisor starts between them)."""

    def __init__(self, name: str, port: int, feed: str, store_url: str, root: Path,
                 workdir: Path) -> None:  # fmt: skip
        super().__init__(port, feed)
        self.name, self.root = name, root
        self.workers = 2 if name == "fast2" else 1
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        self.env.update({
            "TIDINGS_MONGODB_URL": store_url,
            "TIDINGS_MONGODB_DATABASE": f"bench_{uuid.uuid4().hex[:8]}",
            "TIDINGS_SERVER_PORT": str(port), "TIDINGS_AUTH_API_KEY": API_KEY,
            "TIDINGS_AUTH_API_SECRET": API_SECRET,
            "TIDINGS_SERVER_DATA_DIR": str(workdir / f"{name}-var"),  # the supervisor's Redis
            "TIDINGS_REALTIME_FAST_WEBSOCKET": "false" if name == "socketio" else "true",
            "TIDINGS_SERVER_WORKERS": str(self.workers),
            "TIDINGS_LIMITS_ENABLED": "false",  # one client at full speed: not what is measured
        })  # fmt: skip
        # The package of `root`: `server/tidings` (import `tidings`), or `server` in a checkout
        # from before the rename.
        renamed = (root / "server" / "tidings").is_dir()
        self.module = "tidings" if renamed else "server"
        self.env["PYTHONPATH"] = str(root / "server" if renamed else root)
        self.log_path = workdir / f"{name}.log"
        self.nodes: Nodes | None = None
        self.token = jwt.encode({"resource": "*", "action": "*", "feed_id": "*"}, API_SECRET)

    async def start(self, http: aiohttp.ClientSession) -> None:
        """Start it, and wait until it is ready: one worker, until /readyz answers 200; two,
        until both answer through the port and their Redis links are up (bench/nodes.py)."""
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, "serve", "--host", "127.0.0.1",
                cwd=self.root, env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, preexec_fn=die_with_parent(),
            )  # fmt: skip
        redis = "started by the supervisor" if self.workers > 1 else "none (a single node)"
        self.nodes = Nodes(self.workers, self.url, self.port, self.process, self.log_path, redis)
        if self.workers == 1:  # also a --tidings-root older than X-Tidings-Pid
            await self.wait_up(http, "/readyz")
            return
        await wait_ready(self.nodes)
        log(f"{self.name}: workers {self.nodes.worker_pids} ready, Redis links up")

    def pids(self) -> list[int]:
        """The worker processes (with one worker: the server itself)."""
        return self.nodes.find_workers() if self.nodes is not None else super().pids()

    async def post(self, http: aiohttp.ClientSession, seq: int) -> None:
        slug, _, user = self.feed.partition(":")
        async with http.post(
            f"{self.url}/api/v1.0/feed/{slug}/{user}/", json=activity(seq),
            params={"api_key": API_KEY},
            headers={"Authorization": self.token, "stream-auth-type": "jwt"},
        ) as response:  # fmt: skip
            if response.status != 201:
                raise RuntimeError(f"insert answered {response.status}: {await response.text()}")


class NodeSocketIO(Target):
    name = "node"

    def __init__(self, port: int, feed: str, folder: Path) -> None:
        super().__init__(port, feed)
        self.folder = folder
        (folder / "server.mjs").write_text(NODE_SERVER)

    async def start(self, http: aiohttp.ClientSession) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "node", "server.mjs", str(self.port), cwd=self.folder,
            stdin=asyncio.subprocess.DEVNULL, stdout=sys.stderr, preexec_fn=die_with_parent(),
        )  # fmt: skip
        await self.wait_up(http, "/pid")

    async def post(self, http: aiohttp.ClientSession, seq: int) -> None:
        event = {"feed": self.feed, "new": [{**activity(seq), "id": str(uuid.uuid4()),
                 "origin": None, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}],
                 "deleted": [], "deleted_foreign_ids": [], "published_at": ""}  # fmt: skip
        async with http.post(f"{self.url}/emit/feed:{self.feed}", json=event) as response:
            await response.read()


def install_socketio(folder: Path) -> str:
    """npm install socket.io@4 into `folder`; its version."""
    (folder / "package.json").write_text(
        '{"name": "bench-node", "private": true, "type": "module"}'
    )
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "socket.io@4"],
                   cwd=folder, check=True, stdout=sys.stderr)  # fmt: skip
    return str(json.loads((folder / "node_modules/socket.io/package.json").read_text())["version"])


# =============================================================================== coordinator


class Clients:
    """The client processes of one target, spoken to in words on stdin and JSON lines back."""

    def __init__(self, target: Target, total: int, procs: int, concurrency: int) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.lines: list[asyncio.Queue[dict[str, Any]]] = []
        self._pumps: list[asyncio.Task[None]] = []
        self.share = [total // procs + (i < total % procs) for i in range(procs)]
        for count in self.share:
            options = {
                "host": "127.0.0.1", "port": target.port, "count": count,
                "token": target.token, "feed": target.feed, "concurrency": concurrency,
            }  # fmt: skip
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "bench.broadcast", "--client", json.dumps(options)],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            ))  # fmt: skip

    async def start_reading(self) -> None:
        loop = asyncio.get_running_loop()
        for proc in self.procs:
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            self.lines.append(queue)
            assert proc.stdout is not None
            reader = asyncio.StreamReader(limit=1 << 30)
            await loop.connect_read_pipe(lambda r=reader: asyncio.StreamReaderProtocol(r),
                                         proc.stdout)  # fmt: skip
            self._pumps.append(loop.create_task(self._pump(proc, reader, queue)))

    async def _pump(
        self, proc: subprocess.Popen[bytes], reader: asyncio.StreamReader,
        queue: asyncio.Queue[Any],
    ) -> None:  # fmt: skip
        while line := await reader.readline():
            await queue.put(json.loads(line))
        why = f"client process {proc.pid} closed its output (exit status {proc.poll()})"
        await queue.put({"error": why})

    def tell(self, word: str) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(word.encode() + b"\n")
                proc.stdin.flush()

    async def expect(self, key: str, within: float, value: Any = None) -> list[dict[str, Any]]:
        """The next line with `key` (and that value) from every client process."""
        found = []
        deadline = time.monotonic() + within
        for i, queue in enumerate(self.lines):
            while True:
                try:
                    line = await asyncio.wait_for(queue.get(), deadline - time.monotonic())
                except TimeoutError:
                    wanted = key if value is None else f"{key} {value}"
                    raise TimeoutError(
                        f"client process {i + 1} of {len(self.lines)} ({self.share[i]} sockets) "
                        f"did not say {wanted!r} within {within:g}s"
                    ) from None
                if "error" in line:
                    raise RuntimeError(line["error"])
                if key in line and (value is None or line[key] == value):
                    found.append(line)
                    break
        return found

    async def reports(self, within: float = REPORT_TIMEOUT) -> list[dict[str, Any]]:
        """What every client process received (said once: then they wait for "quit")."""
        self.tell("report")
        return await self.expect("arrivals", within)

    async def missed(self, seq: int, within: float) -> TimeoutError:
        """The error for event `seq` not reaching every socket within `within` seconds of its
        post: how many sockets did get it, and how many were dropped."""
        try:
            reports = await self.reports(10)
        except (TimeoutError, RuntimeError) as exc:
            return TimeoutError(f"event {seq} did not reach every socket within {within:g}s of "
                                f"its post, and the clients did not report ({exc})")  # fmt: skip
        got = sum(len(r["arrivals"].get(str(seq), [])) for r in reports)
        dropped = sum(r["dropped"] for r in reports)
        return TimeoutError(
            f"event {seq} had not reached every socket {within:g}s after its post: {got} of "
            f"{sum(self.share)} sockets had it when asked just after ({dropped} dropped)"
        )

    def stop(self) -> None:
        self.tell("quit")
        for pump in self._pumps:
            pump.cancel()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def post(target: Target, http: aiohttp.ClientSession, seq: int) -> None:
    """Post event `seq`; aiohttp's bare TimeoutError is given a message."""
    try:
        await target.post(http, seq)
    except TimeoutError:
        why = f"the post of event {seq} got no answer within {POST_TIMEOUT:g}s"
        raise TimeoutError(why) from None


async def wait_done(clients: Clients, seq: int, within: float) -> None:
    """Until every socket has event `seq`; else a TimeoutError saying how many have it."""
    try:
        await clients.expect("done", within, seq)
    except TimeoutError:
        raise await clients.missed(seq, within) from None


async def measure(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await target.start(http)
        await post(target, http, 0)  # warm up (the store's first insert, imports, ...)
        await asyncio.sleep(1)
        rss_before = target.rss_kb()
        clients = Clients(target, args.sockets, args.procs, args.connect_concurrency)
        await clients.start_reading()
        try:
            log(f"{target.name}: connecting {args.sockets} sockets")
            clients.tell("go")
            ready = await clients.expect("ready", READY_TIMEOUT)
            connect_s = max(r["at"] for r in ready) - min(r["started"] for r in ready)
            await asyncio.sleep(2)  # idle
            rss_after = target.rss_kb()
            log(f"{target.name}: {args.sockets} subscribed in {connect_s:.2f}s, "
                f"RSS +{(rss_after - rss_before) / 1024:.0f} MB")  # fmt: skip
            sent: dict[int, float] = {}
            for seq in range(1, args.events + 1):
                sent[seq] = time.time()
                await post(target, http, seq)
                await wait_done(clients, seq, ONE_EVENT_TIMEOUT)
                await asyncio.sleep(args.pause)
            burst = list(range(args.events + 1, args.events + args.burst + 1))
            for seq in burst:
                sent[seq] = time.time()
                await post(target, http, seq)
            for seq in burst:
                await wait_done(clients, seq, BURST_TIMEOUT)
            reports = await clients.reports()
        finally:
            clients.stop()
    arrivals: dict[int, list[float]] = {}
    for report in reports:
        for seq, times in report["arrivals"].items():
            arrivals.setdefault(int(seq), []).extend(times)
    latencies = [(t - sent[s]) * 1000 for s in range(1, args.events + 1) for t in arrivals[s]]
    last = [(max(arrivals[s]) - sent[s]) for s in range(1, args.events + 1)]
    burst_span = max(max(arrivals[s]) for s in burst) - sent[burst[0]]
    return {
        "sockets": args.sockets,
        "connect_s": round(connect_s, 2),
        "rss_before_mb": round(rss_before / 1024, 1),
        "rss_after_mb": round(rss_after / 1024, 1),
        "rss_per_socket_kb": round((rss_after - rss_before) / args.sockets, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "max": round(max(latencies), 1),
            "last_socket_median": round(statistics.median(last) * 1000, 1),
        },
        "latency_cdf_ms": distribution(latencies),
        "deliveries": len(latencies),
        "deliveries_per_s": round(args.sockets / statistics.median(last)),
        "burst_deliveries_per_s": round(args.sockets * len(burst) / burst_span),
        "dropped": sum(r["dropped"] for r in reports),
    }


async def run_target(
    name: str, feed: str, store_url: str, workdir: Path, args: argparse.Namespace,
    result: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    port = free_port()
    target: Target
    if name == "node":
        if shutil.which("node") is None or shutil.which("npm") is None:
            return {"error": "node or npm not installed"}
        folder = workdir / "node"
        if not folder.exists():
            folder.mkdir()
            result["node_socketio_version"] = install_socketio(folder)
        target = NodeSocketIO(port, feed, folder)
    else:
        root = Path(args.tidings_root)
        target = Tidings(name, port, feed, store_url, root, workdir)
    try:
        return await measure(target, args)
    except Exception as exc:  # report it and go on with the next target
        log(f"{name} failed: {exc!r}")
        failed: dict[str, Any] = {"error": repr(exc)}
        if isinstance(target, Tidings) and target.nodes is not None:
            failed["server_log"] = target.nodes.log_problems(5)
        return failed
    finally:
        await target.stop()


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the rounds (and every round, when there are several).

    `latency_cdf_ms` is the pointwise median: its k-th value is the median over the rounds of
    their k-th percentile, as `latency_ms` holds the medians of the rounds' p50, p99, ...; the
    median of non-decreasing lists is non-decreasing, so it is still a distribution."""
    good = [r for r in runs if "error" not in r]
    if len(good) < len(runs) or len(runs) == 1:
        return runs[0] if len(runs) == 1 else {"error": "a round failed", "runs": runs}

    def median(values: list[Any]) -> Any:
        if isinstance(values[0], dict):
            return {k: median([v[k] for v in values]) for k in values[0]}
        if isinstance(values[0], list):  # latency_cdf_ms: percentile by percentile
            return [round(statistics.median(column), 1) for column in zip(*values, strict=True)]
        return round(statistics.median(values), 2)

    return {**median(good), "dropped": sum(r["dropped"] for r in good), "runs": good}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from harness.store import embedded_store

    nofile = raise_nofile()
    result: dict[str, Any] = {"benchmark": "broadcast", "sockets": args.sockets,
                              "events": args.events, "burst": args.burst, "procs": args.procs,
                              "rounds": args.rounds,
                              "cpus": os.cpu_count(), "nofile": nofile, "targets": {}}  # fmt: skip
    feed = f"raid:bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            store_url = ""
            if {"fast", "fast2", "socketio"} & set(args.targets):
                store_url = await stack.enter_async_context(embedded_store(workdir, "256M"))
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.targets}
            for round_ in range(args.rounds):
                for name in args.targets:  # interleaved: every target sees the same load
                    runs[name].append(await run_target(name, feed, store_url, workdir, args,
                                                       result))  # fmt: skip
                    log(f"round {round_ + 1} {name}: {json.dumps(runs[name][-1])}")
            for name, done in runs.items():
                result["targets"][name] = summary(done)
    node = result["targets"].get("node", {})
    for name in ("fast", "fast2", "socketio"):
        mine = result["targets"].get(name, {})
        if "deliveries_per_s" in mine and "deliveries_per_s" in node:
            result[f"{name}_vs_node"] = {
                "deliveries_per_s": round(mine["deliveries_per_s"] / node["deliveries_per_s"], 2),
                "burst_deliveries_per_s": round(
                    mine["burst_deliveries_per_s"] / node["burst_deliveries_per_s"], 2
                ),
                "p99_latency": round(mine["latency_ms"]["p99"] / node["latency_ms"]["p99"], 2),
                "connect_s": round(mine["connect_s"] / node["connect_s"], 2),
            }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.broadcast",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=20, help="events timed one at a time")
    parser.add_argument("--burst", type=int, default=20, help="events posted back to back")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between two events")
    parser.add_argument("--procs", type=int, default=4, help="client processes")
    parser.add_argument(
        "--connect-concurrency",
        type=int,
        default=100,
        help="handshakes in flight per client process",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every target this many times, interleaved; report medians",
    )
    parser.add_argument(
        "--targets",
        default="fast,socketio,node",
        type=lambda s: [t.strip() for t in s.split(",") if t.strip()],
    )
    parser.add_argument(
        "--tidings-root",
        default=str(ROOT),
        help="the Tidings checkout to run (e.g. a git worktree of an older commit)",
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)  # fmt: skip
    if args.client:
        client_main(json.loads(args.client))
        return 0
    unknown = set(args.targets) - {"fast", "fast2", "socketio", "node"}
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}")
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    failed = any("error" in t or t.get("dropped") for t in result["targets"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
