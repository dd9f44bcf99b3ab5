"""`python -m tidings serve` as a child process on a free port, on its own database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Protocol

import requests

from .common import API_KEY, API_SECRET, ROOT, free_port, wait_until

TIDINGS = [sys.executable, "-m", "tidings"]  # the command line, before its subcommand
SERVE = [*TIDINGS, "serve"]
DATABASES: set[str] = set()  # every database a ServerProcess of this process was given


def server_env(
    store_url: str, database: str, redis_url: str = "", port: int | None = None,
    api_key: str = API_KEY, api_secret: str = API_SECRET,
) -> dict[str, str]:  # fmt: skip
    """The environment of a server: this one's, without any TIDINGS_* of its own, plus the
    store, Redis, the app's key and secret (and the port, when given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update({
        "TIDINGS_MONGODB_URL": store_url,
        "TIDINGS_MONGODB_DATABASE": database,
        "TIDINGS_REDIS_URL": redis_url,
        "TIDINGS_AUTH_API_KEY": api_key,
        "TIDINGS_AUTH_API_SECRET": api_secret,
    })  # fmt: skip
    if port is not None:
        env["TIDINGS_SERVER_PORT"] = str(port)
    return env


class ServerProcess:
    """One Tidings node. `env` adds to (and overrides) the defaults of the tests."""

    def __init__(
        self,
        store_url: str,
        database: str | None = None,
        redis_url: str = "",
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.database = database or f"t_{uuid.uuid4().hex[:12]}"
        DATABASES.add(self.database)
        self.env = {
            **server_env(store_url, self.database, redis_url, self.port),
            "TIDINGS_FANOUT_POLL_SECONDS": "0.5",
            # a feed's fanout mode does not hang on how fast this machine's store is measured
            # to be while the tests run (the tests of the time budget set their own bounds)
            "TIDINGS_FANOUT_MIN_PULL_FOLLOWERS": "1000",
            **(env or {}),
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """For stream-python, which keeps the host only when it is `localhost`."""
        return f"http://localhost:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60) -> ServerProcess:
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [*SERVE, "--host", "127.0.0.1"], cwd=ROOT, env=self.env, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self.ready, timeout, 0.1, what=f"tidings on port {self.port}")
        return self

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"server exited with {self.process.returncode}")
        try:
            return requests.get(self.url + "/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        """kill -9: no shutdown of any kind."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode if self.process else None


class Spawn(Protocol):
    """The `spawn` fixture: start a server of the test's own (own database unless given)."""

    def __call__(self, env: dict[str, str], database: str | None = None) -> ServerProcess: ...
