"""The reconnect benchmark: a connect storm of distinct feeds, and a node restart
that every client recovers from with `since`.

`--sockets` raw WebSocket clients (bench/wsclient.py, in this process), each subscribed to its
own follower feed `timeline:<run>-<i>` of ONE pull feed `user:<run>-star`, `--concurrency` of
them connecting at a time:
- `connect_s`: until every socket is connected and subscribed, for Tidings and, in the same run,
  node's socket.io 4 (bench/broadcast.py's node server: a subscribe that joins a room);
- `reconnect_s`: the Tidings server is stopped and started again (its caches are cold), then
  every client reconnects with `since` = the id of the second of `--activities` activities of
  the pull feed: until every one has its subscribe ack; each ack's `missed` must be exactly the
  activities after `since`, oldest first (`recovered_exactly`, `wrong`: none missed, none
  repeated).
One JSON document on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from harness.common import free_port
from harness.store import embedded_store

from .broadcast import API_KEY, NodeSocketIO, Tidings, install_socketio
from .feeds import API, setup_pull_follows
from .limits import raise_open_files
from .options import positive_int
from .services import (
    EMBEDDED_CACHE_SIZE,
    Report,
    Target,
    log,
    mongo_client,
    report_head,
    run_report,
)
from .wsclient import Subscriber

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sockets", type=positive_int, default=10_000)
    parser.add_argument("--concurrency", type=positive_int, default=250)
    parser.add_argument("--activities", type=positive_int, default=5)
    parser.add_argument("--pull-threshold", type=positive_int, default=1000)
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    parser.add_argument("--skip-node", action="store_true")
    parser.add_argument(
        "--workers",
        type=int,
        choices=(1, 2),
        default=1,
        help="Tidings' server.workers (2: one worker per core of a 2-core machine)",
    )


class Recovering(Subscriber):
    """A subscriber that sends `since` and keeps its ack's `missed` ids and `more`."""

    def __init__(self, host: str, port: int, token: str, feed: str, since: str | None) -> None:
        super().__init__(host, port, token, feed, lambda packet, at: None)
        self.since = since
        self.missed: list[str] = []
        self.more = False

    def _packet(self, packet: bytes) -> None:
        if packet.startswith(b"40") and not packet.startswith(b"430"):
            body: dict[str, Any] = {"feed": self.feed}
            if self.since is not None:
                body["since"] = self.since
            self._send(b"420" + json.dumps(["subscribe", body]).encode())
            return
        if packet.startswith(b"430"):
            with contextlib.suppress(ValueError, IndexError, KeyError, TypeError):
                ack = json.loads(packet[3:])[0]
                self.missed = [a["id"] for a in ack.get("missed", [])]
                self.more = bool(ack.get("more"))
        super()._packet(packet)


async def storm(
    port: int, token: str, feeds: list[str], since: str | None, concurrency: int, within: float
) -> tuple[float, list[Recovering], list[str]]:
    """Connect one socket per feed, `concurrency` at a time: seconds, sockets, errors."""
    gate = asyncio.Semaphore(concurrency)
    subs: list[Recovering] = []
    errors: list[str] = []

    async def one(feed: str) -> None:
        async with gate:
            sub = Recovering("127.0.0.1", port, token, feed, since)
            try:
                await sub.start(within)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            subs.append(sub)

    started = time.perf_counter()
    await asyncio.gather(*(one(feed) for feed in feeds))
    return time.perf_counter() - started, subs, errors


def close_all(subs: list[Recovering]) -> None:
    for sub in subs:
        sub.close()


async def post(http: aiohttp.ClientSession, target: Tidings, feed: str, n: int) -> str:
    slug, _, user = feed.partition(":")
    async with http.post(
        f"{target.url}{API}/feed/{slug}/{user}/",
        json={"actor": "bench", "verb": "post", "object": f"o:{n}", "n": n},
        params={"api_key": API_KEY},
        headers={"Authorization": target.token, "stream-auth-type": "jwt"},
    ) as response:
        body = await response.json()
        if response.status != 201:
            raise RuntimeError(f"insert answered {response.status}: {body}")
        return str(body["id"])


