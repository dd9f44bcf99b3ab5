"""Follow and unfollow, push or pull (hybrid fanout: pull feeds); a follower count that changed
may switch the feed's fanout mode (feeds/modes.py).

What a follower holds of a feed it follows is the same whatever the feed's mode: the feed's
newest `activity_copy_limit` own activities when it followed, then everything the feed gets
until the unfollow. Following a push feed copies those into the follower; following a pull feed
records a frontier instead (the (copy limit + 1)-th newest own activity), above which readers
merge the feed's activities in. Unfollowing a pull feed with `keep_history` copies what was
merged in, so that it stays.

A feed follows at most `fanout.max_following` feeds. An activity being removed (tombstoned) is
never copied by a follow: the removal's pass over the followers may be past the new follower.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from ..domain.errors import InputError
from ..fanout.switches import copy_merged
from ..store.mongo.entry_writes import Entry
from ..store.mongo.feeds import DRAINING, PUSH
from ..store.mongo.follows import FollowRecord
from .context import FeedContext
from .modes import ModeSwitches

log = logging.getLogger(__name__)
NEWEST_READS = 8  # targets of one batch whose newest activities are read at once


class FollowService:
    """Follows and unfollows of feeds (the API's `follows` endpoints), and the mode switches
    that changed follower counts call for."""

    def __init__(self, ctx: FeedContext) -> None:
        self.settings = settings = ctx.settings.fanout
        self.activities, self.follows, self.jobs = ctx.activities, ctx.follows, ctx.jobs
        self.runner, self.broadcaster = ctx.runner, ctx.broadcaster
        self._batches = Batches(self._follow_targets, settings.max_follow_many, ctx.runner.spawn)
        self.modes = ModeSwitches(ctx)

    async def follow(self, source: str, target: str, copy_limit: int) -> None:
        """`source` follows `target`. Concurrent follows of one feed (with the same copy limit)
        are stored together, in the few bulk writes of one `follow_many` batch: a follow costs
        O(1) store round trips whatever the feed's follower count, and the feed's `feeds`
        document is written once per batch instead of three times per follow."""
        error = await self._batches.submit((target, copy_limit), source)
        if error is not None:
            raise error

    async def follow_many(self, pairs: Sequence[tuple[str, str]], copy_limit: int) -> None:
        """`follow_many/`: every (source, target) pair followed in bulk writes. A source that
        would follow more than `fanout.max_following` feeds refuses the whole batch (nothing
        stored). Validation of the feed ids is the caller's."""
        failed, _ = await self._follow_batch(list(dict.fromkeys(pairs)), copy_limit, whole=True)
        if failed:
            raise next(iter(failed.values()))

    async def follow_each(
        self, pairs: Sequence[tuple[str, str]], copy_limit: int
    ) -> tuple[dict[tuple[str, str], InputError], set[tuple[str, str]]]:
        """`follow_many`'s bulk writes, but a pair refused (its source would follow more than
        `fanout.max_following` feeds) refuses only itself (an import's follows). Answers the
        pairs refused, and those that were follows already."""
        return await self._follow_batch(list(dict.fromkeys(pairs)), copy_limit, whole=False)

    async def _follow_targets(
        self, key: tuple[str, int], sources: list[str]
    ) -> dict[str, InputError]:
        target, copy_limit = key
        failed, _ = await self._follow_batch(
            [(s, target) for s in dict.fromkeys(sources)], copy_limit, whole=False
        )
        return {source: error for (source, _), error in failed.items()}

    async def _follow_batch(
        self, pairs: list[tuple[str, str]], copy_limit: int, whole: bool
    ) -> tuple[dict[tuple[str, str], InputError], set[tuple[str, str]]]:
        """Store the follows of `pairs`; answer those refused by the follow cap (`whole`: any
        refusal refuses every pair, before anything is stored), and those that were follows
        already. One survey of the sources'
        follows before (which pairs exist, how many feeds each source follows) and one after
        (none undone meanwhile, and no source past the cap through concurrent follows)."""
        cap = self.settings.max_following
        before = await self.follows.survey(pairs)
        existing = await self.follows.records_of(before.found)
        adding = Counter(s for s, t in pairs if (s, t) not in existing)
        failed: dict[tuple[str, str], InputError] = {}
        over = {s for s, n in adding.items() if before.counts.get(s, 0) + n > cap}
        if over:
            for pair in pairs:
                if pair[0] in over and pair not in existing:
                    failed[pair] = _cap_error(pair[0], cap)
            if whole:
                return failed, set(existing)
            pairs = [p for p in pairs if p not in failed]
        prefilled: dict[str, tuple[str, int, bool]] = {}
        if copy_limit == 0:  # nothing to copy: the follows are inserted complete
            targets = list(dict.fromkeys(t for _, t in pairs))
            before_metas = await self.follows.meta.get_many(targets)
            newest = {t: await self.activities.latest_own(t, 1) for t in targets}
            await self.follows.meta.raise_max_many({t: i[0] for t, i in newest.items() if i})
            for target, ids in newest.items():  # as in _complete
                meta = before_metas[target]
                prefilled[target] = (ids[0] if ids else "", meta.period, meta.pull_rooms)
        started = await self.follows.follow_many(pairs, prefilled, existing)
        new = [r for r, is_new in started.follows if is_new]
        # Concurrent follows of a source went past the cap: undo its new ones.
        undone = [r for r in new if started.counts.get(r.source, 0) > cap]
        if undone:
            await self.follows.unfollow_many(undone)
            for record in undone:
                failed[(record.source, record.target)] = _cap_error(record.source, cap)
            gone = {r.id for r in undone}
            started.follows[:] = [(r, n) for r, n in started.follows if r.id not in gone]
        await self._complete(started.follows, copy_limit)
        return failed, set(existing)

    async def _complete(self, started: list[tuple[FollowRecord, bool]], copy_limit: int) -> None:
        """Copy (push feeds) or frontier (pull feeds) of the follows started, in bulk: per
        target one read of its newest activities; one insert of every copy; one write that
        completes every follow. Then the mode switches the new follower counts call for."""
        by_target: dict[str, list[FollowRecord]] = {}
        for record, _ in started:
            by_target.setdefault(record.target, []).append(record)
        # Read after the follows were stored, as a switch to pull marks the follows it finds:
        # either it found these, or they see the new mode here.
        metas = await self.follows.meta.get_many(by_target)
        copies: list[Entry] = []
        done: list[tuple[FollowRecord, str, int, bool]] = []
        pulled: list[FollowRecord] = []
        slots = asyncio.Semaphore(NEWEST_READS)

        async def newest(target: str, records: list[FollowRecord]) -> list[str]:
            if all(r.frontier is not None for r in records):  # read before their insert
                return []
            async with slots:
                return await self.activities.latest_own(target, copy_limit + 1)

        read = await asyncio.gather(*(newest(t, rs) for t, rs in by_target.items()))
        # a later activity at or below what a follower may merge in is back-dated
        await self.follows.meta.raise_max_many(
            {t: ids[0] for t, ids in zip(by_target, read, strict=True) if ids}
        )
        for (target, records), ids in zip(by_target.items(), read, strict=True):
            meta = metas[target]
            frontier = ids[copy_limit] if len(ids) > copy_limit else ""
            if meta.mode in (PUSH, DRAINING):
                copies += [
                    Entry(r.source, activity_id, origin=target)
                    for r in records
                    for activity_id in ids[:copy_limit]
                ]
            if meta.pull_rooms:
                pulled += records
            for r in records:
                if r.frontier is None:
                    done.append((r, frontier, meta.period, meta.pull_rooms))
                elif (r.period, r.pull) != (meta.period, meta.pull_rooms):
                    # inserted complete, but the mode changed meanwhile: as if completed now
                    done.append((r, r.frontier, meta.period, meta.pull_rooms or r.pull))
        await self._drop_removed(await self.activities.insert_entries(copies))
        await self.follows.complete_many(done)
        for record in pulled:
            await self.broadcaster.follows_changed(record.source, record.target, True)
        for target in {r.target for r, new in started if new}:
            await self.modes.check(metas[target])

    async def _drop_removed(self, copied: list[Entry]) -> None:
        """Take back copies of activities removed meanwhile (tombstoned), as fanout batches do
        (the distinct activities looked up in `$in` reads)."""
        feeds: dict[str, list[str]] = {}
        for entry in copied:
            feeds.setdefault(entry.activity_id, []).append(entry.feed)
        for activity_id in sorted(await self.activities.removed_among(list(feeds))):
            await self.activities.remove_entries(feeds[activity_id], activity_id)

    async def unfollow(self, source: str, target: str, keep_history: bool) -> None:
        await self.unfollow_many([(source, target, keep_history)])

    async def unfollow_many(self, entries: Sequence[tuple[str, str, bool]]) -> None:
        """`unfollow_many/` (and a single unfollow): (source, target, keep_history) entries, in
        bulk: one read of the follows, one of the targets' metadata, per target a copy of what
        the keeping followers merged in (pull feeds), the bulk unfollow (FollowStore.
        unfollow_many), one bulk delete of what the others got through their follows, then the
        mode switches the new counts call for. A repeated pair counts once (its last
        keep_history); an unfollow of a feed not followed only drops its history (as Stream)."""
        keeps = {(source, target): keep for source, target, keep in entries}
        records = await self.follows.existing(list(keeps))
        metas = await self.follows.meta.get_many(dict.fromkeys(t for _, t in keeps))
        floors: dict[str, dict[str, str]] = {}
        for (source, target), record in records.items():
            floor = record.merged_above(metas[target])
            if keeps[(source, target)] and floor is not None:  # merged in: copied now, stays
                floors.setdefault(target, {})[source] = floor
        for target, of_target in floors.items():
            await copy_merged(self.activities, target, of_target)
        after = await self.follows.unfollow_many(list(records.values()))
        for meta in after.values():
            await self.modes.check(meta)
        await self.activities.remove_from_origins([p for p, keep in keeps.items() if not keep])
        for (source, target), record in records.items():
            if record.pull or after.get(target, metas[target]).pull_rooms:
                await self.broadcaster.follows_changed(source, target, False)


def _unheard(key: Key, item: str, done: asyncio.Future[InputError | None]) -> None:
    """The batch of a caller that left has ended: log its failure, which nobody else will."""
    if not done.cancelled() and (exc := done.exception()) is not None:
        log.error("following %s by %s failed after its caller left", key[0], item, exc_info=exc)


def _cap_error(source: str, cap: int) -> InputError:
    return InputError(
        f"a feed can follow at most {cap} feeds",
        {"target": [f"{source} follows {cap} feeds already"]},
    )


Key = tuple[str, int]
Run = Callable[[Key, list[str]], Awaitable[dict[str, InputError]]]
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[Any]"]


class Batches:
    """Group commit: items submitted under one key while a batch of that key is being stored
    wait and are stored together in the next batch (at most `max_size`). The first item of an
    idle key is stored at once (no timer, no added latency). A caller cancelled while waiting
    does not cancel its batch (others wait on it; the follow is stored or not, as a follow cut
    off mid-way would be), and if the batch then fails, the failure is logged, since no caller
    hears it; a batch that fails fails each of its items; a drain task cancelled (shutdown)
    cancels the items it still holds.

    The drain tasks are started with `spawn` (the fanout runner's task set): shutdown waits
    for them, and a drain that fails itself is logged."""

    def __init__(self, run: Run, max_size: int, spawn: Spawn) -> None:
        self._run, self._max, self._spawn = run, max_size, spawn
        self._pending: dict[Key, list[tuple[str, asyncio.Future[InputError | None]]]] = {}
        self._tasks: dict[Key, asyncio.Task[Any]] = {}

    async def submit(self, key: Key, item: str) -> InputError | None:
        future: asyncio.Future[InputError | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append((item, future))
        if key not in self._tasks:
            task = self._spawn(self._drain(key))
            self._tasks[key] = task
            # Also when it is cancelled before it ever ran (its `finally` never runs then).
            task.add_done_callback(lambda done: self._drop(key, done, []))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:  # (a done future runs the callback soon)
            future.add_done_callback(lambda done: _unheard(key, item, done))
            raise

    def _drop(
        self,
        key: Key,
        task: asyncio.Task[None] | None,
        batch: list[tuple[str, asyncio.Future[InputError | None]]],
    ) -> None:
        """The drain `task` of `key` ends: cancel what it still holds (nothing, unless it was
        cancelled). A later drain of the same key is left alone."""
        if task is None or self._tasks.get(key) is not task:
            for _, future in batch:
                if not future.done():
                    future.cancel()
            return
        del self._tasks[key]
        for _, future in batch + self._pending.pop(key, []):
            if not future.done():
                future.cancel()

    async def _drain(self, key: Key) -> None:
        batch: list[tuple[str, asyncio.Future[InputError | None]]] = []
        try:
            while self._pending.get(key):
                queued = self._pending[key]
                batch, self._pending[key] = queued[: self._max], queued[self._max :]
                try:
                    failed = await self._run(key, [item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for item, future in batch:
                        if not future.done():
                            future.set_result(failed.get(item))
                batch = []
        finally:
            self._drop(key, asyncio.current_task(), batch)
