"""Ordered reads that cost what they return, on any store: index range reads in time windows.

The embedded store answers a query with a filter and a sort by fetching every document the
filter matches and sorting them in Python: only a range on the last field of a compound index
(after equalities on the fields before it) narrows what it fetches, and a `limit` does not.
So "the newest 25 entries of a feed" costs the whole feed there. Both kinds of key these reads
order by sort by time (activity ids are UUIDv7 of the activity's time; follows are ordered by
ObjectId), so a newest-first read is done as range reads over time windows going back from the
upper bound, the first one second wide, each next one 8 times wider, until enough documents are
found: the cost is what is returned plus one window's overshoot (documents written in a burst
all fall in one window: they cost as before). On MongoDB the same queries are plain index range
scans; a read that reaches far back costs more round trips (each cheap): 1 s to 10 years back
is 10 windows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from ...domain.ids import EPOCH, id_floor, id_time
from ...domain.merge import Bound, Bounds

Document = dict[str, Any]
Keep = Callable[[Document], bool]
FIRST_WINDOW = timedelta(seconds=1)
GROWTH = 8
# A window that would start before this is the last one: it reaches down to the lower bound.
OLDEST = EPOCH + timedelta(days=1)


@dataclass(frozen=True)
class Keys:
    """How a key field maps to time: the lowest key at a time, and the time of a key."""

    floor: Callable[[datetime], Any]
    time: Callable[[Any], datetime]


ACTIVITY_IDS = Keys(id_floor, id_time)
OBJECT_IDS = Keys(ObjectId.from_datetime, lambda oid: oid.generation_time)


def _range(lower: Bound | None, upper: Bound | None) -> Document:
    ops: Document = {}
    if lower is not None:
        ops["$gte" if lower.inclusive else "$gt"] = lower.value
    if upper is not None:
        ops["$lte" if upper.inclusive else "$lt"] = upper.value
    return ops


async def _window(
    collection: AsyncCollection[Document],
    query: Document,
    field: str,
    lower: Bound | None,
    upper: Bound | None,
    direction: int,
    want: int,
    projection: Document | None,
    keep: Keep | None,
) -> list[Document]:
    window = dict(query)
    if ops := _range(lower, upper):
        window[field] = ops
    cursor = collection.find(window, projection).sort(field, direction)
    if keep is None:
        return await cursor.limit(want).to_list()
    return [doc for doc in await cursor.to_list() if keep(doc)][:want]


async def newest_first(
    collection: AsyncCollection[Document],
    query: Document,
    field: str,
    keys: Keys,
    bounds: Bounds,
    want: int,
    projection: Document | None = None,
    keep: Keep | None = None,
) -> list[Document]:
    """Up to `want` documents matching `query` with `field` within `bounds`, highest first.
    `query` must be equalities on the fields of an index that `field` comes next in. `keep`
    filters documents on the client (then each window is read whole: windows stay small)."""
    found: list[Document] = []
    if want <= 0 or bounds.empty:
        return found
    upper = bounds.upper
    now = datetime.now(UTC)
    at = now if upper is None else min(keys.time(upper.value), now)
    width = FIRST_WINDOW
    while len(found) < want:
        start = at - width if at - OLDEST > width else OLDEST
        if start <= OLDEST or (
            bounds.lower is not None and keys.floor(start) <= bounds.lower.value
        ):
            lower, last = bounds.lower, True
        else:
            lower, last = Bound(keys.floor(start), True), False
        found += await _window(
            collection, query, field, lower, upper, DESCENDING, want - len(found), projection, keep
        )
        if last:
            break
        upper = Bound(keys.floor(start), False)
        at, width = start, width * GROWTH
    return found


async def oldest_first(
    collection: AsyncCollection[Document],
    query: Document,
    field: str,
    keys: Keys,
    after: Any,
    want: int,
    projection: Document | None = None,
    keep: Keep | None = None,
) -> list[Document]:
    """Up to `want` documents matching `query` with `field` greater than `after`, lowest
    first; windows grow forward from `after` until they pass the present (the last one is
    open: it holds what is dated in the future)."""
    found: list[Document] = []
    lower = Bound(after, False)
    now = datetime.now(UTC)
    at = max(keys.time(after), OLDEST)
    width = FIRST_WINDOW
    while want > len(found):
        end = at + width if now - at > width else now
        upper, last = (None, True) if end >= now else (Bound(keys.floor(end), False), False)
        found += await _window(
            collection, query, field, lower, upper, ASCENDING, want - len(found), projection, keep
        )
        if last:
            break
        lower = Bound(keys.floor(end), True)
        at, width = end, width * GROWTH
    return found
