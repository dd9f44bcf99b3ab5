"""The shared parts of enriched activities, kept across pages (domain/enrichment.py `MadeOf`).

Most of an enriched activity is the same for every reader (its references replaced, its latest
reactions with their users, its counts): only `own_reactions` is the reader's. A kept part is
answered only to a page whose inputs for it are equal to those it was made of (the activity,
the objects it names, its counts and latest reactions, the users of those, the options): the
inputs are compared, not trusted, so a kept part is never stale, and the caches the inputs come
from (and their bounds) decide how current a page is, as without it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ...domain.enrichment import MadeOf

MAX_PARTS = 20_000  # (activity, options) pairs kept, least recently used dropped first


class SharedParts:
    def __init__(self, max_entries: int = MAX_PARTS) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[str, Any], tuple[MadeOf, dict[str, Any]]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, activity_id: str, made_of: MadeOf) -> dict[str, Any] | None:
        key = (activity_id, made_of.options)
        item = self._items.get(key)
        if item is None or item[0] != made_of:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, activity_id: str, made_of: MadeOf, part: dict[str, Any]) -> None:
        key = (activity_id, made_of.options)
        self._items[key] = (made_of, part)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)
