"""The feeds read lately on this node: a bounded, time-limited memory of reads.

A fanout writes the follower feeds someone watches before the others (fanout/runner.py); a feed
read within the last `seconds` counts as watched. At most MAX_FEEDS feeds are remembered (the
oldest read goes first), so a read costs one dictionary move however many feeds are read. Being
wrong costs nothing but order: nothing is skipped because of it.
"""

from __future__ import annotations

import time
from collections import OrderedDict

MAX_FEEDS = 100_000


class RecentReads:
    def __init__(self, seconds: float, max_feeds: int = MAX_FEEDS) -> None:
        self.seconds, self.max_feeds = seconds, max_feeds
        self._read: OrderedDict[str, float] = OrderedDict()  # feed -> when read (monotonic)

    def saw(self, feed: str) -> None:
        """`feed` was read just now."""
        self._read[feed] = time.monotonic()
        self._read.move_to_end(feed)
        if len(self._read) > self.max_feeds:
            self._read.popitem(last=False)

    def __contains__(self, feed: object) -> bool:
        at = self._read.get(feed) if isinstance(feed, str) else None
        return at is not None and at > time.monotonic() - self.seconds

    def since(self, mark: float) -> list[str]:
        """The feeds read after `mark` (a `time.monotonic()`), newest read first: a walk from
        the newest read back to the first older one."""
        found = []
        for feed in reversed(self._read):
            if self._read[feed] <= mark:
                break
            found.append(feed)
        return found
