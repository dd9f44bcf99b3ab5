"""Merged reads (hybrid fanout: pull feeds): a follower feed reads its own entries merged with the
recent activities of the pull feeds it follows. Pure functions over streams of `(id, payload)`
sorted by activity id; no I/O.

Activity ids sort by time, so "newest first" is "highest id first". An id held by several
streams is returned once, as found in the first stream that holds it (the follower's own
entries come first: what it holds materialised wins over what is merged in).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
Item = tuple[str, T]


@dataclass(frozen=True)
class Bound:
    """One end of an id range: `value` itself included or not."""

    value: str
    inclusive: bool

    def below(self, other: Bound | None) -> Bound:
        """The stricter of two upper bounds."""
        if other is None or self.value < other.value:
            return self
        if other.value < self.value:
            return other
        return self if not self.inclusive else other

    def above(self, other: Bound | None) -> Bound:
        """The stricter of two lower bounds."""
        if other is None or self.value > other.value:
            return self
        if other.value > self.value:
            return other
        return self if not self.inclusive else other


@dataclass(frozen=True)
class Bounds:
    """An id range: `lower` < (or <=) id < (or <=) `upper`; None is unbounded."""

    lower: Bound | None = None
    upper: Bound | None = None

    @classmethod
    def of(
        cls,
        id_lt: str | None = None,
        id_lte: str | None = None,
        id_gt: str | None = None,
        id_gte: str | None = None,
    ) -> Bounds:
        """Stream's paging parameters; when several bound one end, the strictest counts."""
        upper = lower = None
        if id_lt is not None:
            upper = Bound(id_lt, False).below(upper)
        if id_lte is not None:
            upper = Bound(id_lte, True).below(upper)
        if id_gt is not None:
            lower = Bound(id_gt, False).above(lower)
        if id_gte is not None:
            lower = Bound(id_gte, True).above(lower)
        return cls(lower, upper)

    def above(self, floor: str) -> Bounds:
        """Narrowed to ids greater than `floor` too."""
        return Bounds(Bound(floor, False).above(self.lower), self.upper)

    def admits(self, activity_id: str) -> bool:
        if self.lower is not None and (
            activity_id < self.lower.value
            or (activity_id == self.lower.value and not self.lower.inclusive)
        ):
            return False
        return not (
            self.upper is not None
            and (
                activity_id > self.upper.value
                or (activity_id == self.upper.value and not self.upper.inclusive)
            )
        )

    @property
    def empty(self) -> bool:
        if self.lower is None or self.upper is None:
            return False
        if self.lower.value != self.upper.value:
            return self.lower.value > self.upper.value
        return not (self.lower.inclusive and self.upper.inclusive)


def _distinct(items: Iterator[Item[T]]) -> Iterator[Item[T]]:
    """Drop repeats of an id; they are adjacent in a merged sorted stream, the first one wins."""
    last: str | None = None
    for item in items:
        if item[0] != last:
            last = item[0]
            yield item


def merge_newest_first(
    streams: Sequence[Iterable[Item[T]]],
    bounds: Bounds = Bounds(),
    offset: int = 0,
    limit: int | None = None,
) -> list[Item[T]]:
    """The page `offset`, `limit` of the distinct ids of all `streams` (each newest first)
    within `bounds`, newest first. To page correctly each stream needs only its own first
    `offset + limit` items within the bounds."""
    # heapq.merge is stable: among equal ids the earlier stream's item comes first.
    merged = heapq.merge(*streams, key=lambda item: item[0], reverse=True)
    admitted = (item for item in merged if bounds.admits(item[0]))
    stop = None if limit is None else offset + limit
    return list(islice(_distinct(admitted), offset, stop))


def merge_oldest_first(
    streams: Sequence[Iterable[Item[T]]], after: str, limit: int
) -> list[Item[T]]:
    """Up to `limit` distinct ids newer than `after`, oldest first, from `streams` (each oldest
    first): what a reconnecting client missed."""
    merged = heapq.merge(*streams, key=lambda item: item[0])
    admitted = (item for item in merged if item[0] > after)
    return list(islice(_distinct(admitted), limit))
