"""The store: TIDINGS_MONGODB_URL when set, else an embedded SecantusDB child process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from pymongo import MongoClient

from tidings.store.mongo.embedded import local_url

from .common import die_with_parent, free_port, port_open, wait_until


class Store:
    """`start()` answers at once when `url` (by default TIDINGS_MONGODB_URL) names a store;
    else it starts SecantusDB with its data and log under `workdir`."""

    def __init__(
        self, workdir: Path, cache_size: str | None = None, url: str | None = None
    ) -> None:
        self.workdir = workdir
        self.cache_size = cache_size
        self.process: subprocess.Popen[bytes] | None = None
        self.url = os.environ.get("TIDINGS_MONGODB_URL", "") if url is None else url

    @property
    def embedded(self) -> bool:
        """Whether this is a SecantusDB started here (and so its files are ours)."""
        return self.process is not None

    @property
    def data_dir(self) -> Path:
        return self.workdir / "store"

    def start(self, timeout: float = 60) -> Store:
        if self.url:
            return self
        port = free_port()
        argv = [
            sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
            "--storage-path", str(self.data_dir), "--log-level", "WARNING",
        ]  # fmt: skip
        if self.cache_size:
            argv += ["--cache-size", self.cache_size]
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "store.log").open("ab") as out:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )  # fmt: skip
        self.url = local_url(port)
        wait_until(lambda: self._up(port), timeout, 0.1, what="the embedded store")
        return self

    def _up(self, port: int) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the embedded store exited ({self.process.returncode})")
        return port_open(port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@contextlib.asynccontextmanager
async def embedded_store(workdir: Path, cache_size: str) -> AsyncIterator[str]:
    """An embedded store of its own for the duration (whatever TIDINGS_MONGODB_URL says): its
    URL."""
    store = Store(workdir, cache_size, url="")
    await asyncio.to_thread(store.start)
    try:
        yield store.url
    finally:
        await asyncio.to_thread(store.stop)


def drop_databases(url: str, names: Iterable[str]) -> None:
    """Drop these databases (the ones a test session's servers used)."""
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    with client:
        for name in sorted(names):
            client.drop_database(name)
