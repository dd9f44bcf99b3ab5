"""The newest entries of recently read feeds, in memory ("feed heads").

A head is a prefix of a feed: its newest entries `(activity id, origin)`, highest id first, as
read from the store (at most `ENTRIES`), `complete` when that read found the whole feed, and
`filled`: when that read began. Every entry write of this node goes through ActivityStore,
which keeps its heads current: a new entry above the oldest one of a head (or into a complete
head) is put in its place, a removed one is taken out (a prefix with fewer entries is still a
prefix). Other nodes' writes cannot be applied (their entries are not known here): each node
publishes the feeds it wrote on the bus (`HeadsWritten`), and the other nodes drop those heads.

That keeps heads current as fast as Redis carries it, but a message can be lost (an outage, a
node killed between its write and its publish). So what a head may answer is bounded by time,
not by luck: a page (`get`) only from a head whose read began less than `max_staleness` seconds
ago, else the head is read again; a `since` or a follow's copy only from a head whose read began
after the question arrived (`fresh`, store/entry_reads.py). After the bus was down no head read
before it is trusted (`distrust`, on `Subscribed`).

A read is answered from a head only when the head provably holds the answer (`newest`,
`after`): enough entries within the bounds, or the head is the whole feed, or the head reaches
below the bounds' lower end. Anything else (cold, evicted, offsets and pages past the head)
goes to the store. A fill whose read raced this node's writes of the same feed replays them on
what it read (`Fill.changes`: adding what is there already and removing what is not are no-ops,
so it holds them whether its read saw them or not); one that raced another node's write is not
kept (`Fill.dirty`): what that write did is not known here.

Heads live in process memory, not in Redis: measured in bench/reads.py (README), a Redis round
trip per read costs more than the store's index read it would replace on the embedded store,
and a node's memory answers in microseconds. They are bounded by their measured memory
(`max_bytes`, least recently used first out).
"""

from __future__ import annotations

import bisect
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ...bus.base import Bus, LocalBus
from ...bus.messages import HeadsWritten, Subscribed
from ...domain.merge import Bounds

Item = tuple[str, str | None]
Keep = Callable[[Item], bool]
ENTRIES = 150  # entries of a head: a first page of 100 and an offset into it
MAX_STALENESS = 2.0  # seconds (cache.max_staleness_seconds)
_EMPTY_LIST = sys.getsizeof([])
_SAMPLE_ID = "01a24e7f-d0aa-7493-92aa-a93df5e4da23"  # an activity id (what an empty head sizes by)
_SLOT = sys.getsizeof([None]) - _EMPTY_LIST


def item_size(item: Item) -> int:
    """Bytes one entry of a head takes: its tuple, its strings and its slot in the list."""
    origin = item[1]
    return (
        _SLOT + sys.getsizeof(item) + sys.getsizeof(item[0])
        + (sys.getsizeof(origin) if origin is not None else 0)
    )  # fmt: skip


