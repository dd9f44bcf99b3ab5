"""The client's tests run against real Tidings processes, a real store and real
redis-servers: the main suite's fixtures (tests/integration/conftest.py, tests/support.py)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import server, store, uid, workdir  # noqa: F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "clients/python" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
