"""The Python client's recovery after a server restart (clients/python, tidings_client).

Two nodes on one embedded store (no Redis: nothing needs to cross nodes live). A client is
subscribed to a feed through node A. Each round: A is killed (-9), `--missed` activities are
posted through node B, A is started again on its port; measured: A's start until it answers
/readyz, from then until the client reconnected (its backoff: 0.2 s doubling to 5 s while
the node was down) and until it has handed every missed activity to the app (each once, in
order: checked, a round that is not counts as failed). The server's `max_missed` is
`--max-missed`, so most of them come over REST (`more`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from tidings.auth import server_token, user_token
from tidings.runtime.processes import free_port
from tidings.store.mongo.embedded import embedded_store

from .options import DEV_API_KEY, DEV_API_SECRET, positive_int
from .services import (
    EMBEDDED_CACHE_SIZE,
    Report,
    log,
    machine,
    run_report,
    server_env,
    spawn_server,
    stop_process,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=positive_int, default=5, help="restarts (default 5)")
    parser.add_argument("--missed", type=positive_int, default=200,
                        help="activities posted while the node is down (default 200)")  # fmt: skip
    parser.add_argument("--max-missed", type=positive_int, default=100,
                        help="the server's realtime.max_missed (default 100)")  # fmt: skip
    parser.set_defaults(api_key=DEV_API_KEY, api_secret=DEV_API_SECRET, batch_size=500,
                        concurrency=4)  # fmt: skip


class Node:
    def __init__(self, args: argparse.Namespace, store: str, database: str, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = server_env(args, store, database)
        self.env.update({"TIDINGS_SERVER_HOST": "127.0.0.1", "TIDINGS_SERVER_PORT": str(self.port),
                         "TIDINGS_REALTIME_MAX_MISSED": str(args.max_missed)})  # fmt: skip
        self.log_path = workdir / f"node-{self.port}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, http: aiohttp.ClientSession) -> float:
        """Seconds until /readyz answers 200."""
        started = time.monotonic()
        self.process = await spawn_server(["serve", "--log-level", "WARNING"], self.env,
                                          self.log_path)  # fmt: skip
        while True:
            if self.process.returncode is not None:
                raise RuntimeError(f"node exited ({self.process.returncode}): {self.log_path}")
            try:
                async with http.get(self.url + "/readyz") as answer:
                    if answer.status == 200:
                        return time.monotonic() - started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.02)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def run(args: argparse.Namespace) -> Report:
    from tidings_client import Tidings  # the client under test (pip install -e clients/python)

    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tidings-client-") as tmp:
        workdir = Path(tmp)
        async with embedded_store(workdir / "store", EMBEDDED_CACHE_SIZE) as store, \
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:  # fmt: skip
            a, b = (Node(args, store, "bench_client", workdir) for _ in range(2))
            await asyncio.gather(a.start(http), b.start(http))
            token = server_token(args.api_secret)
            user = user_token("bench", args.api_secret)
            got: list[str] = []
            want = [0]  # deliveries awaited
            done = asyncio.Event()

            def on_activity(activity: dict[str, Any]) -> None:
                got.append(activity["id"])
                if len(got) >= want[0]:
                    done.set()

            try:
                async with Tidings(b.url, args.api_key, token=token) as writer, \
                        Tidings(a.url, args.api_key, token=user) as client:  # fmt: skip
                    connected_at = [0.0]

                    def on_state(state: str) -> None:
                        if state == "connected":
                            connected_at[0] = time.monotonic()

                    client.on("state", on_state)
                    await client.feed("user:bench").subscribe(on_activity)
                    for n in range(args.rounds):
                        await a.kill()
                        posted = [
                            (await writer.feed("user:bench").add_activity(
                                {"actor": "bench", "verb": "post", "object": f"o:{n}:{i}"}))["id"]
                            for i in range(args.missed)
                        ]  # fmt: skip
                        expected = want[0] = len(got) + len(posted)
                        done.clear()
                        ready = await a.start(http)
                        up = time.monotonic()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(done.wait(), 30)
                        recovered = time.monotonic() - up
                        reconnected = connected_at[0] - up  # the backoff's share
                        ok = got[-len(posted) :] == posted and len(got) == expected
                        rounds.append({
                            "ready_s": round(ready, 3),
                            "reconnected_after_ready_s": round(reconnected, 3),
                            "recovered_after_ready_s": round(recovered, 3),
                            "caught_up_after_reconnect_s": round(recovered - reconnected, 3),
                            "ok": ok,
                        })  # fmt: skip
                        log(f"round {n}: ready {ready:.2f} s, recovered {recovered:.3f} s later")
            finally:
                await a.kill()
                if b.process is not None:
                    await stop_process(b.process, 10)
    after = [r["recovered_after_ready_s"] for r in rounds]
    catch_up = [r["caught_up_after_reconnect_s"] for r in rounds]
    return {
        "benchmark": "client",
        "machine": machine(),
        "missed_per_round": args.missed,
        "max_missed": args.max_missed,
        "rounds": rounds,
        "recovered_after_ready_s": {"median": statistics.median(after), "max": max(after)},
        "caught_up_after_reconnect_s": {
            "median": statistics.median(catch_up),
            "max": max(catch_up),
        },
        "all_ok": all(r["ok"] for r in rounds),
    }


def main(args: argparse.Namespace) -> int:
    return run_report(run(args), lambda report: not report["all_ok"])
