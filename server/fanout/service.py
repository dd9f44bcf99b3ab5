"""What clients ask of feeds, whatever the transport: add, remove, follow, unfollow, read.

Writes follow DESIGN.md "Fanout": the activity and the entries of its own feed and `to` feeds
are stored, then the fanout job, then the caller answers; events and the job run after that.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..domain.activities import Activity
from ..domain.errors import FeedConfigError, InputError
from ..domain.events import Broadcaster, feed_update
from ..domain.feeds import FeedId
from ..metrics import INSERT_TO_EMIT
from ..store.activities import ActivityStore, Entry, Page, StoredActivity
from ..store.follows import Follow, FollowStore
from ..store.jobs import JobStore
from .runner import FanoutRunner


@dataclass(frozen=True)
class Missed:
    activities: list[dict[str, Any]]
    more: bool


class FeedService:
    def __init__(
        self,
        settings: Settings,
        activities: ActivityStore,
        follows: FollowStore,
        jobs: JobStore,
        runner: FanoutRunner,
        broadcaster: Broadcaster,
    ) -> None:
        self.settings = settings
        self.activities, self.follows, self.jobs = activities, follows, jobs
        self.runner = runner
        self.broadcaster = broadcaster

    async def add(self, feed: FeedId, new: Sequence[Activity]) -> list[dict[str, Any]]:
        """Store activities added to `feed`; once this returns, they are never lost."""
        started = time.perf_counter()
        origin = str(feed)
        await self.activities.save(new, origin)
        direct = [Entry(target, a.id) for a in new for target in (origin, *a.to)]
        await self.activities.insert_entries(direct)
        for activity in new:
            sources = [origin, *activity.to]
            if await self.follows.has_followers(sources):
                job = await self.jobs.create("add", activity.id, sources)
                self.runner.start(job)
        self.runner.spawn(self._announce_added(origin, new, started))
        return [a.public() for a in new]

    async def _announce_added(self, origin: str, new: Sequence[Activity], started: float) -> None:
        by_feed: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for activity in new:
            for feed in (origin, *activity.to):
                by_feed[feed].append(activity.public())
        for feed, activities in by_feed.items():
            await self.broadcaster.feed_update([feed], feed_update(feed, new=activities))
        INSERT_TO_EMIT.labels("direct").observe(time.perf_counter() - started)

    async def remove(self, feed: FeedId, activity_id: str | None, foreign_id: str | None) -> None:
        """Remove by id or by foreign id from `feed`, its `to` feeds and every follower feed.
        An activity the feed does not hold changes nothing."""
        origin = str(feed)
        if foreign_id is not None:
            found = await self.activities.find_by_foreign_id(origin, foreign_id)
        else:
            stored = await self.activities.get(activity_id or "")
            held = stored is not None and await self.activities.holds(origin, stored.id)
            found = [stored] if stored is not None and held else []
        for stored in found:
            await self._remove_one(origin, stored)

    async def _remove_one(self, feed: str, stored: StoredActivity) -> None:
        own = stored.feed == feed
        sources = [feed, *stored.to] if own else [feed]
        if own:
            await self.activities.mark_removed(stored.id)
            await self.jobs.cancel("add", stored.id)
        await self.activities.remove_entries(sources, stored.id)
        if await self.follows.has_followers(sources):
            job = await self.jobs.create("remove", stored.id, sources, stored.foreign_id)
            self.runner.start(job)
        foreign = [stored.foreign_id] if stored.foreign_id else []
        for source in sources:
            event = feed_update(source, deleted=[stored.id], deleted_foreign_ids=foreign)
            self.runner.spawn(self.broadcaster.feed_update([source], event))

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
        if not await self.follows.follow(str(source), str(target)):
            return
        ids = await self.activities.latest_own(str(target), copy_limit)
        await self.activities.insert_entries(
            [Entry(str(source), activity_id, origin=str(target)) for activity_id in ids]
        )

    async def unfollow(self, source: FeedId, target: FeedId, keep_history: bool) -> None:
        await self.follows.unfollow(str(source), str(target))
        if not keep_history:
            await self.activities.remove_from_origin(str(source), str(target))

    async def pull_sources(self, feed: FeedId) -> list[str]:
        """The pull feeds that `feed` follows: its subscribers also get their pull updates."""
        return []

    async def read(self, feed: FeedId, page: Page) -> list[dict[str, Any]]:
        return await self.activities.read(str(feed), page)

    async def missed(self, feed: FeedId, since: str, limit: int) -> Missed:
        """What a reconnecting client missed: activities newer than `since`, oldest first."""
        found = await self.activities.since(str(feed), since, limit + 1)
        return Missed(found[:limit], more=len(found) > limit)

    async def followers(
        self, feed: FeedId, limit: int, offset: int, only: Sequence[str]
    ) -> list[Follow]:
        return await self.follows.followers(str(feed), limit, offset, only)

    async def following(
        self, feed: FeedId, limit: int, offset: int, only: Sequence[str]
    ) -> list[Follow]:
        return await self.follows.following(str(feed), limit, offset, only)
