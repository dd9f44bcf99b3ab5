"""Servers shared by the tests of a session, one per configuration.

A test that neither kills, restarts nor reconfigures its server asks the pool for one with its
settings (`pool.get({"TIDINGS_X": "1"})`); the first ask starts it, later asks with the same
settings get the same process. Tests that share a server use fresh ids, so they never see each
other's feeds. At the end every server is stopped.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .redis import RedisServer
from .server import ServerProcess
from .store import Store

Key = tuple[tuple[str, str], ...]


class ServerPool:
    def __init__(self, store: Store, workdir: Path, redis: RedisServer | None = None) -> None:
        self.store, self.workdir, self.redis = store, workdir, redis
        self.servers: dict[tuple[Key, bool], ServerProcess] = {}
        self._lock = threading.Lock()

    def get(self, env: dict[str, str] | None = None, redis: bool = False) -> ServerProcess:
        """The running server with these settings (and the session's Redis, when `redis`)."""
        key = (tuple(sorted((env or {}).items())), redis)
        with self._lock:
            server = self.servers.get(key)
            if server is not None and server.running:
                return server
            redis_url = self._redis_url() if redis else ""
            log = self.workdir / f"pool-{len(self.servers)}.log"
            server = ServerProcess(self.store.url, redis_url=redis_url, env=env, log_path=log)
            self.servers[key] = server.start()
            return server

    def _redis_url(self) -> str:
        if self.redis is None:
            raise RuntimeError("this pool has no Redis")
        return self.redis.url

    def close(self, timeout: float = 2) -> None:
        """Stop every server at once (SIGTERM to all, then wait; SIGKILL after `timeout`: no test
        checks these stops, and a server holding a client's socket open would drain it for
        `server.shutdown_timeout`); the session drops their databases with the others."""
        running = [s for s in self.servers.values() if s.running]
        for server in running:
            assert server.process is not None
            server.process.terminate()
        for server in running:
            server.stop(timeout)
        self.servers.clear()
