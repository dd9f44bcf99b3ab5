"""`pip install .` without the checkout: the wheel, installed into a fresh virtual environment
with the `embedded` extra, gives a `tidings` command that starts on the embedded store with the
defaults packaged inside it, answers /readyz, stores and reads an activity, and serves the
dashboard. One wheel build and one install for the module, from the pip cache (~15 s)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import stream

from tests.support import ROOT, free_port, wait_until
from tidings.config import read_defaults

pytestmark = pytest.mark.integration
INSTALL_TIMEOUT = 240


@dataclass(frozen=True)
class Installed:
    venv: Path
    url: str  # the running `tidings serve` of the wheel

    @property
    def base_url(self) -> str:
        """For stream-python, which keeps the host only when it is `localhost`."""
        return self.url.replace("127.0.0.1", "localhost")


def _run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=_outside_env(), capture_output=True, text=True,
        timeout=INSTALL_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def _outside_env(**extra: str) -> dict[str, str]:
    """The environment of someone who has only the wheel: no TIDINGS_* setting, no path into
    the checkout, not inside the test's virtual environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TIDINGS_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    return {**env, **extra}


def _build_and_install(work: Path) -> Path:
    dist, venv = work / "dist", work / "venv"
    _run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--wheel-dir", dist, cwd=work)
    (wheel,) = dist.glob("tidings-*.whl")
    # The venv gets no pip of its own: this one installs into it (--python), without compiling
    # the dependencies' bytecode (a third of the time).
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet",
         "--no-compile", f"{wheel}[embedded]", cwd=work)  # fmt: skip
    return venv


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("wheel")
    venv = _build_and_install(work)
    port = free_port()
    env = _outside_env(TIDINGS_SERVER_PORT=str(port), TIDINGS_SERVER_DATA_DIR=str(work / "data"))
    log = (work / "serve.log").open("wb")
    process = subprocess.Popen(
        [venv / "bin" / "tidings", "serve"], cwd=work, env=env, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, (work / "serve.log").read_text()[-3000:]
        try:
            return requests.get(url + "/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(ready, 60, 0.1, what="the installed tidings")
        yield Installed(venv, url)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()


def test_the_installed_package_runs_from_the_wheel_alone(installed: Installed) -> None:
    where = _run(installed.venv / "bin" / "python", "-c", "import tidings; print(tidings.__file__)",
                 cwd=installed.venv)  # fmt: skip
    assert Path(where.strip()).is_relative_to(installed.venv)
    assert not Path(where.strip()).is_relative_to(ROOT)
    ready = requests.get(installed.url + "/readyz", timeout=5)
    assert ready.status_code == 200, ready.text


def test_the_installed_server_stores_and_reads_with_the_packaged_credentials(
    installed: Installed,
) -> None:
    auth = read_defaults()["auth"]  # the development key and secret the wheel ships
    client = stream.connect(auth["api_key"], auth["api_secret"], base_url=installed.base_url)
    feed = client.feed("user", "wheel")
    added = feed.add_activity({"actor": "wheel", "verb": "install", "object": "tidings:1"})
    got = feed.get(limit=5)["results"]
    assert [a["id"] for a in got] == [added["id"]]
    assert got[0]["object"] == "tidings:1"


def test_the_installed_server_serves_the_dashboard(installed: Installed) -> None:
    page = requests.get(installed.url + "/dashboard/", timeout=5)
    assert page.status_code == 200 and "<title>Tidings dashboard</title>" in page.text
    for asset in ("dashboard.js", "dashboard.css", "tidings.browser.mjs"):
        got = requests.get(f"{installed.url}/dashboard/{asset}", timeout=5)
        assert got.status_code == 200 and got.content, asset


def test_the_installed_server_serves_its_openapi_document_and_page(installed: Installed) -> None:
    document = requests.get(installed.url + "/api/v1.0/openapi.json", timeout=5)
    assert document.status_code == 200 and document.json()["openapi"] == "3.1.0"
    page = requests.get(installed.url + "/api/v1.0/docs/", timeout=5)  # its template packaged
    assert page.status_code == 200 and 'id="addActivities"' in page.text
