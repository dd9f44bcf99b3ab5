"""Nobody to tell: what an import is wired with instead of the sockets (historic data sends
no `feed.update`, and the import's process has no sockets anyway)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Quiet:
    """A Broadcaster (domain/events.py) that tells nobody."""

    async def feed_update(self, feeds: Sequence[str], event: dict[str, Any]) -> None:
        return None

    async def pull_update(self, feed: str, event: dict[str, Any]) -> None:
        return None

    async def reaction_event(
        self, activity_id: str, name: str, data: dict[str, Any], version: int
    ) -> None:
        return None

    async def follows_changed(self, source: str, target: str, following: bool) -> None:
        return None
