"""The newest entries of recently read feeds, in memory (issue 12, "feed heads").

A head is a prefix of a feed: its newest entries `(activity id, origin)`, highest id first, as
read from the store (at most `ENTRIES`), `complete` when that read found the whole feed. Every
entry write of this node goes through ActivityStore, which keeps its heads current: a new entry
above the oldest one of a head (or into a complete head) is put in its place, a removed one is
taken out (a prefix with fewer entries is still a prefix). Other nodes' writes cannot be applied
(their entries are not known here): each node publishes the feeds it wrote through the Redis
link (`{"k": "heads", "feeds": [...]}`), and the other nodes drop those heads; after a Redis
outage (`resync`) every head is dropped, since drops may have been missed.

A read is answered from a head only when the head provably holds the answer (`newest`,
`after`): enough entries within the bounds, or the head is the whole feed, or the head reaches
below the bounds' lower end. Anything else (cold, evicted, offsets and pages past the head)
goes to the store. A fill whose read raced this node's writes of the same feed replays them on
what it read (`Fill.changes`: adding what is there already and removing what is not are no-ops,
so it holds them whether its read saw them or not); one that raced another node's write is not
kept (`Fill.dirty`): what that write did is not known here.

Heads live in process memory, not in Redis: measured in bench/reads.py (README), a Redis round
trip per read costs more than the store's index read it would replace on the embedded store,
and a node's memory answers in microseconds.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from ...domain.merge import Bounds

Item = tuple[str, str | None]
Keep = Callable[[Item], bool]
OnDrop = Callable[[list[str]], Awaitable[None]]
ENTRIES = 150  # entries of a head: a first page of 100 and an offset into it


@dataclass
class Head:
    items: list[Item]  # newest first
    complete: bool

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
    dirty: bool = False
    changes: list[tuple[Item | None, Callable[[Item], bool] | None]] = field(default_factory=list)


@dataclass
class FeedHeads:
    """At most `max_feeds` heads, least recently used first out (0: none kept)."""

    max_feeds: int = 10_000
    hits: int = 0
    misses: int = 0
    on_drop: OnDrop | None = None  # tells the other nodes which feeds this node wrote
    _heads: OrderedDict[str, Head] = field(default_factory=OrderedDict)
    _fills: dict[str, list[Fill]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._heads)

    def get(self, feed: str) -> Head | None:
        head = self._heads.get(feed)
        if head is not None:
            self._heads.move_to_end(feed)
        return head

    def begin(self, feed: str) -> Fill | None:
        """A read of `feed` from the store begins; it may be kept as its head (`end`)."""
        if not self.max_feeds:
            return None
        fill = Fill(feed)
        self._fills.setdefault(feed, []).append(fill)
        return fill

    def end(self, fill: Fill | None, items: list[Item] | None, complete: bool) -> None:
        """The read of `fill` is done (items None: it failed): keep it unless a write of the
        feed came meanwhile."""
        if fill is None:
            return
        fills = self._fills.get(fill.feed, [])
        if fill in fills:
            fills.remove(fill)
        if not fills:
            self._fills.pop(fill.feed, None)
        if items is None or fill.dirty:
            return
        head = Head(list(items[:ENTRIES]), complete and len(items) <= ENTRIES)
        for added, keep in fill.changes:  # this node's writes during the read, in order
            if added is not None:
                head.add(added)
            elif keep is not None:
                head.items = [i for i in head.items if keep(i)]
        if not head.items and not head.complete:
            return
        self._heads[fill.feed] = head
        self._heads.move_to_end(fill.feed)
        while len(self._heads) > self.max_feeds:
            self._heads.popitem(last=False)

    def added(self, entries: Iterable[tuple[str, Item]]) -> None:
        """(feed, item) entries were inserted by this node."""
        for feed, item in entries:
            for fill in self._fills.get(feed, ()):
                fill.changes.append((item, None))
            head = self._heads.get(feed)
            if head is not None:
                head.add(item)

    def removed(self, feed: str, keep: Callable[[Item], bool]) -> None:
        """Entries of `feed` for which `keep` is false were deleted by this node."""
        for fill in self._fills.get(feed, ()):
            fill.changes.append((None, keep))
        head = self._heads.get(feed)
        if head is None:
            return
        head.items = [i for i in head.items if keep(i)]
        if not head.items and not head.complete:
            del self._heads[feed]

    def drop(self, feeds: Iterable[str]) -> None:
        """Another node wrote these feeds: their heads are no longer known to be current."""
        for feed in feeds:
            for fill in self._fills.get(feed, ()):
                fill.dirty = True
            self._heads.pop(feed, None)

    async def publish(self, feeds: Iterable[str]) -> None:
        """Tell the other nodes that this node wrote `feeds`."""
        if self.on_drop is not None and self.max_feeds:
            wanted = list(dict.fromkeys(feeds))
            if wanted:
                await self.on_drop(wanted)

    def clear(self) -> None:
        for fills in self._fills.values():
            for fill in fills:
                fill.dirty = True
        self._heads.clear()
