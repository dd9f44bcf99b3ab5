"""What the follow modules share: a follow's record, the chunk ids, the bounds of bulk reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId

from ...domain.ids import format_time
from .client import Document
from .feeds import FeedMeta

CHUNK_SIZE = 500
DUPLICATE_KEY = 11000
# Values per `$in` of a bulk read: the embedded store matches each candidate against the whole
# list (2,500 ids in one `$in` took 4 s, in 25 reads of 100 a few ms each).
IN_BATCH = 100
# Sources per aggregation of FollowStore.survey (the embedded store ran parts of 50 faster per
# source than parts of 100), and the most targets it looks the pairs up among in one.
SURVEY_SOURCES = 50
SURVEY_TARGETS = 50
Member = tuple[str, ObjectId]  # (follower feed, its follow's _id)


@dataclass(frozen=True)
class Follow:
    source: str
    target: str
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        """Stream's row: `feed_id` follows `target_id`."""
        return {
            "feed_id": self.source,
            "target_id": self.target,
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
        }


@dataclass(frozen=True)
class FollowRecord:
    id: ObjectId
    source: str
    target: str
    chunk: int
    frontier: str | None = None  # None until the follow is complete
    period: int = 0
    pull: bool = False  # marked as a follow of a pull feed

    def merged_above(self, meta: FeedMeta) -> str | None:
        """The ids of `target`'s own activities above which a reader of `source` merges them
        in (None: it merges nothing in). A follow made in the target's current pull period
        merges what it would have copied and got (its own frontier: the (copy limit + 1)-th
        newest activity of the target when it followed); an older follow holds everything
        up to the start of the period (copied, or backfilled at its end), and merges the rest."""
        if not meta.merged or self.frontier is None:
            return None
        return self.frontier if self.period == meta.period else meta.pull_since


@dataclass(frozen=True)
class Survey:
    counts: dict[str, int]  # source → how many feeds it follows (absent: none)
    found: dict[tuple[str, str], ObjectId]  # (source, target) → its follow, those that exist


@dataclass(frozen=True)
class Started:
    """What FollowStore.follow_many stored: the follows still to complete (with whether each
    is new), per target with new follows its metadata after they were counted, and how many
    feeds each of their sources follows afterwards."""

    follows: list[tuple[FollowRecord, bool]]
    metas: dict[str, FeedMeta]
    counts: dict[str, int]


def record_of(doc: Document) -> FollowRecord:
    """The record of a `follows` document."""
    return FollowRecord(
        id=doc["_id"],
        source=doc["source"],
        target=doc["target"],
        chunk=int(doc.get("chunk", 0)),
        frontier=doc.get("frontier"),
        period=int(doc.get("period", 0)),
        pull="pull_source" in doc,
    )


def chunk_id(target: str, n: int) -> str:
    return f"{target}#{n}"
