"""The harness's launchers under the names the tests have always imported them by."""

from harness.common import API_KEY, API_SECRET, ROOT, free_port, wait_until
from harness.redis import RedisServer
from harness.server import ServerProcess
from harness.store import Store

__all__ = [
    "API_KEY",
    "API_SECRET",
    "ROOT",
    "RedisServer",
    "ServerProcess",
    "Store",
    "free_port",
    "wait_until",
]
