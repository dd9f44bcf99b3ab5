"""The ports the use cases and the fanout jobs see of what carries their updates out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class FeedUpdate:
    """A `feed.update` event that `feeds` now hold. `pull`: `feeds` is one pull feed, and the
    event goes to its pull room (the sockets of its followers) instead of its feed room."""

    feeds: Sequence[str]
    event: dict[str, Any]
    pull: bool = False


class Announcer(Protocol):
    """The one step "the feeds now hold these updates" (feeds/announce.py)."""

    async def announce(
        self,
        updates: Sequence[FeedUpdate],
        since: datetime | None = None,
        key: str | None = None,
        *,
        sockets_later: bool = False,
        emitted: Callable[[], None] | None = None,
    ) -> None: ...

    def removal(self, updates: Sequence[FeedUpdate]) -> AbstractAsyncContextManager[None]: ...
