"""What a subscription has handed to the app: the last id, where its next re-subscribe starts
(`since`), and the ids delivered lately, so that an activity that comes in `missed`, in a
further page and live is handed over once."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

Activity = dict[str, Any]
ZERO_ID = "00000000-0000-7000-8000-000000000000"
"""Older than every activity id: the `since` of a subscription that began on an empty feed."""
RECENT = 32  # a re-subscribe starts where the subscription stood RECENT deliveries ago


class Ledger:
    """Activity ids sort by time (UUIDv7), as the feed does; `last` is the newest delivered.
    `seen` remembers at most `capacity` recent ids.

    Live events can come out of id order (the fanout jobs of a batch finish in any order; an
    activity may be backdated), so one whose event was lost in a disconnect may be below `last`:
    a re-subscribe therefore starts at `since()`, where the subscription stood RECENT deliveries
    ago (or below, if one of them had a lower id), and an id above that not seen yet is new."""

    def __init__(self, last: str | None, capacity: int = 10_000) -> None:
        self.last = last
        self.capacity = capacity
        self._seen: OrderedDict[str, bytes] = OrderedDict()  # id -> fingerprint
        self._recent: deque[str] = deque(maxlen=RECENT)  # min(last before, id) of each delivery

    def seen(self, activity_id: str) -> bool:
        return activity_id in self._seen

    def unchanged(self, activity: Activity) -> bool:
        """Delivered already as it is now: the same event twice (`missed` and live), not an
        update."""
        return self._seen.get(activity["id"]) == fingerprint(activity)

    def sort(self, activities: Iterable[Activity]) -> list[Activity]:
        """Oldest first, without repeats or entries that have no id."""
        unique = {
            a["id"]: a for a in activities if isinstance(a, dict) and isinstance(a.get("id"), str)
        }
        return [unique[key] for key in sorted(unique)]

    def since(self) -> str | None:
        """Where a re-subscribe starts: `last`, or below it where the recent deliveries began."""
        return min((*self._recent, self.last)) if self.last is not None else None

    def is_new(self, activity_id: str) -> bool:
        """Not delivered, and above `since()` (below it, an unseen id is an update of one
        delivered long ago or before a restart)."""
        since = self.since()
        return not self.seen(activity_id) and (since is None or activity_id > since)

    def delivered(self, activity: Activity) -> None:
        """Handed to the app as new."""
        activity_id = activity["id"]
        last = self.last
        self._recent.append(activity_id if last is None or activity_id < last else last)
        self.record(activity)

    def record(self, activity: Activity) -> None:
        activity_id = activity["id"]
        self._seen[activity_id] = fingerprint(activity)
        self._seen.move_to_end(activity_id)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        if self.last is None or activity_id > self.last:
            self.last = activity_id


def fingerprint(activity: Activity) -> bytes:
    text = json.dumps(activity, sort_keys=True, default=str).encode()
    return hashlib.blake2b(text, digest_size=16).digest()
