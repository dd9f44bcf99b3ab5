"""A local redis-server as a child process, for `tidings serve --workers N` with no `redis.url`.

The workers of one machine need a Redis to share their Socket.IO emits; with the embedded
defaults the supervisor starts this one, on a free loopback port, without persistence (it only
carries pub/sub). Like the embedded store it is started with PR_SET_PDEATHSIG on Linux, so it
stops with the supervisor even after a kill -9, and in its own process group, so a Ctrl-C at the
terminal does not stop it before the workers have drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from .processes import die_with_parent, free_port

log = logging.getLogger(__name__)
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 5


async def _ping(port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 0.5)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), 0.5)
        return answer.startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def local_redis(data_dir: Path) -> AsyncIterator[str]:
    """Start redis-server on a free loopback port, working directory `data_dir/redis`; yield
    its URL. Raises RuntimeError when redis-server is not on PATH or does not start."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "no redis.url is configured and redis-server is not on PATH: install redis-server "
            "(apt-get install redis-server), or set redis.url (TIDINGS_REDIS_URL)"
        )
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "redis.log"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        with log_path.open("ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                binary, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1",
                "--port", str(port), "--dir", str(redis_dir),
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                preexec_fn=die_with_parent(),
                process_group=0,
            )  # fmt: skip
        while process.returncode is None and loop.time() < deadline:
            if await _ping(port):
                break
            await asyncio.sleep(0.05)
        if process.returncode is None and loop.time() < deadline:
            break
        if process.returncode is None:
            process.kill()
            await process.wait()
            raise RuntimeError(
                f"redis-server did not start in {START_TIMEOUT:.0f}s; see {log_path}"
            )
        # Most often another process took the free port first: try another one.
        if attempt == START_ATTEMPTS or loop.time() >= deadline:
            raise RuntimeError(f"redis-server exited ({process.returncode}); see {log_path}")
        await asyncio.sleep(0.2)
    log.info("redis-server pid %s on 127.0.0.1:%s, log in %s", process.pid, port, log_path)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.info("redis-server pid %s stopped (exit code %s)", process.pid, process.returncode)