async def run(args: argparse.Namespace) -> Report:
    raise_open_files()
    run_id = uuid.uuid4().hex[:8]
    report: Report = {
        **report_head("reconnect", run_id),
        "settings": {"sockets": args.sockets, "concurrency": args.concurrency,
                     "activities": args.activities, "pull_threshold": args.pull_threshold,
                     "workers": args.workers},
    }  # fmt: skip
    star = f"user:{run_id}-star"
    feeds = [f"timeline:{run_id}-{i}" for i in range(args.sockets)]
    with tempfile.TemporaryDirectory(prefix="tidings-reconnect-") as tmp:
        workdir = Path(tmp)
        async with (
            embedded_store(workdir / "store", EMBEDDED_CACHE_SIZE) as store_url,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            client = mongo_client(store_url)
            name = "fast2" if args.workers == 2 else "fast"
            tidings = Tidings(name, free_port(), star, store_url, ROOT, workdir)
            threshold = min(args.pull_threshold, args.sockets - 1)
            tidings.env["TIDINGS_FANOUT_PULL_THRESHOLD"] = str(threshold)
            tidings.env["TIDINGS_FANOUT_PUSH_THRESHOLD"] = str(int(threshold * 0.8))
            db = client[tidings.env["TIDINGS_MONGODB_DATABASE"]]
            try:
                await tidings.start(http)
                target = Target(tidings.url, API_KEY, tidings.token, "embedded", db)
                how = await setup_pull_follows(http, target, star, feeds, threshold)
                log(f"{args.sockets} follows of {star}: {how}")
                ids = [await post(http, tidings, star, n) for n in range(args.activities)]
                seconds, subs, errors = await storm(
                    tidings.port, tidings.token, feeds, None, args.concurrency,
                    args.connect_timeout,
                )  # fmt: skip
                log(f"tidings: {len(subs)} subscribed in {seconds:.1f}s ({len(errors)} failed)")
                report["tidings"] = {"connect_s": round(seconds, 2), "subscribed": len(subs),
                                     "failed": len(errors), "errors": errors[:5]}  # fmt: skip
                close_all(subs)
                await tidings.stop()
                log("tidings restarted; reconnecting every client with since")
                await tidings.start(http)
                since, expected = ids[1], ids[2:]
                seconds, subs, errors = await storm(
                    tidings.port, tidings.token, feeds, since, args.concurrency,
                    args.connect_timeout,
                )  # fmt: skip
                exact = sum(1 for s in subs if s.missed == expected and not s.more)
                log(f"tidings: {len(subs)} recovered in {seconds:.1f}s, {exact} exactly")
                report["tidings"].update({
                    "reconnect_s": round(seconds, 2), "recovered": len(subs),
                    "recovered_exactly": exact, "wrong": len(subs) - exact,
                    "reconnect_failed": len(errors), "reconnect_errors": errors[:5],
                })  # fmt: skip
                close_all(subs)
            finally:
                await tidings.stop()
                await client.close()
        if not args.skip_node and shutil.which("node") and shutil.which("npm"):
            folder = workdir / "node"
            folder.mkdir()
            report["node_socketio_version"] = install_socketio(folder)
            node = NodeSocketIO(free_port(), star, folder)
            async with aiohttp.ClientSession() as http:
                try:
                    await node.start(http)
                    seconds, subs, errors = await storm(
                        node.port, "unused", feeds, None, args.concurrency, args.connect_timeout
                    )
                    close_all(subs)
                finally:
                    await node.stop()
            log(f"node: {len(subs)} subscribed in {seconds:.1f}s")
            report["node"] = {"connect_s": round(seconds, 2), "subscribed": len(subs),
                              "failed": len(errors)}  # fmt: skip
            report["tidings_vs_node_connect"] = round(report["tidings"]["connect_s"] / seconds, 2)
    return report


def main(args: argparse.Namespace) -> int:
    return run_report(run(args), lambda report: bool(report.get("tidings", {}).get("wrong")))