@dataclass
class Head:
    items: list[Item]  # newest first
    complete: bool
    filled: float = float("-inf")  # time.monotonic() when the read of the store began
    unit: int = 0  # measured bytes of one entry (their mean when read): `size` costs nothing

    def __post_init__(self) -> None:
        if not self.unit:
            sample = self.items or [(_SAMPLE_ID, None)]
            self.unit = -(-sum(map(item_size, sample)) // len(sample))

    def size(self) -> int:
        return _EMPTY_LIST + len(self.items) * self.unit

    def newest(self, bounds: Bounds, want: int, keep: Keep | None = None) -> list[Item] | None:
        """The first `want` entries within `bounds` (kept by `keep`), newest first, when this
        head holds them all; None when the store must answer."""
        found = [
            i for i in self.items if bounds.admits(i[0]) and (keep is None or keep(i))
        ]  # fmt: skip
        lower = bounds.lower
        if len(found) >= want or self.complete or (
            lower is not None and self.items and self.items[-1][0] <= lower.value
        ):  # fmt: skip
            return found[:want]
        return None

    def after(self, after: str, want: int, keep: Keep | None = None) -> list[Item] | None:
        """The first `want` entries newer than `after`, oldest first, when this head holds every
        entry newer than `after`."""
        if not (self.complete or (self.items and self.items[-1][0] <= after)):
            return None
        found = [i for i in reversed(self.items) if i[0] > after and (keep is None or keep(i))]
        return found[:want]

    def add(self, item: Item) -> None:
        items = self.items
        if any(i[0] == item[0] for i in items):
            return
        if not self.complete and (not items or item[0] < items[-1][0]):
            return  # below the head: not known to be its place
        at = bisect.bisect_left(items, _Desc(item[0]), key=lambda i: _Desc(i[0]))
        items.insert(at, item)
        if len(items) > ENTRIES:
            del items[ENTRIES:]
            self.complete = False


class _Desc:
    """An id ordered highest first (for bisect on a newest-first list)."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return self.value > other.value


@dataclass
class Fill:
    feed: str
    started: float = field(default_factory=time.monotonic)
    dirty: bool = False
    changes: list[tuple[Item | None, Callable[[Item], bool] | None]] = field(default_factory=list)


@dataclass
class FeedHeads:
    """Heads of at most `max_bytes` of measured memory, least recently used first out (0:
    none kept)."""

    max_bytes: int = 64 << 20
    max_staleness: float = MAX_STALENESS
    hits: int = 0
    misses: int = 0
    bytes: int = 0
    bus: Bus = field(default_factory=lambda: LocalBus(""))  # told which feeds this node wrote
    _heads: OrderedDict[str, Head] = field(default_factory=OrderedDict)
    _sizes: dict[str, int] = field(default_factory=dict)
    _fills: dict[str, list[Fill]] = field(default_factory=dict)
    _trusted_from: float = float("-inf")

    def __post_init__(self) -> None:
        self.bus.on(HeadsWritten, lambda message: self.drop(message.feeds))
        self.bus.on(Subscribed, lambda _: self.distrust())

    def __len__(self) -> int:
        return len(self._heads)

    def get(self, feed: str) -> Head | None:
        """The head of `feed` if its read began less than `max_staleness` seconds ago."""
        return self.fresh(feed, time.monotonic() - self.max_staleness)

    def fresh(self, feed: str, since: float) -> Head | None:
        """The head of `feed` if its read began at `since` or later."""
        head = self._heads.get(feed)
        if head is None or head.filled < max(since, self._trusted_from):
            return None
        self._heads.move_to_end(feed)
        return head

    def was_whole(self, feed: str) -> bool:
        """The last head kept of `feed` (current or not) held the whole feed: it was short then,
        and most likely still is (its next read can be one plain query)."""
        head = self._heads.get(feed)
        return head is not None and head.complete

    def begin(self, feed: str) -> Fill | None:
        """A read of `feed` from the store begins; it may be kept as its head (`end`)."""
        if not self.max_bytes:
            return None
        fill = Fill(feed)
        self._fills.setdefault(feed, []).append(fill)
        return fill

    def end(self, fill: Fill | None, items: list[Item] | None, complete: bool) -> Head | None:
        """The read of `fill` is done (items None: it failed): keep it unless a write of the
        feed came meanwhile. Answers the head read (kept or not: it holds the feed as it was
        when the read began, and this node's writes since)."""
        if fill is None:
            return None
        fills = self._fills.get(fill.feed, [])
        if fill in fills:
            fills.remove(fill)
        if not fills:
            self._fills.pop(fill.feed, None)
        if items is None:
            return None
        head = Head(list(items[:ENTRIES]), complete and len(items) <= ENTRIES, fill.started)
        for added, keep in fill.changes:  # this node's writes during the read, in order
            if added is not None:
                head.add(added)
            elif keep is not None:
                head.items = [i for i in head.items if keep(i)]
        if fill.dirty or (not head.items and not head.complete):
            return head
        self._forget(fill.feed)
        self._heads[fill.feed] = head
        self._sizes[fill.feed] = size = head.size()
        self.bytes += size
        while self.bytes > self.max_bytes and self._heads:
            self._forget(next(iter(self._heads)))
        return head

    def _forget(self, feed: str) -> None:
        if self._heads.pop(feed, None) is not None:
            self.bytes -= self._sizes.pop(feed)

    def _resized(self, feed: str, head: Head) -> None:
        size = head.size()
        self.bytes += size - self._sizes[feed]
        self._sizes[feed] = size

    def added(self, entries: Iterable[tuple[str, Item]]) -> None:
        """(feed, item) entries were inserted by this node."""
        for feed, item in entries:
            for fill in self._fills.get(feed, ()):
                fill.changes.append((item, None))
            head = self._heads.get(feed)
            if head is not None:
                head.add(item)
                self._resized(feed, head)

    def removed(self, feed: str, keep: Callable[[Item], bool]) -> None:
        """Entries of `feed` for which `keep` is false were deleted by this node."""
        for fill in self._fills.get(feed, ()):
            fill.changes.append((None, keep))
        head = self._heads.get(feed)
        if head is None:
            return
        head.items = [i for i in head.items if keep(i)]
        if not head.items and not head.complete:
            self._forget(feed)
        else:
            self._resized(feed, head)

    def drop(self, feeds: Iterable[str]) -> None:
        """Another node wrote these feeds: their heads are no longer known to be current."""
        for feed in feeds:
            for fill in self._fills.get(feed, ()):
                fill.dirty = True
            self._forget(feed)

    async def publish(self, feeds: Iterable[str]) -> None:
        """Tell the other nodes that this node wrote `feeds`."""
        if self.max_bytes:
            wanted = list(dict.fromkeys(feeds))
            if wanted:
                await self.bus.publish(HeadsWritten(wanted))

    def distrust(self) -> None:
        """Answer nothing from what was read until now (drops may have been missed: the bus
        was down); fills under way are not kept either."""
        self._trusted_from = time.monotonic()
        for fills in self._fills.values():
            for fill in fills:
                fill.dirty = True
