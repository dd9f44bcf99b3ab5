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


@dataclass(frozen=True)
class BlobInfo:
    """What is stored beside an uploaded blob."""

    content_type: str
    name: str
    owner: str | None  # the user_id of the token that uploaded it; None: a server token
    size: int


@dataclass(frozen=True)
class Blob:
    info: BlobInfo
    data: bytes


class BlobStore(Protocol):
    """Where uploaded files and images live (store/blobs/: GridFS in the MongoDB, or an
    S3-compatible bucket). Keys are `<kind>/<root>/<variant>` (domain/media.py). A `put` is
    complete once it returns (the store acknowledged it); writing a key that exists keeps
    the first (processed images have keys derived from what they are)."""

    async def put(self, key: str, data: bytes, info: BlobInfo) -> None: ...

    async def get(self, key: str) -> Blob | None: ...

    async def info(self, key: str) -> BlobInfo | None: ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose key starts with `prefix`; how many there were."""
        ...
