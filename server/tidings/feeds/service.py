"""What clients ask of feeds, whatever the transport: add, remove, follow, unfollow, read.

Writes go as docs/architecture.md tells: the activity and the entries of its own feed and `to` feeds
are stored, then the fanout job, then the caller answers; events and the job run after that,
but a small fanout is waited for before the answer (fanout/completion.py). Every write enters
through a method marked `@completes` (runtime/background.py): once started it runs to its end
as a task of `writes`, whatever happens to the socket or request that asked for it.
Placing new activities in feeds is feeds/placing.py's, updates feeds/updates.py's, follows
feeds/following.py's; every "the feeds now hold it" goes through feeds/announce.py.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ..auth import Grant, authorize_add
from ..domain.activities import Activity, Change, Limits, parse_activities
from ..domain.errors import FeedConfigError, InputError
from ..domain.events import feed_update
from ..domain.feeds import FeedId
from ..domain.ports import FeedUpdate
from ..fanout.completion import Completion
from ..runtime.background import TaskSet, completes
from ..runtime.faults import fault_point
from ..store.mongo.activities import StoredActivity
from ..store.mongo.entry_reads import Page
from ..store.mongo.follows import Follow
from .context import FeedContext
from .following import FollowService
from .placing import Placing, fanned_sources
from .reads import Reads
from .updates import Updates


@dataclass(frozen=True)
class Missed:
    activities: list[dict[str, Any]]
    more: bool


class FeedService:
    def __init__(self, ctx: FeedContext, reads: Reads, writes: TaskSet) -> None:
        self.ctx, settings = ctx, ctx.settings
        self.writes = writes  # the writes under way, drained at shutdown before the runner
        self.settings, self.activities, self.follows = settings, ctx.activities, ctx.follows
        self.jobs, self.runner, self.announcer = ctx.jobs, ctx.runner, ctx.announcer
        self.reads = reads
        self.follow_service = FollowService(ctx)
        self.placing = Placing(ctx)
        self.updates = Updates(ctx, self.placing)
        announcer, bounds = ctx.announcer, settings.activities
        fanout = settings.fanout
        self.completion = Completion(
            self._follower_feeds, fanout.sync_max_feeds, fanout.sync_budget_ms
        )
        max_bytes = announcer.firehose.activity_bytes(bounds.max_bytes)
        self.limits = Limits(  # an activity too big for a firehose endpoint is refused too
            settings.feeds.keys(), max_bytes, bounds.max_to,
            bounds.max_batch, bounds.max_batch_bytes, bounds.max_future_seconds,
        )  # fmt: skip

    @completes
    async def add_body(
        self, feed: FeedId, body: object, grant: Grant
    ) -> tuple[list[dict[str, Any]], bool]:
        """An add as a client sends it (`POST feed/…`'s body, the socket's `publish`): one
        activity, or `{"activities": [...]}` (the batch flag answered). Authorised first, then
        validated whole, then `add`: nothing is stored of a refused one."""
        grant.require("feed", "write", feed)
        batch = isinstance(body, dict) and "activities" in body and "actor" not in body
        added = await self.add(feed, parse_activities(body, self.limits), grant, batch)
        return added, batch

    @completes
    async def add(
        self, feed: FeedId, new: Sequence[Activity], grant: Grant, batch: bool = False
    ) -> list[dict[str, Any]]:
        """Store activities added to `feed`; once this returns, they are never lost.

        Authorised whole before anything is stored: `grant` must allow writing
        `feed` and every `to` feed (or the entry carries a feed token that does), and may not
        replace what another feed published unless it may write that feed too (a server token
        may). `batch` names refused fields as in a batch add."""
        grant.require("feed", "write", feed)
        authorize_add(grant, new, str(self.settings.auth.api_secret), self.settings.feeds, batch)
        started = time.perf_counter()
        origin = str(feed)
        feeds = {a.id: list(dict.fromkeys((origin, *a.to))) for a in new}
        self._check_groupable(new, feeds, batch)
        async with self.completion.awaited():
            await self.activities.save(new, origin, grant.may_write)
            await self.placing.place(new, feeds, started)
        return [a.public() for a in new]

    @completes
    async def add_to_many(self, feeds: Sequence[FeedId], activity: Activity, grant: Grant) -> None:
        """feed/add_to_many/: the one activity added to each feed (the same id in all), as an
        add to each would, but in one activity write, one entries write and one fanout job
        whatever the feed count. Every feed and `to` feed is authorised before anything."""
        for feed in feeds:
            grant.require("feed", "write", feed)
        authorize_add(grant, [activity], str(self.settings.auth.api_secret), self.settings.feeds)
        started = time.perf_counter()
        owners = list(dict.fromkeys(str(f) for f in feeds))
        placed = {activity.id: list(dict.fromkeys((*owners, *activity.to)))}
        self._check_groupable([activity], placed, batch=False)
        async with self.completion.awaited():
            await self.activities.save_to_many(activity, owners)
            await self.placing.place([activity], placed, started)

    def _check_groupable(
        self, new: Sequence[Activity], feeds: dict[str, list[str]], batch: bool
    ) -> None:
        """Refuse, before anything is stored, an activity that an aggregated or notification
        feed it is added to (or names in `to`) cannot group: its format does not render for
        it (FeedConfigException). A follower feed that gets it later groups it on its own."""
        for index, activity in enumerate(new):
            for feed in feeds[activity.id]:
                group = self.settings.feeds.get(feed.partition(":")[0])
                if group is None or group.aggregation is None:
                    continue
                try:
                    group.aggregation.group_of(activity.public())
                except FeedConfigError as exc:
                    field = f"activities[{index}]" if batch else "activity"
                    raise FeedConfigError(
                        exc.detail, {field: [f"does not fit the aggregation_format of {feed}"]}
                    ) from None

    async def _follower_feeds(self, feeds: Collection[str]) -> dict[str, int]:
        """How many feeds follow each of `feeds` (their follower counters)."""
        metas = await self.follows.meta.get_many(feeds)
        return {feed: meta.followers for feed, meta in metas.items()}

    async def follow_count(self, feed: FeedId, followers: bool, groups: Sequence[str]) -> int:
        return await self.follows.count_of(str(feed), followers, groups)

    @completes
    async def remove(self, feed: FeedId, activity_id: str | None, foreign_id: str | None) -> None:
        """Remove by id or by foreign id what `feed` put there: from `feed`, the `to` feeds it
        named and every follower feed of those. An activity the feed does not hold changes
        nothing."""
        origin = str(feed)
        if foreign_id is not None:
            found = await self.activities.find_by_foreign_id(origin, foreign_id)
        else:
            stored = await self.activities.get(activity_id or "")
            held = stored is not None and await self.activities.holds(origin, stored.id)
            found = [stored] if stored is not None and held else []
        async with self.completion.awaited():
            for stored in found:
                await self._remove_one(origin, stored)

    async def _remove_one(self, feed: str, stored: StoredActivity) -> None:
        """Ownership is per feed (store/mongo/activities.py): `feed` loses the activity, and so do
        the `to` feeds it named that no other owner named, and their followers; the tombstone
        (which stops every fanout of it) only when no owner is left.

        Crash safety: the removal's fanout job is written before any entry is deleted, and
        `feed` stays an owner until its entries are gone. A crash anywhere in between leaves
        the activity in `feed`, where a retried DELETE finds it again and does it all again
        (every step is idempotent), while the job's takeover clears the follower feeds. The
        firehose's `deleted` messages are written just before the entries go, leased to this
        node and sent once they are gone: a removal that fails or dies after that still sends
        them (any node does, once their lease runs out), and one run again writes the same."""
        own = feed in stored.owners
        others = await self._live_owners(stored, feed)
        kept = stored.reach(others)
        named = stored.owners.get(feed, ()) if own else ()
        sources = list(dict.fromkeys([feed, *(f for f in named if f not in kept)]))
        held = await self.activities.entries_of(sources, stored.id)
        metas = await self.follows.meta.get_many(sources)
        pull, fanned = fanned_sources(sources, held, metas)
        job = None
        if fanned:
            silent = [s for s in fanned if s in pull]
            job = await self.jobs.create("remove", stored.id, fanned, stored.foreign_id, silent)
        fault_point("remove.between_steps")
        if own and not others:
            await self.activities.mark_removed(stored.id)
            await self.jobs.cancel("add", stored.id)
        elif own and await self.jobs.cancel("add", stored.id):
            # Jobs are per activity, not per owner: the other owners' fanout starts again
            # (entries are idempotent; it announces only what it adds).
            await self.placing.fan_out_again(stored, others)
        foreign = [stored.foreign_id] if stored.foreign_id else []
        updates = [
            FeedUpdate(
                [s], feed_update(s, deleted=[stored.id], deleted_foreign_ids=foreign), s in pull
            )
            for s in sources
        ]
        async with self.announcer.removal(updates):
            await self.activities.remove_entries(sources, stored.id)
            fault_point("remove.after_entries")
            if own:
                await self.activities.remove_owner(stored.id, feed)
            if job is not None:
                self.runner.start(job)

    async def _live_owners(self, stored: StoredActivity, besides: str) -> list[str]:
        """The owners other than `besides` that still hold the activity they added (an owner
        whose removal a crash cut short after its entries went is no owner any more)."""
        others = [owner for owner in stored.owners if owner != besides]
        if not others:
            return []
        held = await self.activities.entries_of(others, stored.id)
        return [o for o in others if o in held and held[o].origin is None]

    @completes
    async def follow(self, source: FeedId, target: FeedId, copy_limit: int) -> None:
        """`source` follows `target` and gets its latest `copy_limit` activities. Following a
        feed already followed changes nothing."""
        if source == target:
            raise InputError("a feed cannot follow itself", {"target": ["cannot follow itself"]})
        if not self.settings.feeds[target.group].followable:
            raise FeedConfigError(
                f"feeds of group {target.group} cannot be followed",
                {"target": [f"feed group {target.group} is not followable"]},
            )
        await self.follow_service.follow(str(source), str(target), copy_limit)

    @completes
    async def unfollow(self, source: FeedId, target: FeedId, keep_history: bool) -> None:
        await self.follow_service.unfollow(str(source), str(target), keep_history)

    @completes
    async def follow_many(self, pairs: Sequence[tuple[str, str]], copy_limit: int) -> None:
        await self.follow_service.follow_many(pairs, copy_limit)

    @completes
    async def unfollow_many(self, entries: Sequence[tuple[str, str, bool]]) -> None:
        await self.follow_service.unfollow_many(entries)

    @completes
    async def replace(self, new: Sequence[Activity]) -> list[dict[str, Any]]:
        """update_activities/: see Updates.replace."""
        return await self.updates.replace(new)

    @completes
    async def change(self, changes: Sequence[Change], limits: Limits) -> list[dict[str, Any]]:
        """activity/ (partial updates): see Updates.change."""
        return await self.updates.change(changes, limits)

    @completes
    async def retarget(
        self, feed: FeedId, body: object, grant: Grant, limits: Limits
    ) -> dict[str, Any]:
        """activity_to_targets/: see Updates.retarget (an added target's small fanout is
        waited for, as an add's)."""
        async with self.completion.awaited():
            return await self.updates.retarget(feed, body, grant, limits)

    async def pull_sources(self, feed: FeedId) -> list[str]:
        """The pull feeds whose updates the subscribers of `feed` get: the pull feeds it
        follows, and itself when it is one."""
        return await self.reads.pull_sources(str(feed))

    async def pull_sources_of(self, feeds: list[str]) -> dict[str, list[str]]:
        """`pull_sources` of many feeds (ids as strings), in a few queries for all."""
        return await self.reads.pull_sources_of(feeds)

    async def read(self, feed: FeedId, page: Page) -> list[dict[str, Any]]:
        return await self.reads.read(str(feed), page)

    async def missed(self, feed: FeedId, since: str, limit: int) -> Missed:
        """What a reconnecting client missed: activities newer than `since`, oldest first."""
        found = await self.reads.since(str(feed), since, limit + 1)
        return Missed(found[:limit], more=len(found) > limit)

    async def followers(
        self, feed: FeedId, limit: int, offset: int, only: Sequence[str]
    ) -> list[Follow]:
        return await self.follows.followers(str(feed), limit, offset, only)

    async def following(
        self, feed: FeedId, limit: int, offset: int, only: Sequence[str]
    ) -> list[Follow]:
        return await self.follows.followed_by(str(feed), limit, offset, only)
