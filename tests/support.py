"""Real services for the tests: redis-server, the store, and Tidings server processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key"
API_SECRET = "test-secret-0123456789abcdef-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._ready, 10, what="redis-server")
        return self

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Store:
    """The store the tests use: TIDINGS_MONGODB_URL when set, else an embedded SecantusDB."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.url = os.environ.get("TIDINGS_MONGODB_URL", "")

    def start(self) -> Store:
        if self.url:
            return self
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
             "--storage-path", str(self.workdir / "store"), "--log-level", "WARNING"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        wait_until(lambda: _port_open(port), 60, what="the embedded store")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


class ServerProcess:
    """`python -m tidings serve` as a child process, on a free port."""

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
        self.env = {
            **os.environ,
            "TIDINGS_MONGODB_URL": store_url,
            "TIDINGS_MONGODB_DATABASE": self.database,
            "TIDINGS_REDIS_URL": redis_url,
            "TIDINGS_AUTH_API_KEY": API_KEY,
            "TIDINGS_AUTH_API_SECRET": API_SECRET,
            "TIDINGS_SERVER_PORT": str(self.port),
            "TIDINGS_FANOUT_POLL_SECONDS": "0.5",
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

    def start(self, timeout: float = 60) -> ServerProcess:
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tidings", "serve", "--host", "127.0.0.1"],
            cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
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
