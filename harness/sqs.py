"""moto's server mode: a real SQS wire protocol on a free port, as a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from .common import free_port, wait_until


class MotoServer:
    """moto's server mode: a real SQS wire protocol on a free port."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, **AWS_ENV}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip

        def up() -> bool:
            try:
                return requests.get(self.url + "/moto-api/", timeout=1).status_code < 500
            except requests.RequestException:
                return False

        wait_until(up, 30, 0.1, what="moto's server")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
