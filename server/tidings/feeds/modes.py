"""When a feed switches between push and pull fanout (the switches themselves are durable jobs:
fanout/switches.py).

The decision (domain/fanout_mode.py) compares the feed's follower count with a switch point
that follows this node's measured fanout rate (fanout/rate.py). It is evaluated where either
can have moved: when a feed's follower count changes (follows, unfollows), and when a feed is
added to, so that a feed whose count did not change still switches once the store got slower
(or faster). On an add it costs one comparison of the count the add read anyway; only a feed
due for a switch is looked at further, off the add's answer.

The counter may have drifted (a crash between a follow's two writes): a switch is decided on
the truth (a recount) before it starts.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..domain.fanout_mode import decide
from ..fanout.rate import mode_bounds
from ..store.mongo.feeds import DRAINING, PULL, PUSH, FeedMeta
from .context import FeedContext


class ModeSwitches:
    def __init__(self, ctx: FeedContext) -> None:
        self.follows, self.jobs, self.runner = ctx.follows, ctx.jobs, ctx.runner
        self.bounds = mode_bounds(ctx.settings.fanout)
        self._checking: set[str] = set()  # feeds whose check runs off an add's answer

    def _due(self, meta: FeedMeta) -> bool:
        """The feed should switch (or finish going back to push), by its counter."""
        if meta.mode == DRAINING:  # its job may have been lost before it was written
            return True
        if meta.switching or meta.mode not in (PUSH, PULL):
            return False
        rate = self.runner.rate.per_second
        return decide(meta.followers, meta.mode == PULL, rate, self.bounds) is not None

    def added_to(self, metas: Iterable[FeedMeta]) -> None:
        """Feeds with followers were added to: start the checks of those due for a switch in
        the background (one at a time per feed)."""
        for meta in metas:
            idle = meta.mode != DRAINING and meta.feed not in self._checking
            if meta.slots and idle and self._due(meta):
                self._checking.add(meta.feed)
                self.runner.spawn(self._check_added(meta))

    async def _check_added(self, meta: FeedMeta) -> None:
        try:
            await self.check(meta)
        finally:
            self._checking.discard(meta.feed)

    async def check(self, meta: FeedMeta) -> None:
        """Switch the feed to pull above the switch point, back to push below the back point
        (hysteresis: no flapping around one number), on a recount of its followers."""
        if not self._due(meta):
            return
        feed = meta.feed
        if meta.mode == PUSH:
            meta = await self.follows.recount(feed)
            if meta.mode == PUSH and self._due(meta):
                await self._start(f"to_pull:{feed}:{meta.period}", "to_pull", feed)
        elif meta.mode == PULL:
            meta = await self.follows.recount(feed)
            if not self._due(meta):
                return
            if await self.follows.meta.start_draining(feed) is not None:
                await self._start(f"to_push:{feed}:{meta.period}", "to_push", feed)
        else:
            await self._start(f"to_push:{feed}:{meta.period}", "to_push", feed)

    async def _start(self, job_id: str, kind: str, feed: str) -> None:
        job = await self.jobs.create_once(job_id, kind, [feed])  # type: ignore[arg-type]
        if job is not None:
            self.runner.start(job)
