"""The ports the use cases and the fanout jobs see of what carries their updates out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from .reactions import Reaction


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


class ReactionCounts(Protocol):
    """What the enrichment of a page of activities reads of their reactions
    (store/mongo/reactions.py), each in one query for the whole page: the counters per kind,
    the newest reactions (or children) per kind, optionally only one user's."""

    async def counts_of(self, activity_ids: Sequence[str]) -> dict[str, dict[str, int]]: ...

    async def latest_of(
        self,
        parent: Literal["activity_id", "parent"],
        ids: Sequence[str],
        per_kind: int,
        user_id: str | None = None,
        kinds: Sequence[str] | None = None,
    ) -> Mapping[str, Mapping[str, Sequence[Reaction]]]: ...
