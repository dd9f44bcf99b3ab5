"""The one step "the feeds now hold this update": its firehose messages, then its socket events.

The ordering rule, decided here once for every write: the firehose messages of an update are
stored before the step that made it counts as done (before an add's or update's answer, before
a fanout batch's cursor moves past it), so that nothing acknowledged is lost; the sockets hear
of it only after that, at most once (a socket that misses an event recovers through `subscribe`
with `since`). A removal's `deleted` messages are written before its entries go, leased to this
node and unsent, and sent once the entries are gone (`removal`): a removal that dies in between
still has them sent by any node once their lease runs out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from ..domain.events import Broadcaster, feed_update, marked
from ..domain.ports import FeedUpdate
from ..domain.reactions import SentCounts, Summary
from ..firehose.outbox import Firehose
from ..runtime.background import TaskSet


class Announcer:
    def __init__(self, firehose: Firehose, broadcaster: Broadcaster, tasks: TaskSet) -> None:
        self.firehose, self.broadcaster = firehose, broadcaster
        self.tasks = tasks  # the socket events sent in the background, drained at shutdown
        self.sent_counts = SentCounts()

    async def announce(
        self,
        updates: Sequence[FeedUpdate],
        since: datetime | None = None,
        key: str | None = None,
        *,
        of: str = "",
        sockets_later: bool = False,
        emitted: Callable[[], None] | None = None,
    ) -> None:
        """The firehose messages of `updates`, stored when this returns (`since`: when the
        write that caused them arrived, now if not given; `key` names a step that may run
        again, so that it writes the same messages; `of` names the state the updates tell of,
        an activity's version, see Firehose.hand_over), then their socket events: sent before
        this returns, or in the background (`sockets_later`); `emitted` runs once they are."""
        wanted = [(u.feeds, u.event) for u in updates if u.feeds]
        if self.firehose.on and wanted:
            await self.firehose.hand_over(wanted, since or datetime.now(UTC), key, of)
        if sockets_later:
            self.tasks.spawn(self._tell(updates, emitted))
        else:
            await self._tell(updates, emitted)

    @asynccontextmanager
    async def removal(self, updates: Sequence[FeedUpdate]) -> AsyncIterator[None]:
        """Around the deletion of the entries of `updates` (their `deleted` events): the
        firehose messages are written before, held, and sent after it; the socket events go
        after it, in the background. Nothing is sent of a deletion that fails."""
        held = await self.firehose.hold([(u.feeds, u.event) for u in updates], datetime.now(UTC))
        yield
        await self.firehose.release(held)
        for update in updates:
            self.tasks.spawn(self._tell([update]))

    async def counts(
        self, feed: str, mark_seen: bool | Sequence[str] = False,
        mark_read: bool | Sequence[str] = False,
    ) -> None:  # fmt: skip
        """A notification feed's unseen/unread counts changed (a mark): its sockets hear, with
        the marks (the broadcaster adds the counts); the firehose carries activities only."""
        event = marked(feed_update(feed), mark_seen, mark_read)
        await self.broadcaster.feed_update([feed], event)

    def reaction(self, name: str, reaction: dict[str, Any], read: Awaitable[Summary]) -> None:
        """A write of `reaction` is stored: its event `name` goes to the sockets watching its
        activity, in the background, with the activity's counts as read after the write
        (`read`, begun once the write was stored), or newer ones this node sent already
        (SentCounts). Not to the firehose: its messages are feeds' activities (a reaction
        with target feeds reaches it as the activity those feeds hold)."""
        self.tasks.spawn(self._tell_reaction(name, reaction, read))

    async def _tell_reaction(
        self, name: str, reaction: dict[str, Any], read: Awaitable[Summary]
    ) -> None:
        activity_id = reaction["activity_id"]
        summary = await read
        # No await between choosing the counts and the emit, whose bus hands the event to this
        # node's WebSocket connections before it first suspends: they are sent in that order.
        event = {"activity_id": activity_id, "reaction": reaction,
                 "reaction_counts": self.sent_counts.newest(activity_id, summary)}  # fmt: skip
        await self.broadcaster.reaction_event(activity_id, name, event)

    async def _tell(
        self, updates: Sequence[FeedUpdate], emitted: Callable[[], None] | None = None
    ) -> None:
        for update in updates:
            if update.pull:
                await self.broadcaster.pull_update(update.feeds[0], update.event)
            else:
                await self.broadcaster.feed_update(update.feeds, update.event)
        if emitted is not None:
            emitted()

    async def close(self, grace: float) -> None:
        """Give the socket events under way `grace` seconds (at shutdown, after the writes)."""
        await self.tasks.drain(grace)
