"""Enriched reads (`enrich/feed/…`, `enrich/activities/`): a page of activities with its
references replaced by their objects and its reactions attached (domain/enrichment.py).

The page is loaded whole, one query per kind of thing, whatever its size: the activities its
`SA:` references name (through the activity cache), then the counters and versions of every
activity on it, then at once the reactions it names (`SR:`), the latest and the reading user's
reactions of the activities whose version the reaction cache does not hold
(store/memory/reaction_cache.py), then the latest and own children of the reactions found
(only of those that have children), then, at once, the users (of `SU:` references and of
every reaction shown) and the collection entries. Never one query per activity; and the
lookups by key (versions, users, entries) of concurrent reads are one query per event-loop
tick (store/memory/coalesce.py). What memory holds is answered without a wait: a page whose
objects and reactions are all in memory is enriched in one go, and its reactions are shown in
forms kept across pages (store/memory/reaction_cache.py `ShownReactions`), and the part of each
activity that every reader sees alike is kept too (store/memory/enriched_parts.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any

from ..domain.enrichment import (
    KeptParts,
    Loaded,
    Options,
    References,
    ShownWith,
    enrich_activity,
    shown_with,
)
from ..domain.ports import ActivityLoader, EntryStore, ReactionCounts, UserStore
from ..domain.reactions import LATEST_CHILDREN, MAX_DEPTH, Reaction
from ..store.memory.reaction_cache import ReactionCache

Latest = Mapping[str, Mapping[str, Sequence[Reaction]]]


class Enricher:
    def __init__(
        self,
        users: UserStore,
        entries: EntryStore,
        activities: ActivityLoader,
        reactions: ReactionCounts,
        cache: ReactionCache,
        shown: ShownWith = shown_with,
        kept: KeptParts | None = None,
    ) -> None:
        self.activities, self.reactions, self.cache = activities, reactions, cache
        self.users, self.entries, self.shown, self.kept = users, entries, shown, kept

    async def page(self, activities: Sequence[dict[str, Any]], options: Options) -> list[Any]:
        """A flat feed's page, or `activities/`'s answer, enriched."""
        loaded = await self._load(activities, options)
        return [enrich_activity(a, loaded, options) for a in activities]

    async def groups(self, groups: Sequence[dict[str, Any]], options: Options) -> list[Any]:
        """An aggregated or notification feed's page: the activities of all its groups
        enriched together, in one load."""
        loaded = await self._load([a for g in groups for a in g["activities"]], options)
        return [
            {**g, "activities": [enrich_activity(a, loaded, options) for a in g["activities"]]}
            for g in groups
        ]

    async def _load(self, page: Sequence[Mapping[str, Any]], options: Options) -> Loaded:
        refs = References()
        for activity in page:
            refs.add(activity)
        nested: list[dict[str, Any]] = []
        if refs.activities:
            nested = await self.activities.load((i, None) for i in sorted(refs.activities))
            for activity in nested:
                refs.add(activity, with_activities=False)
        ids = list(dict.fromkeys(str(a["id"]) for a in (*page, *nested) if "id" in a))
        loaded = Loaded(
            activities={a["id"]: a for a in nested}, shown_with=self.shown, kept=self.kept
        )
        await self._load_reactions(loaded, ids, refs, options)
        shown = [*_all(loaded.latest), *_all(loaded.own), *loaded.reactions.values()]
        await self._load_children(loaded, shown, options)
        shown += [*_all(loaded.children), *_all(loaded.own_children or {})]
        users = refs.users | {r.user_id for r in shown}
        held_users, held_entries = self.users.held(users), self.entries.held(refs.entries)
        work: dict[str, Awaitable[Any]] = {}
        if held_users is None:
            work["users"] = self.users.get_many(users)
        if held_entries is None:
            work["entries"] = self.entries.get_many(refs.entries)
        found = await _gathered(work)
        loaded.users = found["users"] if held_users is None else held_users
        loaded.entries = found["entries"] if held_entries is None else held_entries
        return loaded

    async def _load_reactions(
        self, loaded: Loaded, ids: list[str], refs: References, options: Options
    ) -> None:
        """The counters and versions, then at once the named reactions, the latest and the
        user's own (each from the cache when it holds the activity's version)."""
        summaries = await self.reactions.summaries_of(ids) if options.reactions else {}
        loaded.counts = {i: s.counts for i, s in summaries.items()}
        # an activity whose counters are all 0 has no reactions to show
        reacted = {i: s.version for i, s in summaries.items() if any(s.counts.values())}
        work: dict[str, Awaitable[Any]] = {}
        if refs.reactions:
            work["reactions"] = self.reactions.many(refs.reactions)
        if options.recent:
            loaded.latest = self._latest(reacted, options, None, work, "latest")
        if options.own and options.user_id is not None:
            loaded.own = self._latest(reacted, options, options.user_id, work, "own")
        found = await _gathered(work)
        loaded.reactions = found.get("reactions", {})

    def _latest(
        self,
        versions: Mapping[str, int],
        options: Options,
        user_id: str | None,
        work: dict[str, Awaitable[Any]],
        name: str,
    ) -> dict[str, Mapping[str, Sequence[Reaction]]]:
        """The newest `recent_limit + 1` reactions per kind (one more: is there a `next`?) of
        each activity, `user_id`'s only when given: those the cache holds now, and the read of
        the rest added to `work` as `name` (which adds them to the answer when awaited)."""
        per_kind = options.recent_limit + 1
        question = (user_id, per_kind, options.kinds)
        found: dict[str, Mapping[str, Sequence[Reaction]]] = {}
        missing = []
        for activity_id, version in versions.items():
            cached = self.cache.get(activity_id, question, version)
            if cached is None:
                missing.append(activity_id)
            else:
                found[activity_id] = cached

        async def read() -> None:
            read = await self.reactions.latest_of(
                "activity_id", missing, per_kind, user_id, options.kinds
            )
            for activity_id in missing:
                found[activity_id] = read.get(activity_id, {})
                self.cache.put(activity_id, question, versions[activity_id], found[activity_id])

        if missing:
            work[name] = read()
        return found

    async def _load_children(self, loaded: Loaded, shown: list[Reaction], options: Options) -> None:
        """The latest children (and, with `withOwnChildren`, the reading user's) of the shown
        reactions that have some, then theirs, down the nesting: one query per level (two
        with own children), of the reactions that have children only."""
        children: dict[str, Mapping[str, Sequence[Reaction]]] = {}
        own: dict[str, Mapping[str, Sequence[Reaction]]] = {}
        user_id = options.user_id if options.own_children else None
        level = shown
        for _ in range(MAX_DEPTH - 1):
            parents = [r.id for r in level if any(r.children_counts.values())]
            parents = [p for p in dict.fromkeys(parents) if p not in children]
            if not parents:
                break
            work = [self.reactions.latest_of("parent", parents, LATEST_CHILDREN)]
            if user_id is not None:  # as many per kind as the latest reactions
                per_kind = options.recent_limit
                work.append(self.reactions.latest_of("parent", parents, per_kind, user_id))
            found = await asyncio.gather(*work)
            children.update(found[0])
            own.update(found[1] if len(found) > 1 else {})
            level = [*_all(found[0]), *(_all(found[1]) if len(found) > 1 else ())]
        loaded.children = children
        if options.own_children:
            loaded.own_children = own


def _all(found: Latest) -> Iterable[Reaction]:
    return (r for kinds in found.values() for items in kinds.values() for r in items)


async def _gathered(work: Mapping[str, Awaitable[Any]]) -> dict[str, Any]:
    """The answers of `work` by name: one awaited alone, more at once (a gather costs tasks
    and a turn of the loop, which a page all in memory has no need of)."""
    if not work:
        return {}
    if len(work) == 1:
        [(name, one)] = work.items()
        return {name: await one}
    return dict(zip(work, await asyncio.gather(*work.values()), strict=True))
