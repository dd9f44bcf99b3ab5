"""The session's services, shared by every test: one store, one redis-server, a pool of servers
keyed by configuration, a three-node cluster (on the redis-server, or on a Redis Cluster for
the tests that ask), and the clients the tests drive them with.

Tests that neither kill, restart nor reconfigure their server take one from `pool` (or
`server`, the pool's default one); tests that do start their own with `spawn`. Every database
a server of the session used is dropped at the end.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import stream
from pymongo import MongoClient

from harness.cluster import (
    CLUSTER_ENV,
    REDIS,
    REDIS_CLUSTER,
    Cluster,
    all_running,
    run_cluster,
)
from harness.common import API_KEY, API_SECRET
from harness.pool import ServerPool
from harness.redis import RedisServer
from harness.redis_cluster import RedisClusterServer
from harness.server import DATABASES, ServerProcess, Spawn
from harness.sqs import MotoServer
from harness.store import Store, drop_databases
from harness.webhooks import Receiver
from tests.integration.nodes import NodeSubscriber, Sub

Doc = dict[str, Any]
INTEGRATION = ("tests/integration", "clients/python")


# The longest modules, longest first: run first, so that the two workers (a module each at a
# time, `--dist loadfile`) end together instead of one waiting on the other's last long module.
LONGEST_FIRST = (
    "test_js_sdk.py", "test_write_completion.py", "test_fanout_durability.py",
    "test_stream_js_suites.py", "test_group_batches.py", "test_fanout_active_first.py",
    "test_migrations.py", "test_hybrid_fanout.py", "test_fanout_faults.py",
    "test_fanout_budget.py", "test_openapi_fuzz.py", "test_protocol_suite.py",
    "test_reaction_counts.py", "test_import_export.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(part in str(item.fspath) for part in INTEGRATION):
            item.add_marker(pytest.mark.integration)
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))


# --------------------------------------------------------------------------- services


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(workdir: Path) -> Iterator[RedisClusterServer]:
    """A Redis Cluster of three masters, started the first time a test of the session asks."""
    cluster = RedisClusterServer(workdir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def store(workdir: Path) -> Iterator[Store]:
    """The session's store; at the end every database a server of the session used is dropped
    (or, when the store is the session's own embedded one, its files are deleted)."""
    started = Store(workdir).start()
    yield started
    if started.embedded:  # ours alone: its files go, faster than dropping database by database
        started.stop()
        shutil.rmtree(started.data_dir, ignore_errors=True)
    else:
        drop_databases(started.url, DATABASES)


@pytest.fixture(scope="session")
def mongo(store: Store) -> Iterator[MongoClient[Doc]]:
    client: MongoClient[Doc] = MongoClient(store.url, tz_aware=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def pool(store: Store, workdir: Path, redis_server: RedisServer) -> Iterator[ServerPool]:
    """Running servers by configuration, shared by every test that asks with the same one."""
    servers = ServerPool(store, workdir, redis_server)
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def server(pool: ServerPool) -> ServerProcess:
    """One Tidings node shared by the tests that need nothing special; tests use fresh ids."""
    return pool.get()


@pytest.fixture
def spawn(store: Store, mongo: MongoClient[Doc], tmp_path: Path) -> Iterator[Spawn]:
    """Starts servers of this test's own (own database unless given); kills them at the end of
    the test and drops their databases then, so that the store stays small for the tests after
    (a store holding every test's data slows down all of them)."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str], database: str | None = None) -> ServerProcess:
        log = tmp_path / f"server-{len(started)}.log"
        node = ServerProcess(store.url, database=database, env=env, log_path=log)
        started.append(node)
        return node.start()

    yield start
    for node in started:
        node.kill()
    for database in {node.database for node in started}:
        mongo.drop_database(database)


@pytest.fixture(scope="session")
def three_nodes(
    store: Store, redis_server: RedisServer, mongo: MongoClient[Doc], workdir: Path
) -> Iterator[Cluster]:
    """Nodes A, B and C of the session, on one database and one Redis channel."""
    yield from run_cluster(store, redis_server, mongo, workdir, CLUSTER_ENV, "cluster")


@pytest.fixture(scope="session")
def three_nodes_on_redis_cluster(
    store: Store, redis_cluster: RedisClusterServer, mongo: MongoClient[Doc], workdir: Path
) -> Iterator[Cluster]:
    """Nodes A, B and C of the session on the Redis Cluster (`redis+cluster://`), each user
    allowed 4 reads a minute (so that a test sees them counted for the whole cluster)."""
    env = {**CLUSTER_ENV, "TIDINGS_LIMITS_READS_PER_USER": "4"}
    yield from run_cluster(store, redis_cluster, mongo, workdir, env, "rcluster")


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """The session's three nodes, each running (a test before may have killed one): on the
    redis-server, or on the Redis Cluster for a test parametrised with
    `pytest.mark.parametrize("cluster", [REDIS, REDIS_CLUSTER], indirect=True)`."""
    on = getattr(request, "param", REDIS)
    fixture = "three_nodes_on_redis_cluster" if on == REDIS_CLUSTER else "three_nodes"
    return all_running(request.getfixturevalue(fixture))


# --------------------------------------------------------------------------- clients


@pytest.fixture
def uid() -> str:
    """A fresh user id, so tests sharing one server never see each other's feeds."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def client(server: ServerProcess) -> stream.client.StreamClient:
    return stream.connect(API_KEY, API_SECRET, base_url=server.base_url)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def subs() -> AsyncIterator[list[Sub]]:
    created: list[Sub] = []
    yield created
    await asyncio.gather(*(s.close() for s in created), return_exceptions=True)


@pytest.fixture
def node_subs() -> Iterator[list[NodeSubscriber]]:
    created: list[NodeSubscriber] = []
    yield created
    for sub in created:
        sub.close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """Webhook receivers a test starts (and appends): stopped at its end."""
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.status = 200  # let hanging requests go
        receiver.stop()


@pytest.fixture
def nodes() -> Iterator[list[ServerProcess]]:
    """Server processes a test starts (and appends): killed at its end. (Modules whose nodes
    need more set-up define their own.)"""
    started: list[ServerProcess] = []
    yield started
    for node in started:
        node.kill()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """moto's server (SQS and S3 on one local port), for the module."""
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A webhook receiver of the module's own: firehose tests point their servers at it."""
    started = Receiver().start()
    yield started
    started.stop()
