"""The embedded store: SecantusDB (MongoDB wire protocol on WiredTiger) as a child process.

Used when no `mongodb.url` is configured, so that `make run` needs no mongod. The child is
started with PR_SET_PDEATHSIG on Linux, so it stops with its parent even after a kill -9, and
the next start (which must wait for WiredTiger's lock on the data directory) can proceed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from ...runtime.processes import die_with_parent, free_port

log = logging.getLogger(__name__)
START_TIMEOUT = 60.0
URL_FILE = "store.url"  # in the data directory while the store runs: for `tidings firehose`


def local_url(port: int) -> str:
    """The URL of an embedded store on this machine's `port`. Retryable writes are off: the store
    keeps a reply for each one (so that a driver's retry is answered, not run again) and, past
    10,000 of them, sorts them all on every write, so a store that has taken a few minutes of
    writes slows down without end. A single local process has no failover for them to cover, and
    a write whose answer is lost is recovered by Tidings itself (a 503, then the client's retry)."""
    return f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"


def running_url(data_dir: Path) -> str | None:
    """The URL of the embedded store that a server on `data_dir` runs, if one does: so that
    the command line reaches the store that `make run` started (a second store cannot open the
    same data directory)."""
    try:
        return (data_dir / URL_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


async def _ping(url: str) -> bool:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=500, connectTimeoutMS=500
    )
    try:
        await client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def embedded_store(data_dir: Path, cache_size: str) -> AsyncIterator[str]:
    """Start SecantusDB on a free loopback port with its data under `data_dir`; yield its URL."""
    try:
        import secantus  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            "no mongodb.url is configured and the embedded store is not installed: "
            "pip install 'tidings[embedded]' (make install does), or set TIDINGS_MONGODB_URL"
        ) from exc
    store_dir = data_dir / "store"
    store_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "store.log"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while True:
        port = free_port()
        with log_path.open("ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "secantus",
                "--host", "127.0.0.1", "--port", str(port),
                "--storage-path", str(store_dir), "--cache-size", cache_size,
                "--log-level", "WARNING",
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True,  # a Ctrl-C is ours to handle: stop the store last
                preexec_fn=die_with_parent(),
            )  # fmt: skip
        url = local_url(port)
        while process.returncode is None and loop.time() < deadline:
            if await _ping(url):
                break
            await asyncio.sleep(0.1)
        if process.returncode is None and loop.time() < deadline:
            break
        if process.returncode is None:
            process.kill()
            raise RuntimeError(f"the embedded store did not start in {START_TIMEOUT:.0f}s")
        # Most often the data directory is still locked by a store that is shutting down.
        if loop.time() >= deadline:
            raise RuntimeError(f"the embedded store exited ({process.returncode}); see {log_path}")
        await asyncio.sleep(0.5)
    log.info(
        "embedded store (SecantusDB) pid %s on port %s, data in %s", process.pid, port, store_dir
    )
    url_file = data_dir / URL_FILE
    url_file.write_text(url + "\n")
    try:
        yield url
    finally:
        url_file.unlink(missing_ok=True)
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.info("embedded store stopped")
