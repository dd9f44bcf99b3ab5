"""The Tidings under test: start a store and a server (or find a running one), wait until it is
ready, and stop what was started."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from harness.common import ROOT, die_with_parent, free_port
from harness.server import TIDINGS
from harness.server import server_env as harness_server_env
from harness.store import embedded_store
from tidings.auth import server_token

from .limits import raise_open_files
from .options import threshold_env
from .store import store_version

SERVER_START_TIMEOUT = 90.0
SERVER_STOP_TIMEOUT = 30.0
EMBEDDED_CACHE_SIZE = "256M"  # the server's own default (mongodb.embedded_cache_size)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


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


def report_head(benchmark: str, run: str | None = None) -> dict[str, Any]:
    """The fields every benchmark's JSON report begins with."""
    head: dict[str, Any] = {"benchmark": benchmark}
    if run is not None:
        head["run"] = run
    head["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    head["machine"] = machine()
    return head


async def describe_store(report: dict[str, Any], target: Target) -> None:
    """The store the benchmark ran against, in its report."""
    report["store"] = target.store
    if target.db is not None:
        report["store_version"] = await store_version(target.db)


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def headers(target: Target) -> dict[str, str]:
    return {"Authorization": target.token, "stream-auth-type": "jwt"}


async def wait_ready(http: aiohttp.ClientSession, target: Target, within: float) -> None:
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


def server_env(args: argparse.Namespace, store_url: str, database: str) -> dict[str, str]:
    """The environment of a started server: the harness's (no TIDINGS_* of ours, the store,
    the app's key and secret, no Redis), with the fanout settings of the run."""
    env = harness_server_env(store_url, database, api_key=args.api_key, api_secret=args.api_secret)
    env.update({
        "TIDINGS_FANOUT_BATCH_SIZE": str(args.batch_size),
        "TIDINGS_FANOUT_CONCURRENCY": str(args.concurrency),
        # a benchmark is one client at full speed: what it measures is not the rate limits
        "TIDINGS_LIMITS_ENABLED": "false",
    })  # fmt: skip
    env.update(threshold_env(args))
    env.update(getattr(args, "server_env", None) or {})  # a benchmark's own settings
    return env


async def spawn_server(
    argv: list[str], env: dict[str, str], log_path: Path
) -> asyncio.subprocess.Process:
    """`python -m tidings <argv>` with stdout and stderr appended to `log_path`; it gets SIGTERM
    if the benchmark dies, even by kill -9. The open-file limit is raised first: the server
    inherits it, and holds a file descriptor per socket."""
    raise_open_files()
    with log_path.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *TIDINGS, *argv,
            cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            preexec_fn=die_with_parent(),
        )  # fmt: skip


async def stop_process(process: asyncio.subprocess.Process, within: float) -> None:
    """SIGTERM, and SIGKILL after `within` seconds."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), within)
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def _started_server(
    args: argparse.Namespace, store_url: str, database: str, workdir: Path
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process, Path]]:
    port = free_port()
    env = server_env(args, store_url, database)
    env.update({
        "TIDINGS_SERVER_HOST": "127.0.0.1",
        "TIDINGS_SERVER_PORT": str(port),
        "TIDINGS_SERVER_DATA_DIR": str(workdir / "var"),
    })  # fmt: skip
    log_path = workdir / "server.log"
    process = await spawn_server(["serve", "--log-level", "WARNING"], env, log_path)
    log(f"started Tidings pid {process.pid} on 127.0.0.1:{port} (log {log_path})")
    try:
        yield f"http://127.0.0.1:{port}", process, log_path
    finally:
        await stop_process(process, SERVER_STOP_TIMEOUT)
        log(f"Tidings stopped ({process.returncode})")


def mongo_client(url: str) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=5000, appname="tidings-bench"
    )


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
                    embedded_store(workdir / "store-data", EMBEDDED_CACHE_SIZE)
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
            await wait_ready(http, target, SERVER_START_TIMEOUT if args.start else 5.0)
        except RuntimeError as exc:
            if args.start:
                raise RuntimeError(f"{exc}\n{target.tail()}") from exc
            raise RuntimeError(f"{exc}; start one (make run), or pass --start") from exc
        if store_url:
            client = mongo_client(store_url)
            stack.push_async_callback(client.close)
            target.db = client[database]
        yield target


Report = dict[str, Any]


def run_report(
    benchmark: Coroutine[Any, Any, Report],
    failed: Callable[[Report], bool],
    indent: int | None = 2,
) -> int:
    """Run a benchmark, print its JSON report on stdout (`indent=None`: on one line); the exit
    status is 1 when it could not run or when `failed(report)` (something was missing), 130 on
    ^C, else 0."""
    try:
        report = asyncio.run(benchmark)
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, OSError, PyMongoError, aiohttp.ClientError) as exc:
        print(f"bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=indent))
    return 1 if failed(report) else 0
