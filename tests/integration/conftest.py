from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import stream

from tests.integration.nodes import http, mongo, node_subs, subs  # noqa: F401  (fixtures)
from tests.support import API_KEY, API_SECRET, RedisServer, ServerProcess, Store

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def store(workdir: Path) -> Iterator[Store]:
    started = Store(workdir).start()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def server(store: Store, workdir: Path) -> Iterator[ServerProcess]:
    """One Tidings node shared by the tests that need nothing special; tests use fresh ids."""
    process = ServerProcess(store.url, log_path=workdir / "server.log").start()
    yield process
    process.stop()


@pytest.fixture
def uid() -> str:
    """A fresh user id, so tests sharing one server never see each other's feeds."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def client(server: ServerProcess) -> stream.client.StreamClient:
    return stream.connect(API_KEY, API_SECRET, base_url=server.base_url)


def token(claims: dict[str, object]) -> str:
    return jwt.encode(claims, API_SECRET, algorithm="HS256")


SERVER_TOKEN = token({"resource": "*", "action": "*", "feed_id": "*"})
