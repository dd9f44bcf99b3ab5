"""`tidings serve --workers N`: one supervisor, N workers on one port (README "Many nodes").

One cluster for the module, started as an operator would on the embedded defaults: no MongoDB
URL and no Redis URL in the environment, so the supervisor starts its own store and
redis-server and shares them with its two workers. Each worker's /healthz carries its pid in the
`X-Tidings-Pid` header, which tells the workers apart through the shared port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import redis
import requests
import socketio

from harness.common import SERVER_TOKEN, token
from tests.support import API_KEY, API_SECRET, ROOT, free_port, wait_until

WORKERS = 2
WAIT = 15.0  # bound of every wait for an event, seconds


# --------------------------------------------------------------------------- processes


def process_info(pid: int) -> tuple[int, str, list[str]] | None:
    """(parent pid, state, command line) of a live process; None when gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), fields[0], [part.decode(errors="replace") for part in cmdline if part]


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children(parent: int) -> dict[int, list[str]]:
    """The live child processes of `parent`, with their command lines."""
    found = {}
    for pid in all_pids():
        info = process_info(pid)
        if info is not None and info[0] == parent:
            found[pid] = info[2]
    return found


def is_worker(cmdline: list[str]) -> bool:
    return cmdline[1:4] == ["-m", "tidings", "serve"]


def mentioning(text: str) -> dict[int, list[str]]:
    """Live processes whose command line mentions `text` (the test's data dir)."""
    found = {}
    for pid in all_pids():
        info = process_info(pid)
        if info is not None and any(text in part for part in info[2]):
            found[pid] = info[2]
    return found


