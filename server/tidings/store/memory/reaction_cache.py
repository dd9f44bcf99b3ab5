"""The latest reactions of activities, kept in memory and proved current by a version.

Every write to an activity's reactions raises the activity's version in `reaction_counts`
once it is done (store/mongo/reactions.py), and an enriched read reads the versions of its
page first (one query it makes anyway, for the counts). An entry cached at version v is
answered only to a read that found the activity still at v: the reactions it holds were read
after v was, so they are at least as new as v. A write cut short between its change and its
version (a crash) could leave an entry behind: entries are also dropped after `max_age`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from ...domain.enrichment import shown_with
from ...domain.objects import User
from ...domain.reactions import Reaction

Kinds = Mapping[str, Sequence[Reaction]]
MAX_ENTRIES = 20_000  # (activity, question) pairs kept, least recently used dropped first
MAX_SHOWN = 50_000  # reactions kept as shown (a few hundred bytes each)
# How long an entry may be answered at all: its version proves it current, so this only
# bounds what a write cut short before its version (a crash) could leave behind.
VERSIONED_MAX_AGE = 60.0


class ReactionCache:
    """`(activity id, question) -> (version, reactions by kind)`, where the question says
    which reactions (whose, how many per kind, which kinds)."""

    def __init__(self, max_age: float, max_entries: int = MAX_ENTRIES) -> None:
        self.max_age, self.max_entries = max_age, max_entries
        self._items: OrderedDict[tuple[str, Hashable], tuple[int, float, Kinds]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, activity_id: str, question: Hashable, version: int) -> Kinds | None:
        key = (activity_id, question)
        item = self._items.get(key)
        if item is None or item[0] != version or item[1] < time.monotonic() - self.max_age:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[2]

    def put(self, activity_id: str, question: Hashable, version: int, found: Kinds) -> None:
        """Keep what was read after the activity was seen at `version`."""
        key = (activity_id, question)
        self._items[key] = (version, time.monotonic(), found)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)


class ShownReactions:
    """Reactions without children as enriched reads show them (with their user), kept across
    pages and made final by `seal` (the HTTP layer encodes each once: an enriched page is
    mostly its reactions). A kept form is answered only for the very same reaction and user
    objects it was made of: those come from the caches above and the user cache, and are
    replaced, never changed, when what they hold changes, so a kept form is never stale."""

    def __init__(self, seal: Callable[[dict[str, Any]], Any], max_entries: int = MAX_SHOWN):
        self.seal, self.max_entries = seal, max_entries
        self._items: OrderedDict[str, tuple[Reaction, User | None, Any]] = OrderedDict()

    def __call__(self, reaction: Reaction, user: User | None) -> Any:
        item = self._items.get(reaction.id)
        if item is not None and item[0] is reaction and item[1] is user:
            self._items.move_to_end(reaction.id)
            return item[2]
        body = self.seal(shown_with(reaction, user))
        self._items[reaction.id] = (reaction, user, body)
        self._items.move_to_end(reaction.id)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)
        return body
