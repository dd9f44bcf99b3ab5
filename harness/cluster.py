"""Three nodes (A, B, C) on one database, one Redis (or Redis Cluster) and a Redis channel of
their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from .redis import RedisServer
from .redis_cluster import RedisClusterServer
from .server import ServerProcess
from .store import Store

REDIS, REDIS_CLUSTER = "redis", "redis-cluster"  # what a cluster of nodes shares
ON_BOTH = (REDIS, REDIS_CLUSTER)  # tests parametrised with `cluster`: on each in turn
PRESENCE_TTL = 3.0  # seconds a node's raid members outlive it
CLUSTER_ENV = {
    "TIDINGS_FANOUT_BATCH_SIZE": "100",
    "TIDINGS_FANOUT_CONCURRENCY": "2",
    "TIDINGS_FANOUT_LEASE_SECONDS": "3",
    "TIDINGS_FANOUT_POLL_SECONDS": "0.5",
    "TIDINGS_REALTIME_PRESENCE_TTL": str(PRESENCE_TTL),
    "TIDINGS_REALTIME_PUBLISH_RATE": "1",
    "TIDINGS_REALTIME_PUBLISH_BURST": "10",
    # A node a test stops cleanly drains its open sockets this long, not the default 10 s.
    "TIDINGS_SERVER_SHUTDOWN_TIMEOUT": "2",
}


@dataclass
class Cluster:
    nodes: dict[str, ServerProcess]
    database: str

    def __getitem__(self, name: str) -> ServerProcess:
        return self.nodes[name]


def start_all(nodes: list[ServerProcess]) -> None:
    """Start (or restart, on their own ports) several nodes at once."""
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda node: node.start(), nodes))


def run_cluster(
    store: Store, redis_server: RedisServer | RedisClusterServer,
    mongo: MongoClient[dict[str, Any]], workdir: Path, env: dict[str, str], name: str,
) -> Iterator[Cluster]:  # fmt: skip
    """Nodes A, B and C on one database of their own, one Redis and a channel of their own
    (other tests share the session's redis-server); killed and dropped afterwards."""
    database = f"t_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    env = {**env, "TIDINGS_REDIS_CHANNEL": f"{name}-{uuid.uuid4().hex[:8]}"}
    nodes = {
        node: ServerProcess(
            store.url,
            database=database,
            redis_url=redis_server.url,
            env=env,
            log_path=workdir / f"{name}-{node}.log",
        )
        for node in "ABC"
    }
    start_all(list(nodes.values()))
    yield Cluster(nodes, database)
    for process in nodes.values():
        process.kill()
    mongo.drop_database(database)


def all_running(cluster: Cluster) -> Cluster:
    """`cluster`, every node of it running again (a test may have killed one)."""
    dead = [n for n in cluster.nodes.values() if not n.running]
    if dead:
        start_all(dead)
    return cluster
