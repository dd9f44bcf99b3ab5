"""A local redis-server as a child process, for `tidings serve --workers N` with no `redis.url`.

The workers of one machine need a Redis to share their Socket.IO emits; with the embedded
defaults the supervisor starts this one, without persistence (it only carries pub/sub). Like the
embedded store it is started with PR_SET_PDEATHSIG on Linux, so it stops with the supervisor
even after a kill -9, and in its own process group, so a Ctrl-C at the terminal does not stop it
before the workers have drained.

What it carries reaches every socket, so no other local process may use it: it listens on a Unix
socket only (no TCP port), in a directory that only the supervisor's user may enter, and asks
for a random password made at each start. Both reach the workers in the URL they are given
(`unix://:<password>@<socket>`); the password is written to redis-server's standard input, not
its command line, which any local user can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .processes import die_with_parent

log = logging.getLogger(__name__)
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
SOCKET_NAME = "redis.sock"
MAX_SOCKET_PATH = 100  # bytes: sun_path holds 108 on Linux, 104 on macOS


@contextlib.contextmanager
def _socket_dir(redis_dir: Path) -> Iterator[Path]:
    """A directory for the socket that only this user may enter: `redis_dir/run`, or a fresh
    temporary one when that path is too long for a Unix socket's address."""
    run = redis_dir / "run"
    if len(str(run / SOCKET_NAME).encode()) <= MAX_SOCKET_PATH:
        run.mkdir(mode=0o700, exist_ok=True)
        run.chmod(0o700)  # also when it was made before with other permissions
        yield run
        return
    with tempfile.TemporaryDirectory(prefix="tidings-redis-") as made:  # made 0700
        yield Path(made)


def _config(redis_dir: Path, socket_path: Path, password: str) -> bytes:
    """redis-server's configuration, read from its standard input."""
    lines = [
        'save ""', "appendonly no", "port 0", f'unixsocket "{socket_path}"', "unixsocketperm 700",
        f'dir "{redis_dir}"', f'requirepass "{password}"',
    ]  # fmt: skip
    return "\n".join(lines).encode() + b"\n"


async def _ping(client: aioredis.Redis) -> bool:
    try:
        return bool(await asyncio.wait_for(client.ping(), 0.5))
    except (RedisError, OSError, TimeoutError):
        return False


@contextlib.asynccontextmanager
async def local_redis(data_dir: Path) -> AsyncIterator[str]:
    """Start redis-server on a Unix socket with a random password, working directory
    `data_dir/redis`; yield its URL. Raises RuntimeError when redis-server is not on PATH or
    does not start."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "no redis.url is configured and redis-server is not on PATH: install redis-server "
            "(apt-get install redis-server), or set redis.url (TIDINGS_REDIS_URL)"
        )
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "redis.log"
    with _socket_dir(redis_dir) as run:
        socket_path = run / SOCKET_NAME
        password = secrets.token_urlsafe(32)
        process = await _start(binary, _config(redis_dir, socket_path, password), log_path)
        try:
            await _wait_ready(process, socket_path, password, log_path)
            log.info("redis-server pid %s on %s, log in %s", process.pid, socket_path, log_path)
            yield f"unix://:{password}@{socket_path}?db=0"
        finally:
            await _stop(process)


async def _start(binary: str, config: bytes, log_path: Path) -> asyncio.subprocess.Process:
    with log_path.open("ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            binary, "-",  # the configuration comes on standard input
            stdin=asyncio.subprocess.PIPE, stdout=log_file, stderr=log_file,
            preexec_fn=die_with_parent(),
            process_group=0,
        )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write(config)
    with contextlib.suppress(OSError):
        await process.stdin.drain()
    process.stdin.close()
    return process


async def _wait_ready(
    process: asyncio.subprocess.Process, socket_path: Path, password: str, log_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    client = aioredis.Redis(unix_socket_path=str(socket_path), password=password)
    try:
        while process.returncode is None and loop.time() < deadline:
            if await _ping(client):
                return
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    if process.returncode is None:
        raise RuntimeError(f"redis-server did not start in {START_TIMEOUT:.0f}s; see {log_path}")
    raise RuntimeError(f"redis-server exited ({process.returncode}); see {log_path}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
    log.info("redis-server pid %s stopped (exit code %s)", process.pid, process.returncode)
