"""`tidings serve --workers N`: a supervisor and N worker processes sharing one port.

The supervisor does not serve. It loads the settings once; starts what the workers share when
it is not configured (the embedded store when `mongodb.url` is empty, a local redis-server when
`redis.url` is empty); spawns N `python -m tidings serve` workers that bind the same port with
SO_REUSEPORT (the kernel spreads new connections over them) and share Socket.IO emits through
Redis; restarts a worker that dies; and on SIGTERM or SIGINT stops the workers (each drains as a
single node does, within `server.shutdown_timeout`), then the store, then Redis, and exits 0.

Workers run in their own process group, so a Ctrl-C at the terminal reaches the supervisor only
and every worker gets exactly one SIGTERM (a second signal would cut aiohttp's graceful shutdown
short). PR_SET_PDEATHSIG stops them when the supervisor dies, even by kill -9.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from ..config import Settings, url_location
from ..store.mongo.embedded import embedded_store
from .local_redis import local_redis
from .processes import die_with_parent

log = logging.getLogger(__name__)
# A stopping worker may take server.shutdown_timeout for open requests and as long again for
# its fanout batches. It is killed after that and this margin, in seconds.
STOP_MARGIN = 10.0
BACKOFF_MIN, BACKOFF_MAX = 0.5, 10.0  # seconds before a dead worker is started again
HEALTHY_RUN = 10.0  # a worker that lived this long was not crash-looping
CRASH_LOOP = 5  # this many short-lived runs in a row of one worker stop the supervisor


def describe(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"code {code} ({signal.Signals(-code).name})"
    return f"code {code}"


def worker_argv(settings: Settings, config_file: str | None, log_level: str) -> list[str]:
    """The worker's command line: the supervisor's resolved address, never `--workers`."""
    server = settings.server
    argv = [sys.executable, "-m", "tidings", "serve", "--host", server.host,
            "--port", str(server.port), "--data-dir", str(server.data_dir),
            "--log-level", log_level]  # fmt: skip
    if config_file:
        argv += ["--config", config_file]
    return argv


def supervise(settings: Settings, config_file: str | None, log_level: str) -> int:
    """Run the supervisor until it is stopped; its exit status."""
    if settings.server.port == 0:
        log.error(
            "server.port 0 (any free port) cannot be shared by %d workers: set a port",
            settings.server.workers,
        )
        return 2
    return asyncio.run(Supervisor(settings, worker_argv(settings, config_file, log_level)).run())


class Supervisor:
    def __init__(self, settings: Settings, argv: list[str]) -> None:
        self.settings = settings
        self.argv = argv
        self.workers: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.signals = 0
        self.exit_code = 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        server = self.settings.server
        log.info(
            "supervisor pid %d: %d workers on %s:%d",
            os.getpid(), server.workers, server.host, server.port,
        )  # fmt: skip
        async with contextlib.AsyncExitStack() as stack:
            try:
                env = await self._services(stack)
            except RuntimeError as exc:  # a shared service could not start
                log.error("%s", exc)
                return 1
            if not self.stopping.is_set():
                slots = [
                    asyncio.create_task(self._keep(slot, env))
                    for slot in range(1, server.workers + 1)
                ]
                await self.stopping.wait()
                await self._stop(slots)
        log.info("supervisor pid %d stopped", os.getpid())
        return self.exit_code

    async def _services(self, stack: contextlib.AsyncExitStack) -> dict[str, str]:
        """Start the store and Redis unless configured; the workers' environment."""
        settings = self.settings
        env = {**os.environ, "TIDINGS_SERVER_WORKERS": "1", "TIDINGS_SERVER_REUSE_PORT": "true"}
        data_dir = Path(settings.server.data_dir)
        if settings.redis.url:  # first: it starts (or fails) in a moment, the store does not
            log.info("redis: redis.url at %s", url_location(str(settings.redis.url)))
        else:
            env["TIDINGS_REDIS_URL"] = await stack.enter_async_context(local_redis(data_dir))
        if settings.mongodb.url:
            log.info("store: mongodb.url at %s", url_location(str(settings.mongodb.url)))
        else:
            env["TIDINGS_MONGODB_URL"] = await stack.enter_async_context(
                embedded_store(data_dir, settings.mongodb.embedded_cache_size)
            )
        return env

    def _on_signal(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            log.info("%s: stopping the workers", name)
            self.stopping.set()
        else:
            log.warning("%s again: killing the workers", name)
            self._send(signal.SIGKILL)

    def _send(self, signum: int) -> None:
        for process in self.workers.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signum)

    async def _spawn(self, slot: int, env: dict[str, str]) -> asyncio.subprocess.Process | None:
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                preexec_fn=die_with_parent(),
                process_group=0,
            )
        except OSError as exc:
            log.error("worker %d could not be started: %s", slot, exc)
            return None
        self.workers[slot] = process
        server = self.settings.server
        log.info("worker %d pid %d started on %s:%d", slot, process.pid, server.host, server.port)
        if self.stopping.is_set():  # the stop came while it was being spawned
            process.terminate()
        return process

    async def _keep(self, slot: int, env: dict[str, str]) -> None:
        """Keep worker `slot` running until the stop; restart it when it dies."""
        loop = asyncio.get_running_loop()
        backoff, short_runs = BACKOFF_MIN, 0
        while not self.stopping.is_set():
            started = loop.time()
            process = await self._spawn(slot, env)
            code = await process.wait() if process else None
            pid = process.pid if process else 0
            if self.stopping.is_set():
                log.info("worker %d pid %d stopped (exit %s)", slot, pid, describe(code))
                return
            short_runs = short_runs + 1 if loop.time() - started < HEALTHY_RUN else 1
            if short_runs == 1:
                backoff = BACKOFF_MIN
            if short_runs >= CRASH_LOOP:
                log.error(
                    "worker %d pid %d exited with %s, %d times in a row within %.0fs of its "
                    "start: stopping",
                    slot, pid, describe(code), short_runs, HEALTHY_RUN,
                )  # fmt: skip
                self.exit_code = 1
                self.stopping.set()
                return
            log.warning(
                "worker %d pid %d exited unexpectedly with %s; restarting it in %.1fs",
                slot, pid, describe(code), backoff,
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _stop(self, slots: list[asyncio.Task[None]]) -> None:
        """SIGTERM every worker; SIGKILL those still running after the drain time."""
        self._send(signal.SIGTERM)
        bound = 2 * self.settings.server.shutdown_timeout + STOP_MARGIN
        _, pending = await asyncio.wait(slots, timeout=bound)
        if pending:
            log.warning("workers still running %.0fs after SIGTERM: killing them", bound)
            self._send(signal.SIGKILL)
            await asyncio.wait(pending)
        for task in slots:
            if not task.cancelled() and task.exception() is not None:
                log.error("worker supervision failed", exc_info=task.exception())
