"""Switching a feed between push and pull fanout (hybrid fanout: pull feeds), without changing
what any reader sees.

- push → pull (`to_pull` job, once the feed has more than `fanout.pull_threshold` followers):
  mark the feed `switching` (follows made from now on are marked as follows of a pull feed),
  mark every follow of it, let the subscribers of its follower feeds (and its own) join its
  pull room, then flip it to pull. Nothing is copied or removed: what followers hold stays,
  and reads merge in what the feed gets after the flip (reads dedupe).
- pull → push (`to_push` job, once it has fewer than `fanout.push_threshold`): the feed is
  "draining" from the moment the job is written: new activities are copied into its follower
  feeds again, and reads still merge it in; the job copies into every follower feed what the
  follower merged in (backfill), then flips the feed to push: reads stop merging it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ..domain.events import Broadcaster
from ..metrics import FANOUT_BATCHES, FANOUT_ENTRIES
from ..store.mongo.activities import ActivityStore
from ..store.mongo.entry_writes import Entry
from ..store.mongo.feeds import DRAINING
from ..store.mongo.follows import FollowStore, Member
from ..store.mongo.jobs import Job

Batch = Callable[[list[Member]], Awaitable[None]]
# The batch of one source feed of a job. (Whether a batch replays is the job's: `job.resumed`.)
BatchMaker = Callable[[str], Batch]
INSERT_BATCH = 1000


@dataclass(frozen=True)
class Plan:
    """What a job does: one batch per part of a follower chunk, then `end` once all are done."""

    batch: BatchMaker
    end: Callable[[], Awaitable[None]] | None = None


async def copy_merged(
    activities: ActivityStore,
    target: str,
    floors: Mapping[str, str],
) -> int:
    """Copy into each follower feed of `floors` the activities of `target` it merges in (those
    above its floor), as a push fanout would have: what a reader sees does not change."""
    if not floors:
        return 0
    lowest = min(floors.values())
    ids = await activities.own_above(target, lowest)  # oldest first
    copied, batch = 0, []
    for feed, floor in floors.items():
        for activity_id in ids[bisect_right(ids, floor) :]:
            batch.append(Entry(feed, activity_id, origin=target))
            if len(batch) == INSERT_BATCH:
                await activities.insert_entries(batch)
                copied, batch = copied + len(batch), []
    await activities.insert_entries(batch)
    # An activity removed from the target meanwhile must not stay: its removal may have
    # passed these feeds already.
    gone = set(ids) - set(await activities.own_above(target, lowest))
    for activity_id in gone:
        await activities.remove_entries(list(floors), activity_id)
    return copied + len(batch)


class Switches:
    def __init__(
        self, activities: ActivityStore, follows: FollowStore, broadcaster: Broadcaster
    ) -> None:
        self.activities, self.follows, self.broadcaster = activities, follows, broadcaster

    async def plan(self, job: Job) -> Plan | None:
        """The plan of a switch job. (Its lease is renewed by the runner while it runs, however
        long a backfill takes.) Its batches are idempotent and act on every member they are
        given, so a resumed job's batches do as a first run's."""
        [feed] = job.sources
        if job.kind == "to_pull":
            return await self._to_pull(feed)
        return await self._to_push(feed)

    async def _to_pull(self, feed: str) -> Plan | None:
        if await self.follows.meta.start_switch(feed) is None:
            return None  # not a push feed (any more): done already
        await self.follows.mark_pull(feed, True)
        await self.broadcaster.follows_changed(feed, feed, True)  # its own subscribers

        def joining(source: str) -> Batch:
            async def batch(members: list[Member]) -> None:
                for follower, _ in members:
                    await self.broadcaster.follows_changed(follower, source, True)
                FANOUT_BATCHES.labels("to_pull").inc()

            return batch

        async def end() -> None:
            await self.follows.meta.flip_to_pull(feed)

        return Plan(joining, end)

    async def _to_push(self, feed: str) -> Plan | None:
        meta = await self.follows.meta.get(feed)
        if meta.mode != DRAINING:
            return None

        def backfill(source: str) -> Batch:
            async def batch(members: list[Member]) -> None:
                records = await self.follows.records([follow for _, follow in members])
                floors = {}
                for record in records.values():
                    floor = record.merged_above(meta)
                    if floor is not None:
                        floors[record.source] = floor
                copied = await copy_merged(self.activities, source, floors)
                FANOUT_BATCHES.labels("to_push").inc()
                FANOUT_ENTRIES.labels("to_push").inc(copied)
                for follower, _ in members:
                    await self.broadcaster.follows_changed(follower, source, False)

            return batch

        async def end() -> None:
            if await self.follows.meta.flip_to_push(feed, meta.period):
                await self.follows.mark_pull(feed, False)
                await self.broadcaster.follows_changed(feed, feed, False)

        return Plan(backfill, end)
