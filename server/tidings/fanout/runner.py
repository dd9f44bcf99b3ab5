"""Runs fanout jobs: reads the followers of each source feed chunk by chunk (store/follows.py),
writes a batch of follower entries (a chunk, or a `fanout.batch_size` part of one) in one
unordered bulk insert, emits `feed.update` to that batch's feeds only once it is stored, then
moves the job's cursor past the chunk once all its batches are done. Batches of a job run in an
`asyncio.TaskGroup`; at most `fanout.concurrency` batches of all jobs run at once on a node, and
a job's cursor only ever moves past chunks that are all done. Jobs that switch a feed's fanout
mode walk its followers the same way (fanout/switches.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from ..config import FanoutSettings
from ..domain.events import Broadcaster, feed_update
from ..metrics import FANOUT_BATCHES, FANOUT_ENTRIES, FANOUT_JOBS, FANOUT_TAKEOVERS, INSERT_TO_EMIT
from ..store.activities import ActivityStore, Entry
from ..store.follows import FollowStore, Member
from ..store.jobs import Cursor, Job, JobStore
from .switches import Batch, BatchMaker, Plan, Switches

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another node took the job over (this node was too slow to renew its lease)."""


class _Progress:
    """Moves the cursor of one source past the chunks done, in order, one write at a time."""

    def __init__(self, jobs: JobStore, job: Job, source: int) -> None:
        self._jobs, self._job, self._source = jobs, job, source
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
                raise LeaseLost(self._job.id)


