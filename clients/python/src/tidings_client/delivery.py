"""What a subscription has handed to the app: the last id (the `since` of its next
re-subscribe) and the ids delivered lately, so that an activity that comes in `missed`, in a
REST page and live is handed over once."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

Activity = dict[str, Any]
ZERO_ID = "00000000-0000-7000-8000-000000000000"
"""Older than every activity id: the `since` of a subscription that began on an empty feed."""


class Ledger:
    """Activity ids sort by time (UUIDv7), as the feed does; `last` is the newest delivered.
    `seen` remembers at most `capacity` recent ids."""

    def __init__(self, last: str | None, capacity: int = 10_000) -> None:
        self.last = last
        self.capacity = capacity
        self._seen: OrderedDict[str, bytes] = OrderedDict()  # id -> fingerprint

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

    def is_new(self, activity_id: str) -> bool:
        """Newer than everything delivered: the app has not had it."""
        return not self.seen(activity_id) and (self.last is None or activity_id > self.last)

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
