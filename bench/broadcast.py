"""Broadcast benchmark: one event to N sockets in one room, Tidings against node's socket.io 4.

    .venv/bin/python -m bench.broadcast --sockets 10000 > broadcast.json

For each server under test (`--targets`, default `fast,socketio,node`):
- `fast`: Tidings with `realtime.fast_websocket = true` (its own Engine.IO/Socket.IO path);
- `socketio`: Tidings with `realtime.fast_websocket = false` (python-socketio serves everything);
- `fast2` (not by default): `fast` with `server.workers = 2`, one worker per core of a 2-core
  machine (the supervisor adds a redis-server between them); RSS is the workers' together;
- `node`: node's socket.io 4 (installed with npm into a temporary folder at run time), a tiny
  server with a `subscribe` event that joins a room and an HTTP endpoint that emits to it.
Tidings runs as `python -m server serve` (of `--tidings-root`, default this checkout: point it at
a `git worktree` of an older commit for a before/after) on an embedded SecantusDB started here.

N raw WebSocket subscribers are spread over `--procs` client processes (niced). A subscriber is a
non-blocking socket speaking HTTP/1.1 upgrade, RFC 6455 and Engine.IO v4 / Socket.IO v5 by hand
(connect with a server token, `subscribe {feed: "raid:<run>"}`, answer pings), with no task and no
JSON parse per message. An event's arrival time is the kernel's receive timestamp of its packet
(SO_TIMESTAMPNS), not the time the client process got around to reading it: on a small machine
the clients share the CPUs with the server, and reading 10k sockets costs them as much CPU as
writing them costs the server, so arrival by read time would measure the clients. All N subscribe
to the same feed: each event is one emit to one room of N sockets.

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
import base64
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from .stats import distribution

ROOT = Path(__file__).resolve().parent.parent
API_KEY, API_SECRET = "bench-key", "bench-secret-0123456789abcdef-0123456789"
SEQ = b'"bench_seq":'


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


def server_rss_kb(pid: int) -> int:
    """RSS of a server: of `pid`, or with `--workers`, of its worker processes together."""
    workers = [
        int(child) for child in os.listdir("/proc") if child.isdigit()
        and _parent(int(child)) == pid
        and b"serve" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]  # fmt: skip
    return sum(map(rss_kb, workers)) if workers else rss_kb(pid)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError):
        return -1


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


# =============================================================================== client side


def _masked(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client-to-server frame (masked, as RFC 6455 requires; the clients send little)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((0x80 | opcode, 0x80 | n)) if n < 126 else bytes((0x80 | opcode, 0xFE))
    if n >= 126:
        head += n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: receive time of each packet
ANCILLARY = socket.CMSG_SPACE(16)  # one struct timespec


class Sub:
    """One raw subscriber on a non-blocking socket: handshake, subscribe, then record (seq,
    arrival) of each event, the arrival being the kernel's receive timestamp of the packet."""

    def __init__(self, path: str, host: str, token: str, feed: str, client: Client) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.token, self.feed, self.client = token, feed, client
        self.buffer = b""
        self.upgraded = False
        self.loop = asyncio.get_running_loop()
        self.subscribed: asyncio.Future[None] = self.loop.create_future()
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.at = 0.0  # receive time of what is being parsed

    async def start(self, host: str, port: int) -> None:
        await self.loop.sock_connect(self.sock, (host, port))
        self.sock.send(self.request)
        self.loop.add_reader(self.sock.fileno(), self.readable)

    def readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(1 << 16, ANCILLARY)
        except BlockingIOError:
            return
        except OSError as exc:
            self.lost(exc)
            return
        if not data:
            self.lost(None)
            return
        self.at = time.time()
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = struct.unpack("qq", payload[:16])
                self.at = seconds + nanoseconds / 1e9
        self.data_received(data)

    def lost(self, exc: Exception | None) -> None:
        self.close()
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"closed before subscribing: {exc}"))
        else:
            self.client.dropped += 1

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def send(self, text: str) -> None:
        with contextlib.suppress(BlockingIOError):  # a few bytes: the send buffer has room
            self.sock.send(_masked(text.encode()))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self._fail(f"upgrade refused: {buf[:200]!r}")
                return
            self.upgraded, buf = True, buf[end + 4 :]
        pos = 0
        while len(buf) - pos >= 2:
            opcode, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if len(buf) - pos < head + n:
                break
            payload = buf[pos + head : pos + head + n]
            pos += head + n
            if opcode == 0x1:
                self._packet(payload)
            elif opcode == 0x8:
                self.lost(None)
                return
            elif opcode == 0x9:
                self.sock.send(_masked(payload, 0xA))
        self.buffer = buf[pos:]

    def _packet(self, packet: bytes) -> None:
        if packet.startswith(b"42"):
            at = packet.find(SEQ)
            if at >= 0:
                end = at + len(SEQ)
                stop = end
                while stop < len(packet) and 48 <= packet[stop] <= 57:
                    stop += 1
                self.client.arrived(int(packet[end:stop]), self.at)
        elif packet == b"2":
            self.send("3")
        elif packet.startswith(b"0{"):
            self.send("40" + json.dumps({"token": self.token}))
        elif packet.startswith(b"40"):
            self.send("420" + json.dumps(["subscribe", {"feed": self.feed}]))
        elif packet.startswith(b"430"):
            ack = json.loads(packet[3:])
            if isinstance(ack, list) and ack and ack[0].get("ok") is True:
                if not self.subscribed.done():
                    self.subscribed.set_result(None)
            else:
                self._fail(f"subscribe refused: {packet[:200]!r}")
        elif packet.startswith(b"44"):
            self._fail(f"connect refused: {packet[:200]!r}")

    def _fail(self, why: str) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(why))
        self.close()


