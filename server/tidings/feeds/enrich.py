"""Enriched reads (`enrich/feed/…`, `enrich/activities/`): a page of activities with its
references replaced by their objects and its reactions attached (domain/enrichment.py).

The page is loaded whole, one query per kind of thing, whatever its size: the activities its
`SA:` references name (through the activity cache), then at once the reactions it names
(`SR:`), the counts, the latest and the reading user's reactions of every activity on it, then
the latest and own children of the reactions found (only of those that have children), then,
at once, the users (of `SU:` references and of every reaction shown) and the collection
entries. Never one query per activity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any

from ..domain.enrichment import Loaded, Options, References, enrich_activity
from ..domain.ports import ActivityLoader, EntryStore, ReactionCounts, UserStore
from ..domain.reactions import LATEST_CHILDREN, Reaction

Latest = Mapping[str, Mapping[str, Sequence[Reaction]]]


class Enricher:
    def __init__(
        self,
        users: UserStore,
        entries: EntryStore,
        activities: ActivityLoader,
        reactions: ReactionCounts,
    ) -> None:
        self.users, self.entries = users, entries
        self.activities, self.reactions = activities, reactions

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
        loaded = Loaded(activities={a["id"]: a for a in nested})
        await self._load_reactions(loaded, ids, refs, options)
        shown = [*_all(loaded.latest), *_all(loaded.own), *loaded.reactions.values()]
        await self._load_children(loaded, shown, options)
        shown += [*_all(loaded.children), *_all(loaded.own_children or {})]
        users = refs.users | {r.user_id for r in shown}
        loaded.users, loaded.entries = await asyncio.gather(
            _or_empty(users, self.users.get_many), _or_empty(refs.entries, self.entries.get_many)
        )
        return loaded

    async def _load_reactions(
        self, loaded: Loaded, ids: list[str], refs: References, options: Options
    ) -> None:
        """The named reactions, the counts, the latest and the user's own, at once."""
        per_kind = options.recent_limit + 1  # one more: is there a `next`?
        latest_of, kinds = self.reactions.latest_of, options.kinds
        work: dict[str, Awaitable[Any]] = {}
        if refs.reactions:
            work["reactions"] = self.reactions.many(refs.reactions)
        if options.counts and ids:
            work["counts"] = self.reactions.counts_of(ids)
        if options.recent and ids:
            work["latest"] = latest_of("activity_id", ids, per_kind, kinds=kinds)
        if options.own and options.user_id is not None and ids:
            work["own"] = latest_of("activity_id", ids, per_kind, options.user_id, kinds)
        for name, value in zip(work, await asyncio.gather(*work.values()), strict=True):
            setattr(loaded, name, value)

    async def _load_children(self, loaded: Loaded, shown: list[Reaction], options: Options) -> None:
        parents = list(dict.fromkeys(r.id for r in shown if any(r.children_counts.values())))
        user_id = options.user_id
        work: dict[str, Awaitable[Any]] = {}
        if parents:
            work["children"] = self.reactions.latest_of("parent", parents, LATEST_CHILDREN)
        if options.own_children:
            loaded.own_children = {}
            if parents and user_id is not None:
                work["own_children"] = self.reactions.latest_of(
                    "parent", parents, LATEST_CHILDREN, user_id
                )
        for name, value in zip(work, await asyncio.gather(*work.values()), strict=True):
            setattr(loaded, name, value)


def _all(found: Latest) -> Iterable[Reaction]:
    return (r for kinds in found.values() for items in kinds.values() for r in items)


async def _or_empty(keys: Any, get_many: Any) -> Any:
    return await get_many(keys) if keys else {}
