"""Runs fanout jobs: reads the followers of each source feed chunk by chunk
(store/mongo/follows.py), writes a batch of follower entries (a chunk, or a `fanout.batch_size`
part of one) in one unordered bulk insert, announces its `feed.update` to that batch's feeds
(feeds/announce.py: firehose, then sockets) only once it is stored, then
moves the job's cursor past the chunk once all its batches are done. An add or a removal
(with `fanout.active_first`) reads a window of chunks at once and writes first the follower
feeds someone watches, then the rest (fanout/order.py). Batches of a job run in an
`asyncio.TaskGroup`; at most `fanout.concurrency` batches of all adds and removals run at once on
a node (and one batch of the switches, apart, so that no backlog holds up a switch), and
a job's cursor only ever moves past chunks that are all done. Jobs that switch a feed's fanout
mode walk its followers the same way (fanout/switches.py).

A slot is taken before a batch's task is made and given back by the task's done callback, which
runs however the task ends: done, failed, or cancelled before it ever started (a TaskGroup
cancels the tasks it has not started when one fails). While a job runs or waits for slots, a
keep-alive task renews its lease every third of `fanout.lease_seconds`, so that no other node
takes over a job that is only queued; it ends with the job. A node takes over abandoned jobs
only while it runs fewer than `fanout.concurrency` jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from ..config import FanoutSettings
from ..domain.events import Broadcaster, feed_update
from ..domain.ports import ActiveFeeds, Announcer, FeedUpdate, NoActiveFeeds
from ..metrics import (
    FANOUT_BATCHES,
    FANOUT_ENTRIES,
    FANOUT_JOBS,
    FANOUT_RATE,
    FANOUT_TAKEOVERS,
    INSERT_TO_EMIT,
)
from ..runtime.background import TaskSet
from ..runtime.faults import fault_pause, fault_point
from ..runtime.leases import keep_alive
from ..store.mongo.activities import ActivityStore
from ..store.mongo.entry_writes import Entry
from ..store.mongo.follows import CHUNK_SIZE, FollowStore, Member
from ..store.mongo.jobs import Cursor, Job, JobStore
from .completion import started
from .order import WINDOW_CHUNKS, Part, parts_of
from .rate import FanoutRate, initial_rate
from .switches import Batch, BatchMaker, Plan, Switches

log = logging.getLogger(__name__)
SWITCHES = ("to_pull", "to_push")  # the jobs that switch a feed's fanout mode
SWITCH_SLOTS = 1  # their batches in flight on a node, beside `fanout.concurrency` others


class LeaseLost(Exception):
    """Another node took the job over (this node was too slow to renew its lease)."""


class ActivityRemoved(Exception):
    """The job's activity was removed while it ran: the job was dropped (or is to be)."""


class _Progress:
    """Moves the cursor of one source past the chunks done, in order, one write at a time."""

    def __init__(self, runner: FanoutRunner, job: Job, source: int) -> None:
        self._runner, self._jobs, self._job, self._source = runner, runner.jobs, job, source
        self._order: list[int] = []
        self._done: set[int] = set()
        self._lock = asyncio.Lock()

    def started(self, last: int) -> None:
        self._order.append(last)

    async def finished(self, last: int) -> None:
        self._done.add(last)
        async with self._lock:
            head = None
            while self._order and self._order[0] in self._done:
                head = self._order.pop(0)
                self._done.discard(head)
            if head is not None and not await self._jobs.advance(
                self._job, Cursor(self._source, head)
            ):
                await self._runner.lost(self._job)


