"""Putting stored activities in feeds, as an add does its own feed and `to` feeds (and an
activity_to_targets its added targets): entries, pull marks, fanout jobs, then the
announcement. A pull feed gets no fanout job for a new activity: readers of its follower feeds
merge it in (feeds/reads.py), and its live update goes once to its pull room. An activity dated
at or before the newest one a pull feed had (back-dated, or a repeat) is copied into its
followers as a push feed's would be: some of them do not merge it in.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..domain.activities import Activity
from ..domain.events import feed_update
from ..domain.ports import FeedUpdate
from ..metrics import INSERT_TO_EMIT
from ..store.mongo.activities import StoredActivity
from ..store.mongo.entry_writes import Entry
from ..store.mongo.feeds import PULL, FeedMeta
from .context import FeedContext
from .modes import ModeSwitches

Pulled = set[tuple[str, str]]  # (pull feed, activity id): merged into its followers, not copied


class Placing:
    def __init__(self, ctx: FeedContext) -> None:
        self.ctx = ctx
        self.modes = ModeSwitches(ctx)

    async def place(
        self, new: Sequence[Activity], feeds: dict[str, list[str]], started: float
    ) -> None:
        """Put stored activities in `feeds` (by activity id) directly, as an add does its own
        feed and `to` feeds: entries, pull marks, fanout jobs, then the live events."""
        metas = await self.ctx.follows.meta.get_many(
            f for targets in feeds.values() for f in targets
        )
        pulled = await self._pulled(new, feeds, metas)
        await self.ctx.activities.insert_entries([
            Entry(f, a.id, pulled=metas[f].period if (f, a.id) in pulled else None)
            for a in new for f in feeds[a.id]
        ])  # fmt: skip
        await self._settle(pulled, metas)
        for activity in new:
            sources = [
                f for f in feeds[activity.id] if metas[f].slots and (f, activity.id) not in pulled
            ]
            if sources:
                job = await self.ctx.jobs.create("add", activity.id, sources)
                self.ctx.runner.start(job)
        # The switch point follows the measured fanout rate: a feed added to may be due for a
        # switch though its follower count did not change.
        self.modes.added_to(metas.values())

        def emitted() -> None:
            INSERT_TO_EMIT.labels("direct").observe(time.perf_counter() - started)

        updates = _added_events(new, feeds, pulled)
        await self.ctx.announcer.announce(
            updates, _arrival(started), sockets_later=True, emitted=emitted
        )

    async def _pulled(
        self, new: Sequence[Activity], feeds: dict[str, list[str]], metas: dict[str, FeedMeta]
    ) -> Pulled:
        """Which new entries of pull feeds are merged into their followers: those above the
        highest id the feed had (the others are back-dated, or repeats: they are copied)."""
        highest: dict[str, str] = {}
        for activity in new:
            for f in feeds[activity.id]:
                if metas[f].slots:
                    highest[f] = max(highest.get(f, ""), activity.id)
        before = {f: await self.ctx.follows.meta.raise_max(f, top) for f, top in highest.items()}
        pulled: Pulled = set()
        for activity in new:
            for f in feeds[activity.id]:
                if not metas[f].pulls:
                    continue
                if activity.id > before[f]:
                    pulled.add((f, activity.id))
                else:  # a repeat of one merged in before: copied now
                    await self.ctx.activities.unmark_pulled(f, activity.id)
        return pulled

    async def _settle(self, pulled: Pulled, metas: dict[str, FeedMeta]) -> None:
        """A pull feed that started going back to push while its entries were written: those
        are copied too (the backfill may have passed them)."""
        if not pulled:
            return
        now = await self.ctx.follows.meta.get_many(f for f, _ in pulled)
        for f, activity_id in list(pulled):
            if now[f].mode != PULL or now[f].period != metas[f].period:
                pulled.discard((f, activity_id))
                await self.ctx.activities.unmark_pulled(f, activity_id)

    async def fan_out_again(self, stored: StoredActivity, owners: Sequence[str]) -> None:
        sources = sorted(stored.reach(owners))
        held = await self.ctx.activities.entries_of(sources, stored.id)
        metas = await self.ctx.follows.meta.get_many(sources)
        _, fanned = fanned_sources(sources, held, metas)
        if fanned:
            self.ctx.runner.start(await self.ctx.jobs.create("add", stored.id, fanned))


def fanned_sources(
    sources: Sequence[str], held: dict[str, Entry], metas: dict[str, FeedMeta]
) -> tuple[set[str], list[str]]:
    """The pull feeds among `sources`, and the sources whose followers hold copies of the
    activity: every follower of a push feed does; a pull feed's followers hold copies only of
    what was not merged into them in the current pull period."""
    pull = {s for s in sources if metas[s].pulls}
    merged_only = {s for s in pull if s in held and metas[s].merges(held[s].pulled)}
    return pull, [s for s in sources if metas[s].slots and s not in merged_only]


def _added_events(
    new: Sequence[Activity], feeds: dict[str, list[str]], pulled: Pulled
) -> list[FeedUpdate]:
    """The feed.update of each feed that got activities directly (an add's feed and its `to`
    feeds), and of each pull feed whose followers merge them in (its pull room's event)."""
    by_feed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_pull_feed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for activity in new:
        for feed in feeds[activity.id]:
            if (feed, activity.id) in pulled:
                by_pull_feed[feed].append(activity.public(origin=feed))
            else:
                by_feed[feed].append(activity.public())
    return [FeedUpdate([f], feed_update(f, new=a)) for f, a in by_feed.items()] + [
        FeedUpdate([f], feed_update(f, new=a), pull=True) for f, a in by_pull_feed.items()
    ]


def _arrival(started: float) -> datetime:
    """The wall-clock time of `started` (a perf_counter reading)."""
    return datetime.now(UTC) - timedelta(seconds=time.perf_counter() - started)
