"""The store: TIDINGS_MONGODB_URL when set, else an embedded SecantusDB child process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from pymongo import MongoClient

from .common import free_port, port_open, wait_until


class Store:
    def __init__(self, workdir: Path, cache_size: str | None = None) -> None:
        self.workdir = workdir
        self.cache_size = cache_size
        self.process: subprocess.Popen[bytes] | None = None
        self.url = os.environ.get("TIDINGS_MONGODB_URL", "")

    @property
    def embedded(self) -> bool:
        return self.process is not None

    def start(self, timeout: float = 60) -> Store:
        if self.url:
            return self
        port = free_port()
        argv = [
            sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
            "--storage-path", str(self.workdir / "store"), "--log-level", "WARNING",
        ]  # fmt: skip
        if self.cache_size:
            argv += ["--cache-size", self.cache_size]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        wait_until(lambda: port_open(port), timeout, what="the embedded store")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def drop_databases(url: str, names: Iterable[str]) -> None:
    """Drop these databases (the ones a test session's servers used)."""
    with MongoClient(url, serverSelectionTimeoutMS=5000) as client:
        for name in sorted(names):
            client.drop_database(name)
