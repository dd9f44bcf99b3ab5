"""redis-server as a child process on a free port, nothing persisted."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from .common import free_port, wait_until


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
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
            self.command(binary), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self.ready, 10, what="redis-server")
        return self

    def command(self, binary: str) -> list[str]:
        return [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir)]  # fmt: skip

    def ask(self, command: bytes) -> bytes:
        """The start of redis-server's answer to an inline command (b"" when unreachable)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.2) as conn:
                conn.sendall(command + b"\r\n")
                return conn.recv(4096)
        except OSError:
            return b""

    def ready(self) -> bool:
        return self.ask(b"PING").startswith(b"+PONG")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
