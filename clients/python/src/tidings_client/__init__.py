"""Tidings' asyncio client: REST (Stream's dialect) and live feeds over Socket.IO that
recover by themselves: every activity once, oldest first, across reconnects, server
restarts and resyncs; tokens refreshed through `get_token`."""

from .client import Tidings
from .errors import NotConnected, TidingsError
from .feed import Feed
from .reactions import ReactionWatch
from .storage import JSONFileStorage, MemoryStorage, Storage
from .subscription import Subscription

__all__ = [
    "Feed",
    "JSONFileStorage",
    "MemoryStorage",
    "NotConnected",
    "ReactionWatch",
    "Storage",
    "Subscription",
    "Tidings",
    "TidingsError",
]