class FanoutRunner:
    def __init__(
        self,
        activities: ActivityStore,
        follows: FollowStore,
        jobs: JobStore,
        broadcaster: Broadcaster,
        settings: FanoutSettings,
        announcer: Announcer,
        active: ActiveFeeds | None = None,
    ) -> None:
        self.activities, self.follows, self.jobs = activities, follows, jobs
        self.active = active if active is not None else NoActiveFeeds()
        self.broadcaster = broadcaster
        self.announcer = announcer
        self.settings = settings
        self.switches = Switches(activities, follows, broadcaster)
        self._tasks = TaskSet("fanout task")
        self._running: set[str] = set()
        self._closing = False
        # Batches in flight on this node, across all its jobs: the store's write load is bounded
        # however many inserts arrive at once, and jobs are served in order of arrival.
        self._slots = asyncio.Semaphore(settings.concurrency)
        # A switch to pull (or back) has a slot of its own: it must not queue behind the very
        # pushes it is there to stop (a feed whose push is over budget makes a backlog).
        self._switch_slots = asyncio.Semaphore(SWITCH_SLOTS)
        # Entries/s of this node's add batches: where push stops paying (feeds/modes.py).
        self.rate = FanoutRate(initial_rate(settings), min(settings.batch_size, CHUNK_SIZE))
        FANOUT_RATE.set(self.rate.per_second)

    def spawn(self, work: Awaitable[None]) -> asyncio.Task[Any]:
        """Run `work` in the background (failures logged), tracked so that shutdown can wait
        for it."""
        return self._tasks.spawn(work)

    def start(self, job: Job) -> None:
        if job.id not in self._running and not self._closing:
            self._running.add(job.id)
            started(job, self._tasks.spawn(self.run(job)))  # the write may wait for it

    async def run(self, job: Job) -> None:
        FANOUT_JOBS.inc()
        try:
            async with asyncio.TaskGroup() as group:
                keeper = group.create_task(self._keep_alive(job))
                await self._run(job)
                keeper.cancel()
            await self.jobs.finish(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            causes = set(map(type, _leaves(exc)))
            if causes <= {ActivityRemoved}:
                log.info("fanout job %s stopped: its activity was removed", job.id)
            elif causes <= {ActivityRemoved, LeaseLost}:
                log.warning("fanout job %s was taken over by another node", job.id)
            else:
                # Its lease runs out and this node (or another) takes the job over and
                # resumes it.
                log.error(
                    "fanout job %s failed; it will be resumed from its cursor", job.id,
                    exc_info=exc,
                )  # fmt: skip
        finally:
            FANOUT_JOBS.dec()
            self._running.discard(job.id)

    async def lost(self, job: Job) -> NoReturn:
        """The job's document no longer names this node (another node took it over, or a
        removal dropped it): say which."""
        if job.kind == "add" and await self.activities.is_removed(job.activity_id):
            raise ActivityRemoved(job.id)
        raise LeaseLost(job.id)

    async def _keep_alive(self, job: Job) -> None:
        """Renew the job's lease while it runs or waits for slots; raise once it is lost (or
        could not be renewed for a whole lease: another node may hold it by now)."""

        async def expired() -> None:
            raise LeaseLost(job.id)

        async def lost() -> None:
            await self.lost(job)

        await keep_alive(
            lambda: self.jobs.renew(job), self.settings.lease_seconds, f"fanout job {job.id}",
            lost, expired,
        )  # fmt: skip

    async def _run(self, job: Job) -> None:
        if job.kind in SWITCHES:
            plan = await self.switches.plan(job)
        else:
            plan = await self._plan(job)
        if plan is None:
            return
        # Switches act on every follower alike: only adds and removals are ordered.
        ordered = self.settings.active_first and job.kind in ("add", "remove")
        for index in range(job.cursor.source, len(job.sources)):
            after = job.cursor.after if index == job.cursor.source else None
            await self._run_source(job, index, job.sources[index], after, plan.batch, ordered)
            if not await self.jobs.advance(job, Cursor(index + 1, None)):
                await self.lost(job)
        if plan.end is not None:
            await plan.end()

    async def _plan(self, job: Job) -> Plan | None:
        """What one batch of an add or remove job does, for a source feed."""
        silent = frozenset(job.silent)
        stored = await self.activities.get(job.activity_id)
        if job.kind == "remove":
            # Removed through one of its owners while others keep it: what they still put
            # in feeds directly, whose followers keep it. (The removing owner may still be
            # listed, when its node died midway: what it reaches is the job's sources.)
            kept = set()
            if stored is not None and not stored.removed:
                kept = stored.reach(stored.owners) - set(job.sources)

            def remove(source: str) -> Batch:
                event = feed_update(
                    source,
                    deleted=[job.activity_id],
                    deleted_foreign_ids=[job.foreign_id] if job.foreign_id else [],
                )
                emit = source not in silent
                return lambda members: self._remove_batch(
                    job, source, _feeds(members), kept, event, emit
                )

            return Plan(remove)
        if stored is None or stored.removed:  # the removal fans out on its own
            return None

        def add(source: str) -> Batch:
            event = feed_update(source, new=[stored.public(origin=source)])
            emit = source not in silent
            return lambda members: self._add_batch(job, source, _feeds(members), event, emit)

        return Plan(add)

    async def _run_source(
        self,
        job: Job,
        index: int,
        source: str,
        after: int | None,
        make_batch: BatchMaker,
        ordered: bool = False,
    ) -> None:
        size = self.settings.batch_size
        slots = self._switch_slots if job.kind in SWITCHES else self._slots
        progress = _Progress(self, job, index)
        run = make_batch(source)
        # Follows made from here on may land past the last chunk: they copied the activity
        # when they followed (it was stored before this job started).
        last = await self.follows.last_chunk(source)
        window = WINDOW_CHUNKS if ordered else 1
        left: dict[int, int] = {}  # chunk -> its batches not done yet

        async def one(part: Part) -> None:
            await run(part.members)  # a failed or cancelled batch never counts as done
            for chunk in part.chunks:
                left[chunk] -= 1
                if not left[chunk]:
                    del left[chunk]
                    await progress.finished(chunk)

        def release(_: asyncio.Task[None]) -> None:
            slots.release()

        async with asyncio.TaskGroup() as group:
            for start in range(0 if after is None else after + 1, last + 1, window):
                end = min(start + window, last + 1) - 1
                if ordered:
                    chunks = await self.follows.chunk_range(source, start, end)
                    active = await self.active.active([f for c in chunks for f, _ in c])
                else:
                    chunks, active = [await self.follows.chunk(source, start)], set()
                parts = parts_of(chunks, start, active, size)
                for part in parts:  # counted before any can finish
                    for chunk in part.chunks:
                        left[chunk] = left.get(chunk, 0) + 1
                for chunk in range(start, end + 1):
                    progress.started(chunk)
                for chunk in range(start, end + 1):
                    if chunk not in left:  # no follower in it
                        await progress.finished(chunk)
                for part in parts:
                    await slots.acquire()
                    try:
                        task = group.create_task(one(part))
                    except BaseException:  # the group is shutting down: no task holds it
                        slots.release()
                        raise
                    # Runs however the task ends, also when it is cancelled before it starts.
                    task.add_done_callback(release)

    async def _add_batch(
        self, job: Job, source: str, feeds: list[str], event: dict[str, Any], emit: bool
    ) -> None:
        await fault_pause("fanout.batch")  # tests: a batch that takes its time
        # After a takeover, batches past the cursor may have been stored but not emitted when
        # the owner died (any of them: batches finish out of order). A resumed job therefore
        # emits to every feed of its batches, not just to the entries it adds: at least once.
        replay = job.resumed
        entries = [Entry(feed, job.activity_id, origin=source) for feed in feeds]
        with self.rate.insert(len(entries)):
            await fault_pause("fanout.insert")  # tests: a slow store
            inserted = await self.activities.insert_entries(entries)
        FANOUT_RATE.set(self.rate.per_second)
        if (inserted or (replay and emit)) and not await self.activities.reaches(
            job.activity_id, source
        ):
            # Removed (through `source`, or altogether) while this batch was being written:
            # the removal's own pass may already be past these feeds, so take back what this
            # batch put there, announce nothing, and stop the job (a removal through one of
            # several owners starts a new job for the others: feeds/service.py).
            inserted_feeds = [e.feed for e in inserted]
            await self.activities.remove_copies(inserted_feeds, job.activity_id, source)
            raise ActivityRemoved(job.id)
        FANOUT_BATCHES.labels("add").inc()
        FANOUT_ENTRIES.labels("add").inc(len(inserted))
        targets = feeds if replay else [e.feed for e in inserted]
        if targets and emit:
            # The firehose's messages are stored before the batch counts as done (a rerun
            # after a takeover writes the same ones: their ids name the job and the batch).
            await self._announce(job, source, feeds, targets, event)
            fault_point("fanout.batch_handed_over")
            INSERT_TO_EMIT.labels("fanout").observe(_since(job.created_at))

    async def _remove_batch(
        self, job: Job, source: str, feeds: list[str], kept: set[str], event: dict[str, Any],
        emit: bool,
    ) -> None:  # fmt: skip
        """Take the copies that came through `source` out of `feeds`, but not from a feed that
        another owner still reaches: directly (`kept`), or through a follow of such a feed."""
        if kept:
            keep = kept | await self.follows.following_any(feeds, kept)
            feeds = [f for f in feeds if f not in keep]
        removed = await self.activities.remove_copies(feeds, job.activity_id, source)
        FANOUT_BATCHES.labels("remove").inc()
        FANOUT_ENTRIES.labels("remove").inc(removed)
        if emit:
            await self._announce(job, source, feeds, feeds, event)

    async def _announce(
        self, job: Job, source: str, batch: list[str], feeds: list[str], event: dict[str, Any]
    ) -> None:
        """`feeds` of the batch `batch` hold the update; its firehose messages are keyed by
        the job and the batch (a rerun after a takeover writes the same ones)."""
        key = f"{job.id}\n{source}\n{batch[0]}" if batch else None
        await self.announcer.announce([FeedUpdate(feeds, event)], job.created_at, key)

    async def watch_abandoned(self) -> None:
        """Forever: take over jobs whose node died (their lease ran out) and resume them, and
        repair the follower counters that a node dying mid-follow left off."""
        while not self._closing:
            try:
                settled = datetime.now(UTC) - timedelta(seconds=self.settings.lease_seconds)
                if repaired := await self.follows.repair_counters(settled):
                    log.info("recounted the followers of %d feeds", repaired)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not repair follower counters")
            try:
                # Only what this node can run: a job claimed and left waiting for slots would
                # hold back a node that has them free.
                while (
                    len(self._running) < self.settings.concurrency
                    and (job := await self.jobs.claim_abandoned()) is not None
                ):
                    FANOUT_TAKEOVERS.inc()
                    log.info("resuming fanout job %s from %s", job.id, job.cursor)
                    self.start(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not look for abandoned fanout jobs")
            await asyncio.sleep(self.settings.poll_seconds)

    async def close(self, grace: float) -> None:
        """Stop taking jobs, give the running ones `grace` seconds, then release the rest."""
        self._closing = True
        await self._tasks.drain(grace)
        released = await self.jobs.release_all()
        if released:
            log.info("released %d unfinished fanout jobs to other nodes", released)


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions an exception (group) is made of."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _feeds(members: list[Member]) -> list[str]:
    return [feed for feed, _ in members]


def _since(created_at: datetime) -> float:
    return max(0.0, (datetime.now(UTC) - created_at).total_seconds())
