"""The ports the use cases and the fanout jobs see of what carries their updates out."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from .objects import Entry, EntryKey, User
from .reactions import Reaction, Summary


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


class ActiveFeeds(Protocol):
    """Which feeds someone is watching (a socket subscribed on any node) or read lately: a
    push writes them first (fanout/runner.py). A hint: a wrong answer changes only the order in
    which follower feeds are written, never what they hold."""

    async def active(self, feeds: Sequence[str]) -> set[str]:
        """Those of `feeds` that are active, asked in at most one round trip to another
        process; what cannot be asked in time counts as not active."""
        ...


class NoActiveFeeds:
    """Nobody watches anything: a push keeps the follower order."""

    async def active(self, feeds: Sequence[str]) -> set[str]:
        return set()


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


class UserStore(Protocol):
    """Users by id (store/mongo/users.py). Every write is one document's, atomic."""

    async def insert(self, user: User) -> bool:
        """Store a new user; False (storing nothing) when its id is taken."""
        ...

    async def get(self, user_id: str) -> User | None: ...

    async def get_many(self, user_ids: Collection[str]) -> dict[str, User]:
        """The users of `user_ids` that exist, in one query (reference enrichment)."""
        ...

    def held(self, user_ids: Collection[str]) -> dict[str, User] | None:
        """`get_many` answered from memory, when memory holds every one; None otherwise."""
        ...

    async def update(self, user_id: str, data: dict[str, Any], now: datetime) -> User | None:
        """Replace the user's data; None when there is no such user."""
        ...

    async def delete(self, user_id: str) -> bool: ...

    async def insert_many(self, users: Sequence[User], override: bool) -> list[str]:
        """Store new users; those whose id is taken are kept, or replaced with `override`.
        The ids written."""
        ...

    async def delete_many(self, user_ids: Collection[str]) -> None: ...


class EntryStore(Protocol):
    """Collection entries by (collection, id) (store/mongo/collections.py)."""

    async def insert(self, entry: Entry) -> bool:
        """Store a new entry; False (storing nothing) when its id is taken."""
        ...

    async def get(self, key: EntryKey) -> Entry | None: ...

    async def get_many(self, keys: Collection[EntryKey]) -> dict[EntryKey, Entry]:
        """The entries of `keys` that exist, in one query (reference enrichment, select)."""
        ...

    def held(self, keys: Collection[EntryKey]) -> dict[EntryKey, Entry] | None:
        """`get_many` answered from memory, when memory holds every one; None otherwise."""
        ...

    async def update(self, key: EntryKey, data: dict[str, Any], now: datetime) -> Entry | None:
        """Replace the entry's data; None when there is no such entry."""
        ...

    async def upsert_many(self, entries: Sequence[Entry]) -> None:
        """Insert each entry, or replace the data (and owner, when given) of the one of its
        key, keeping its `created_at`. Idempotent: a retry writes the same."""
        ...

    async def delete(self, key: EntryKey) -> bool: ...

    async def delete_many(self, keys: Collection[EntryKey]) -> None: ...


class FollowCounter(Protocol):
    """How many follows a feed has (store/mongo/follows.py)."""

    async def count_of(self, feed: str, followers: bool, groups: Sequence[str] = ()) -> int: ...


class ReactionCounts(Protocol):
    """What the enrichment of a page of activities reads of their reactions
    (store/mongo/reactions.py), each in one query for the whole page: the counters per kind,
    the newest reactions (or children) per kind, optionally only one user's."""

    async def counts_of(self, activity_ids: Sequence[str]) -> dict[str, dict[str, int]]: ...

    async def summaries_of(self, activity_ids: Sequence[str]) -> dict[str, Summary]:
        """The counters and the version of each activity reacted to, in one query."""
        ...

    async def latest_of(
        self,
        parent: Literal["activity_id", "parent"],
        ids: Sequence[str],
        per_kind: int,
        user_id: str | None = None,
        kinds: Sequence[str] | None = None,
    ) -> Mapping[str, Mapping[str, Sequence[Reaction]]]: ...

    async def many(self, reaction_ids: Collection[str]) -> dict[str, Reaction]:
        """The live reactions of `reaction_ids` (`SR:` references), in one query."""
        ...


class ActivityLoader(Protocol):
    """Public activities by (id, origin), in their order, those gone left out
    (store/mongo/entry_reads.py `load`, through the activity cache): `SA:` references."""

    async def load(self, entries: Iterable[tuple[str, str | None]]) -> list[dict[str, Any]]: ...
