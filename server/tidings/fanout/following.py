"""Follow and unfollow, push or pull (DESIGN.md "Fanout" step 4), and the switches of a feed's
fanout mode that follower counts trigger.

What a follower holds of a feed it follows is the same whatever the feed's mode: the feed's
newest `activity_copy_limit` own activities when it followed, then everything the feed gets
until the unfollow. Following a push feed copies those into the follower; following a pull feed
records a frontier instead (the (copy limit + 1)-th newest own activity), above which readers
merge the feed's activities in. Unfollowing a pull feed with `keep_history` copies what was
merged in, so that it stays.

A feed follows at most `fanout.max_following` feeds. An activity being removed (tombstoned) is
never copied by a follow: the removal's pass over the followers may be past the new follower.
The follower counter of a feed is repaired from its follows before it switches the feed's mode.
"""

from __future__ import annotations

import asyncio

from ..config import FanoutSettings
from ..domain.errors import InputError
from ..domain.events import Broadcaster
from ..store.activities import ActivityStore, Entry
from ..store.feeds import DRAINING, PULL, PUSH, FeedMeta
from ..store.follows import FollowStore
from ..store.jobs import JobStore
from .runner import FanoutRunner
from .switches import copy_merged


class FollowService:
    """Follows and unfollows of feeds (the API's `follows` endpoints), and the mode switches
    that follower counts trigger."""

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
        cap = self.settings.max_following
        if await self.follows.get(source, target) is None:  # a repeat follow is not counted
            await self._check_cap(source, cap)
        started = await self.follows.follow(source, target)
        if started is None:
            return
        record, new = started
        if new and await self.follows.count_followed(source, cap + 1) > cap:
            await self.follows.unfollow(record)  # concurrent follows went past the cap
            await self._check_cap(source, cap, force=True)
        meta = await (self.follows.meta.count(target, 1) if new else self.follows.meta.get(target))
        ids = await self.activities.latest_own(target, copy_limit + 1)
        frontier = ids[copy_limit] if len(ids) > copy_limit else ""
        if ids:  # a later activity at or below what this follower may merge in is back-dated
            await self.follows.meta.raise_max(target, ids[0])
        if meta.mode in (PUSH, DRAINING):
            copied = await self.activities.insert_entries(
                [Entry(source, activity_id, origin=target) for activity_id in ids[:copy_limit]]
            )
            await self._drop_removed(source, copied)
        await self.follows.complete(record, frontier, meta.period, meta.pull_rooms)
        if meta.pull_rooms:
            await self.broadcaster.follows_changed(source, target, True)
        if new:
            await self._check(meta)

    async def _check_cap(self, source: str, cap: int, force: bool = False) -> None:
        if force or await self.follows.count_followed(source, cap) >= cap:
            raise InputError(
                f"a feed can follow at most {cap} feeds",
                {"target": [f"{source} follows {cap} feeds already"]},
            )

    async def _drop_removed(self, feed: str, copied: list[Entry]) -> None:
        """Take back copies of activities removed meanwhile (tombstoned), as fanout batches do."""
        removed = await asyncio.gather(*(self.activities.is_removed(e.activity_id) for e in copied))
        for entry, gone in zip(copied, removed, strict=True):
            if gone:
                await self.activities.remove_entries([feed], entry.activity_id)

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
        `push_threshold` (hysteresis: no flapping around one number). The counter may have
        drifted (a crash between a follow's two writes): a switch is decided on the truth."""
        feed = meta.feed
        if meta.mode == PUSH and not meta.switching:
            if meta.followers > self.settings.pull_threshold:
                meta = await self.follows.recount(feed)
                if meta.followers > self.settings.pull_threshold:
                    await self._start(f"to_pull:{feed}:{meta.period}", "to_pull", feed)
        elif meta.mode == PULL and meta.followers < self.settings.push_threshold:
            meta = await self.follows.recount(feed)
            if meta.followers >= self.settings.push_threshold:
                return
            if await self.follows.meta.start_draining(feed) is not None:
                await self._start(f"to_push:{feed}:{meta.period}", "to_push", feed)
        elif meta.mode == DRAINING:  # its job may have been lost before it was written
            await self._start(f"to_push:{feed}:{meta.period}", "to_push", feed)

    async def _start(self, job_id: str, kind: str, feed: str) -> None:
        job = await self.jobs.create_once(job_id, kind, [feed])  # type: ignore[arg-type]
        if job is not None:
            self.runner.start(job)
