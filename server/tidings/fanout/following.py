"""Follow and unfollow, push or pull (DESIGN.md "Fanout" step 4), and the switches of a feed's
fanout mode that follower counts trigger.

What a follower holds of a feed it follows is the same whatever the feed's mode: the feed's
newest `activity_copy_limit` own activities when it followed, then everything the feed gets
until the unfollow. Following a push feed copies those into the follower; following a pull feed
records a frontier instead (the (copy limit + 1)-th newest own activity), above which readers
merge the feed's activities in. Unfollowing a pull feed with `keep_history` copies what was
merged in, so that it stays.
"""

from __future__ import annotations

from ..config import FanoutSettings
from ..domain.events import Broadcaster
from ..store.activities import ActivityStore, Entry
from ..store.feeds import DRAINING, PULL, PUSH, FeedMeta
from ..store.follows import FollowStore
from ..store.jobs import JobStore
from .runner import FanoutRunner
from .switches import copy_merged


class Following:
    def __init__(
        self,
        settings: FanoutSettings,
        activities: ActivityStore,
        follows: FollowStore,
        jobs: JobStore,
        runner: FanoutRunner,
        broadcaster: Broadcaster,
    ) -> None:
        self.settings = settings
        self.activities, self.follows, self.jobs = activities, follows, jobs
        self.runner, self.broadcaster = runner, broadcaster

    async def follow(self, source: str, target: str, copy_limit: int) -> None:
        started = await self.follows.follow(source, target)
        if started is None:
            return
        record, new = started
        meta = await (self.follows.meta.count(target, 1) if new else self.follows.meta.get(target))
        ids = await self.activities.latest_own(target, copy_limit + 1)
        frontier = ids[copy_limit] if len(ids) > copy_limit else ""
        if ids:  # a later activity at or below what this follower may merge in is back-dated
            await self.follows.meta.raise_max(target, ids[0])
        if meta.mode in (PUSH, DRAINING):
            await self.activities.insert_entries(
                [Entry(source, activity_id, origin=target) for activity_id in ids[:copy_limit]]
            )
        await self.follows.complete(record, frontier, meta.period, meta.pull_rooms)
        if meta.pull_rooms:
            await self.broadcaster.follows_changed(source, target, True)
        if new:
            await self._check(meta)

    async def unfollow(self, source: str, target: str, keep_history: bool) -> None:
        record = await self.follows.get(source, target)
        if record is None:
            if not keep_history:
                await self.activities.remove_from_origin(source, target)
            return
        meta = await self.follows.meta.get(target)
        floor = record.merged_above(meta)
        if keep_history and floor is not None:  # what was merged in stays: copied now
            await copy_merged(self.activities, target, {source: floor})
        if await self.follows.unfollow(record):
            meta = await self.follows.meta.count(target, -1)
            await self._check(meta)
        if not keep_history:
            await self.activities.remove_from_origin(source, target)
        if record.pull or meta.pull_rooms:
            await self.broadcaster.follows_changed(source, target, False)

    async def _check(self, meta: FeedMeta) -> None:
        """Switch the feed to pull above `pull_threshold` followers, back to push below
        `push_threshold` (hysteresis: no flapping around one number)."""
        feed = meta.feed
        if meta.mode == PUSH and not meta.switching:
            if meta.followers > self.settings.pull_threshold:
                await self._start(f"to_pull:{feed}:{meta.period}", "to_pull", feed)
        elif meta.mode == PULL and meta.followers < self.settings.push_threshold:
            if await self.follows.meta.start_draining(feed) is not None:
                await self._start(f"to_push:{feed}:{meta.period}", "to_push", feed)
        elif meta.mode == DRAINING:  # its job may have been lost before it was written
            await self._start(f"to_push:{feed}:{meta.period}", "to_push", feed)

    async def _start(self, job_id: str, kind: str, feed: str) -> None:
        job = await self.jobs.create_once(job_id, kind, [feed])  # type: ignore[arg-type]
        if job is not None:
            self.runner.start(job)