class Cluster:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir.parent / "cluster.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        self.env = {
            **env,
            "TIDINGS_AUTH_API_KEY": API_KEY,
            "TIDINGS_AUTH_API_SECRET": API_SECRET,
            "TIDINGS_MONGODB_EMBEDDED_CACHE_SIZE": "64M",
            "TIDINGS_SERVER_SHUTDOWN_TIMEOUT": "5",
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Cluster:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tidings", "serve", "--workers", str(WORKERS),
                 "--port", str(self.port), "--data-dir", str(self.data_dir)],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self.ready, 60, 0.1, what=f"the cluster on port {self.port}")
        # Both workers listening: fresh connections reach each of them.
        seen: set[int | None] = set()

        def both() -> bool:
            seen.add(self.answering_pid())
            return len(seen - {None}) >= WORKERS

        wait_until(both, 30, 0.02, what="both workers answering")
        return self

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"supervisor exited with {self.process.returncode}: {self.log()}")
        try:
            return requests.get(self.url + "/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def workers(self) -> dict[int, list[str]]:
        return {pid: cmd for pid, cmd in children(self.pid).items() if is_worker(cmd)}

    def answering_pid(self) -> int | None:
        """The pid of the worker that answers /healthz on a fresh connection."""
        try:
            response = requests.get(
                self.url + "/healthz", timeout=2, headers={"Connection": "close"}
            )
        except requests.RequestException:
            return None
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        return int(response.headers["X-Tidings-Pid"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("cluster") / "data").start()
    yield started
    started.stop()


# --------------------------------------------------------------------------- REST helpers


def feed_url(cluster: Cluster, feed: str) -> str:
    slug, _, user_id = feed.partition(":")
    return f"{cluster.url}/api/v1.0/feed/{slug}/{user_id}/"


HEADERS = {"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"}
PARAMS = {"api_key": API_KEY}


async def post_activity(session: aiohttp.ClientSession, url: str, marker: str) -> dict[str, Any]:
    """POST one activity on a fresh connection (so it may land on any worker)."""
    activity = {"actor": "someone", "verb": "post", "object": marker}
    async with session.post(
        url, json=activity, params=PARAMS, headers={**HEADERS, "Connection": "close"}
    ) as response:
        answer: dict[str, Any] = await response.json()
        assert response.status == 201, answer
        return answer


# --------------------------------------------------------------------------- tests


def test_two_workers_answer_on_the_shared_port(cluster: Cluster) -> None:
    workers = cluster.workers()
    assert len(workers) == WORKERS, (workers, cluster.log())
    seen = {cluster.answering_pid() for _ in range(50)}
    assert seen == set(workers), (seen, workers)


def test_rest_write_then_read_through_the_shared_port(cluster: Cluster) -> None:
    feed = f"user:{uuid.uuid4().hex[:10]}"
    marker = f"photo:{uuid.uuid4().hex[:8]}"
    added = requests.post(
        feed_url(cluster, feed),
        json={"actor": "alice", "verb": "post", "object": marker},
        params=PARAMS,
        headers=HEADERS,
        timeout=10,
    )
    assert added.status_code == 201, added.text
    # Fresh connections, so reads are spread over both workers: every one sees the write.
    for _ in range(6):
        read = requests.get(
            feed_url(cluster, feed),
            params=PARAMS,
            headers={**HEADERS, "Connection": "close"},
            timeout=10,
        )
        assert read.status_code == 200, read.text
        assert [a["id"] for a in read.json()["results"]] == [added.json()["id"]]
        assert read.json()["results"][0]["object"] == marker


async def test_feed_update_reaches_sockets_on_every_worker(cluster: Cluster) -> None:
    """Six WebSocket subscribers and six posts, each on its own connection: the kernel spreads
    them over both workers (all twelve on one worker: odds 2 in 4096), so some events must
    cross from one worker to the other through Redis; every socket must get every post."""
    user = uuid.uuid4().hex[:10]
    feed = f"user:{user}"
    received: list[dict[str, list[str]]] = []
    clients: list[socketio.AsyncClient] = []
    changed = asyncio.Event()
    try:
        for index in range(6):
            sio = socketio.AsyncClient(reconnection=False)
            got: dict[str, list[str]] = {"objects": []}

            async def on_update(data: dict[str, Any], got: dict[str, list[str]] = got) -> None:
                got["objects"] += [activity["object"] for activity in data["new"]]
                changed.set()

            sio.on("feed.update", on_update)
            await sio.connect(
                cluster.url,
                auth={"token": token({"user_id": user})},
                transports=["websocket"],
                wait_timeout=WAIT,
            )
            ack = await sio.call("subscribe", {"feed": feed}, timeout=WAIT)
            assert ack["ok"] is True, (index, ack)
            clients.append(sio)
            received.append(got)

        markers = [f"m:{i}:{uuid.uuid4().hex[:6]}" for i in range(6)]
        async with aiohttp.ClientSession() as session:
            for marker in markers:
                await post_activity(session, feed_url(cluster, feed), marker)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not all(set(markers) <= set(got["objects"]) for got in received):
            remaining = deadline - loop.time()
            if remaining <= 0:
                missing = [sorted(set(markers) - set(got["objects"])) for got in received]
                raise AssertionError(f"events missing per socket after {WAIT}s: {missing}")
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        for got in received:  # once each: the Redis manager does not duplicate an emit
            assert sorted(got["objects"]) == sorted(markers)
    finally:
        for sio in clients:
            if sio.connected:
                await sio.disconnect()


def test_a_killed_worker_is_restarted(cluster: Cluster) -> None:
    before = cluster.workers()
    assert len(before) == WORKERS, (before, cluster.log())
    victim = min(before)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> set[int] | None:
        now = set(cluster.workers())
        return now if len(now) == WORKERS and victim not in now else None

    try:
        now = wait_until(replaced, 30, 0.1, what="a new worker in place of the killed one")
    except TimeoutError as exc:  # say what the supervisor did
        raise AssertionError(cluster.log(tail=20_000)) from exc
    (new_pid,) = now - set(before)
    # The new worker serves: its pid answers on the shared port.
    wait_until(lambda: cluster.answering_pid() == new_pid, 30, 0.02, what=f"pid {new_pid}")
    assert f"pid {victim} exited unexpectedly with code -9" in cluster.log(tail=100_000)


def worker_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (part.decode(errors="replace").partition("=") for part in raw if part)
    return {key: value for key, _, value in pairs}


def test_the_shared_redis_refuses_a_client_without_its_password(cluster: Cluster) -> None:
    """The supervisor's redis-server listens on a Unix socket in a directory only its user may
    enter, and asks for a random password that only the workers are given: another local
    process can neither reach it nor, reaching it, publish forged frames to the sockets."""
    workers = cluster.workers()
    urls = {worker_environ(pid)["TIDINGS_REDIS_URL"] for pid in workers}
    assert len(urls) == 1, urls
    url = urlsplit(urls.pop())
    assert url.scheme == "unix" and url.password, url._replace(netloc="…")
    socket_path = Path(url.path)
    assert socket_path.is_socket(), socket_path
    assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
    # No TCP port: the redis-server's only listener is that socket.
    (redis_pid,) = [p for p, cmd in children(cluster.pid).items() if "redis-server" in cmd[0]]
    tcp = Path("/proc/net/tcp").read_text() + Path("/proc/net/tcp6").read_text()
    inodes = {
        os.readlink(f"/proc/{redis_pid}/fd/{fd}") for fd in os.listdir(f"/proc/{redis_pid}/fd")
    }
    listening = [line for line in tcp.splitlines()[1:] if line.split()[3] == "0A"]
    assert not [n for n in listening if f"socket:[{n.split()[9]}]" in inodes], listening

    anonymous = redis.Redis(unix_socket_path=str(socket_path), protocol=2, socket_timeout=5)
    try:
        refused = redis.exceptions.AuthenticationError
        with pytest.raises(refused, match="Authentication required"):  # NOAUTH
            anonymous.publish("tidings", b"forged")
        with pytest.raises(refused, match=r"invalid username-password pair"):  # WRONGPASS
            redis.Redis(unix_socket_path=str(socket_path), password="guess").ping()
    finally:
        anonymous.close()
    with redis.Redis(unix_socket_path=str(socket_path), password=url.password) as worker_like:
        assert worker_like.ping() is True


def test_sigterm_stops_the_supervisor_and_everything_it_started(cluster: Cluster) -> None:
    assert cluster.process is not None
    started = children(cluster.pid)
    # Two workers, the embedded store and redis-server.
    assert sum(is_worker(cmd) for cmd in started.values()) == WORKERS, (started, cluster.log())
    assert any("secantus" in " ".join(cmd) for cmd in started.values()), started
    assert any("redis-server" in " ".join(cmd) for cmd in started.values()), started

    cluster.process.send_signal(signal.SIGTERM)
    assert cluster.process.wait(30) == 0, cluster.log()

    assert {pid for pid in started if process_info(pid) is not None} == set()
    assert mentioning(str(cluster.data_dir)) == {}
    with pytest.raises(requests.ConnectionError):
        requests.get(cluster.url + "/healthz", timeout=2)