class FanoutRunner:
    def __init__(
        self,
        activities: ActivityStore,
        follows: FollowStore,
        jobs: JobStore,
        broadcaster: Broadcaster,
        settings: FanoutSettings,
    ) -> None:
        self.activities, self.follows, self.jobs = activities, follows, jobs
        self.broadcaster = broadcaster
        self.settings = settings
        self.switches = Switches(activities, follows, broadcaster)
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()
        self._closing = False
        # Batches in flight on this node, across all its jobs: the store's write load is bounded
        # however many inserts arrive at once, and jobs are served in order of arrival.
        self._slots = asyncio.Semaphore(settings.concurrency)

    def spawn(self, work: Awaitable[None]) -> None:
        """Run `work` in the background, tracked so that shutdown can wait for it."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self, job: Job) -> None:
        if job.id not in self._running and not self._closing:
            self._running.add(job.id)
            self.spawn(self.run(job))

    async def run(self, job: Job) -> None:
        FANOUT_JOBS.inc()
        try:
            await self._run(job)
            await self.jobs.finish(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, LeaseLost) or (
                isinstance(exc, ExceptionGroup) and exc.split(LeaseLost)[1] is None
            ):
                log.warning("fanout job %s was taken over by another node", job.id)
            else:
                # The lease runs out and this node (or another) takes the job over and
                # resumes it.
                log.exception("fanout job %s failed; it will be resumed from its cursor", job.id)
        finally:
            FANOUT_JOBS.dec()
            self._running.discard(job.id)

    async def _run(self, job: Job) -> None:
        if job.kind in ("to_pull", "to_push"):

            async def keep_alive() -> None:
                if not await self.jobs.renew(job):
                    raise LeaseLost(job.id)

            plan = await self.switches.plan(job, keep_alive)
        else:
            plan = await self._plan(job)
        if plan is None:
            return
        for index in range(job.cursor.source, len(job.sources)):
            after = job.cursor.after if index == job.cursor.source else None
            await self._run_source(job, index, job.sources[index], after, plan.batch)
            if not await self.jobs.advance(job, Cursor(index + 1, None)):
                raise LeaseLost(job.id)
        if plan.end is not None:
            await plan.end()

    async def _plan(self, job: Job) -> Plan | None:
        """What one batch of an add or remove job does, for a source feed (and whether it
        replays)."""
        silent = frozenset(job.silent)
        if job.kind == "remove":

            def remove(source: str, replay: bool) -> Batch:
                event = feed_update(
                    source,
                    deleted=[job.activity_id],
                    deleted_foreign_ids=[job.foreign_id] if job.foreign_id else [],
                )
                emit = source not in silent
                return lambda members: self._remove_batch(job, _feeds(members), event, emit)

            return Plan(remove)
        stored = await self.activities.get(job.activity_id)
        if stored is None or stored.removed:  # the removal fans out on its own
            return None

        def add(source: str, replay: bool) -> Batch:
            event = feed_update(source, new=[stored.public(origin=source)])
            emit = source not in silent
            return lambda members: self._add_batch(
                job, source, _feeds(members), event, replay, emit
            )

        return Plan(add)

    async def _run_source(
        self,
        job: Job,
        index: int,
        source: str,
        after: int | None,
        make_batch: BatchMaker,
    ) -> None:
        size, slots = self.settings.batch_size, self._slots
        progress = _Progress(self.jobs, job, index)
        # After a takeover, batches past the cursor may have been stored but not emitted when
        # the owner died (any of them: batches finish out of order). A resumed job therefore
        # emits to every feed of its batches, not just to the entries it adds: at least once.
        run = make_batch(source, job.resumed)
        # Follows made from here on may land past the last chunk: they copied the activity
        # when they followed (it was stored before this job started).
        last = await self.follows.last_chunk(source)

        async def one(members: list[Member], chunk: int, left: list[int]) -> None:
            try:
                await run(members)
            finally:
                slots.release()
            left[0] -= 1
            if not left[0]:
                await progress.finished(chunk)

        async with asyncio.TaskGroup() as group:
            for chunk in range(0 if after is None else after + 1, last + 1):
                members = await self.follows.chunk(source, chunk)
                parts = [members[i : i + size] for i in range(0, len(members), size)]
                progress.started(chunk)
                if not parts:
                    group.create_task(progress.finished(chunk))
                left = [len(parts)]
                for part in parts:
                    await slots.acquire()
                    group.create_task(one(part, chunk, left))

    async def _add_batch(
        self,
        job: Job,
        source: str,
        feeds: list[str],
        event: dict[str, Any],
        replay: bool,
        emit: bool,
    ) -> None:
        entries = [Entry(feed, job.activity_id, origin=source) for feed in feeds]
        inserted = await self.activities.insert_entries(entries)
        if inserted and await self.activities.is_removed(job.activity_id):
            # Removed while this batch was being written: the removal's own pass may already
            # be past these feeds, so take back what this batch put there, and stop the job.
            await self.activities.remove_entries([e.feed for e in inserted], job.activity_id)
            raise LeaseLost(job.id)
        FANOUT_BATCHES.labels("add").inc()
        FANOUT_ENTRIES.labels("add").inc(len(inserted))
        targets = feeds if replay else [e.feed for e in inserted]
        if targets and emit:
            await self.broadcaster.feed_update(targets, event)
            INSERT_TO_EMIT.labels("fanout").observe(_since(job.created_at))

    async def _remove_batch(
        self, job: Job, feeds: list[str], event: dict[str, Any], emit: bool
    ) -> None:
        removed = await self.activities.remove_entries(feeds, job.activity_id)
        FANOUT_BATCHES.labels("remove").inc()
        FANOUT_ENTRIES.labels("remove").inc(removed)
        if emit:
            await self.broadcaster.feed_update(feeds, event)

    async def watch_abandoned(self) -> None:
        """Forever: take over jobs whose node died (their lease ran out) and resume them."""
        while not self._closing:
            try:
                while (job := await self.jobs.claim_abandoned()) is not None:
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
        pending = set(self._tasks)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        released = await self.jobs.release_all()
        if released:
            log.info("released %d unfinished fanout jobs to other nodes", released)


def _feeds(members: list[Member]) -> list[str]:
    return [feed for feed, _ in members]


def _since(created_at: datetime) -> float:
    return max(0.0, (datetime.now(UTC) - created_at).total_seconds())