class Client:
    """One client process: `count` subscribers; talks to the coordinator in JSON lines."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.arrivals: dict[int, list[float]] = {}
        self.dropped = 0
        self.subs: list[Sub] = []

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
                sub = Sub(o["path"], f"{o['host']}:{o['port']}", o["token"], o["feed"], self)
                await sub.start(o["host"], o["port"])
                await asyncio.wait_for(sub.subscribed, 60)
                self.subs.append(sub)

        await asyncio.gather(*(one() for _ in range(o["count"])))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await reader.readline()  # "go"
        started = time.time()
        await self.connect_all()
        print(json.dumps({"ready": len(self.subs), "started": started, "at": time.time()}),
              flush=True)  # fmt: skip
        await reader.readline()  # "report"
        print(json.dumps({"arrivals": self.arrivals, "dropped": self.dropped}), flush=True)
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
    """A server under test: start, pid, post one event, stop."""

    name = ""
    pid = 0

    def __init__(self, port: int, feed: str) -> None:
        self.port, self.feed = port, feed
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_up(self, http: aiohttp.ClientSession, path: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(self.url + path) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start")

    async def post(self, http: aiohttp.ClientSession, seq: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def activity(seq: int) -> dict[str, Any]:
    return {"actor": "bench", "verb": "post", "object": f"o:{seq}", "bench_seq": seq,
            "text": "x" * 200}  # fmt: skip


class Tidings(Target):
    def __init__(self, name: str, port: int, feed: str, store_url: str, root: Path,
                 workdir: Path) -> None:  # fmt: skip
        super().__init__(port, feed)
        self.name = name
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        env.update({
            "TIDINGS_MONGODB_URL": store_url,
            "TIDINGS_MONGODB_DATABASE": f"bench_{uuid.uuid4().hex[:8]}",
            "TIDINGS_SERVER_PORT": str(port), "TIDINGS_AUTH_API_KEY": API_KEY,
            "TIDINGS_AUTH_API_SECRET": API_SECRET,
            "TIDINGS_REALTIME_FAST_WEBSOCKET": "false" if name == "socketio" else "true",
            "TIDINGS_SERVER_WORKERS": "2" if name == "fast2" else "1",
        })  # fmt: skip
        log_file = (workdir / f"{name}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1"],
            cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.pid = self.process.pid
        self.token = jwt.encode({"resource": "*", "action": "*", "feed_id": "*"}, API_SECRET)

    async def start(self, http: aiohttp.ClientSession) -> None:
        await self.wait_up(http, "/readyz")

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
        (folder / "server.mjs").write_text(NODE_SERVER)
        self.process = subprocess.Popen(["node", "server.mjs", str(port)], cwd=folder)
        self.pid = self.process.pid
        self.token = "unused"

    async def start(self, http: aiohttp.ClientSession) -> None:
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
    def __init__(self, target: Target, total: int, procs: int, concurrency: int) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.lines: list[asyncio.Queue[dict[str, Any]]] = []
        self._pumps: list[asyncio.Task[None]] = []
        share = [total // procs + (i < total % procs) for i in range(procs)]
        for count in share:
            options = {
                "host": "127.0.0.1", "port": target.port, "count": count,
                "path": "/socket.io/?EIO=4&transport=websocket", "token": target.token,
                "feed": target.feed, "concurrency": concurrency,
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
            self._pumps.append(loop.create_task(self._pump(reader, queue)))

    async def _pump(self, reader: asyncio.StreamReader, queue: asyncio.Queue[Any]) -> None:
        while line := await reader.readline():
            await queue.put(json.loads(line))

    def tell(self, word: str) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(word.encode() + b"\n")
                proc.stdin.flush()

    async def expect(self, key: str, within: float, value: Any = None) -> list[dict[str, Any]]:
        """The next line with `key` (and that value) from every client process."""
        found = []
        for queue in self.lines:
            while True:
                line = await asyncio.wait_for(queue.get(), within)
                if "error" in line:
                    raise RuntimeError(line["error"])
                if key in line and (value is None or line[key] == value):
                    found.append(line)
                    break
        return found

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


async def measure(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await target.start(http)
        await target.post(http, 0)  # warm up (the store's first insert, imports, ...)
        await asyncio.sleep(1)
        rss_before = server_rss_kb(target.pid)
        clients = Clients(target, args.sockets, args.procs, args.connect_concurrency)
        await clients.start_reading()
        try:
            log(f"{target.name}: connecting {args.sockets} sockets")
            clients.tell("go")
            ready = await clients.expect("ready", 300)
            connect_s = max(r["at"] for r in ready) - min(r["started"] for r in ready)
            await asyncio.sleep(2)  # idle
            rss_after = server_rss_kb(target.pid)
            log(f"{target.name}: {args.sockets} subscribed in {connect_s:.2f}s, "
                f"RSS +{(rss_after - rss_before) / 1024:.0f} MB")  # fmt: skip
            sent: dict[int, float] = {}
            for seq in range(1, args.events + 1):
                sent[seq] = time.time()
                await target.post(http, seq)
                await clients.expect("done", 30, seq)
                await asyncio.sleep(args.pause)
            burst = list(range(args.events + 1, args.events + args.burst + 1))
            for seq in burst:
                sent[seq] = time.time()
                await target.post(http, seq)
            for seq in burst:
                await clients.expect("done", 60, seq)
            clients.tell("report")
            reports = await clients.expect("arrivals", 60)
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
        return {"error": repr(exc)}
    finally:
        target.stop()


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
    from server.store.embedded import embedded_store

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
