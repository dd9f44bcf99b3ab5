"""The one step "the feeds now hold this update": its firehose messages, then its socket events.

The ordering rule, decided here once for every write: the firehose messages of an update are
stored before the step that made it counts as done (before an add's or update's answer, before
a fanout batch's cursor moves past it), so that nothing acknowledged is lost; the sockets hear
of it only after that, at most once (a socket that misses an event recovers through `subscribe`
with `since`). A removal's `deleted` messages are written before its entries go, leased to this
node and unsent, and sent once the entries are gone (`removal`): a removal that dies in between
still has them sent by any node once their lease runs out.

Reaction writes follow the same rule (`reaction`): the event (`reaction.added`, `.updated`,
`.deleted`, with the activity's counts) is stored for the firehose endpoints that take reaction
events (`reactions = true`) before the write answers, then goes to the sockets watching the
activity, in the background, with the same counts: those the write's counter update left
(`ReactionWrite.left`, exact at their version), read from the store only by a write that knows
none (a retry told again). The version travels with the socket event on the bus, and each node
sends its sockets the newest counts it knows of the activity (realtime/broadcaster.py). A hard
delete's event is written before the reaction goes, held, and sent after
(`reaction_removal`), as a feed removal's is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ..domain.events import Broadcaster, feed_update, marked
from ..domain.ids import format_time
from ..domain.ports import FeedUpdate
from ..domain.reactions import Summary
from ..firehose.outbox import Firehose
from ..runtime.background import TaskSet

Counts = dict[str, int]


@dataclass(frozen=True)
class ReactionWrite:
    """A stored write of a reaction, as its event tells it. `version` names the state it
    tells of (the write's time, as stored): the firehose message's id is derived from the
    reaction's id, `name` and `version`, so a write told again for the same state (a client's
    retry) writes the same message.
    `left`: the activity's counts (and their version) as the write left them, None when it
    does not know them; `summary(activity_id)` reads them from the store now (for a write
    without `left`); `feeds(activity_id)` the feeds it was added to (for endpoints that take
    some feed groups only)."""

    name: str  # reaction.added | reaction.updated | reaction.deleted
    reaction: dict[str, Any]  # as the REST API answers it, with its `user`
    version: str
    summary: Callable[[str], Awaitable[Summary]]
    feeds: Callable[[str], Awaitable[Collection[str]]]
    left: Summary | None = None

    @property
    def activity_id(self) -> str:
        return str(self.reaction["activity_id"])

    @property
    def key(self) -> str:
        return f"reaction\n{self.reaction['id']}\n{self.name}\n{self.version}"

    async def counts(self) -> Summary:
        """The counts its event carries: those it left, or, when it knows none, read now."""
        return self.left if self.left is not None else await self.summary(self.activity_id)

    def event(self, counts: Counts) -> dict[str, Any]:
        """The socket event's data."""
        return {"activity_id": self.activity_id, "reaction": self.reaction,
                "reaction_counts": counts}  # fmt: skip


@dataclass
class Removal:
    """What the block of `reaction_removal` tells: whether it deleted the reaction (False:
    another delete did first, and tells the sockets), and the counts it left, when known."""

    gone: bool = True
    left: Summary | None = None


class Announcer:
    def __init__(self, firehose: Firehose, broadcaster: Broadcaster, tasks: TaskSet) -> None:
        self.firehose, self.broadcaster = firehose, broadcaster
        self.tasks = tasks  # the socket events sent in the background, drained at shutdown

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

    async def reaction(self, write: ReactionWrite, sockets: bool = True) -> None:
        """A write of a reaction is stored: its event is stored for the firehose endpoints that
        take it when this returns, then goes to the sockets watching its activity (unless not
        `sockets`: a write run again tells the firehose only), in the background, with the
        same counts: those the write left (`write.counts()`)."""
        feeds = await self._reaction_feeds(write)
        if feeds is None:
            if sockets:
                self.tasks.spawn(self._tell_reaction(write))
            return
        summary = await write.counts()
        since = datetime.now(UTC)
        event = write.event(dict(summary.counts))
        await self.firehose.hand_over_reaction(_fired(write.name, event), feeds, write.key, since)
        if sockets:
            self.tasks.spawn(self._emit_reaction(write, summary))

    @asynccontextmanager
    async def reaction_removal(
        self, write: ReactionWrite, expected: Callable[[Counts], Counts]
    ) -> AsyncIterator[Removal]:
        """Around the hard deletion of a reaction (`write`: its `reaction.deleted`): for the
        firehose, the event is written before, held, and sent after the block (if the block
        fails, or the node dies in it, any node sends it once its lease runs out, as for feed
        removals); its counts are those read before, as `expected(counts)` says the deletion
        leaves them. The sockets hear after the block, in the background, unless the block
        says another delete took the reaction first (`Removal.gone`), with the counts the
        deletion left (`Removal.left`) when it counted the reaction down, else the expected
        ones (read after it when no endpoint takes the event)."""
        removal = Removal()
        feeds = await self._reaction_feeds(write)
        if feeds is None:
            yield removal
            if removal.gone:
                self.tasks.spawn(self._tell_reaction(replace(write, left=removal.left)))
            return
        before = await write.summary(write.activity_id)
        expected_counts = Summary(before.version, expected(dict(before.counts)))
        event = write.event(dict(expected_counts.counts))
        since = datetime.now(UTC)
        held = await self.firehose.hold_reaction(_fired(write.name, event), feeds, write.key, since)
        yield removal
        await self.firehose.release(held)
        if removal.gone:
            self.tasks.spawn(self._emit_reaction(write, removal.left or expected_counts))

    async def _reaction_feeds(self, write: ReactionWrite) -> Collection[str] | None:
        """The feeds that route `write` to the firehose (none looked up when no endpoint
        takes the reactions of some groups only); None when no endpoint takes it."""
        firehose = self.firehose
        if not firehose.reactions:
            return None
        feeds = await write.feeds(write.activity_id) if firehose.reaction_groups else ()
        return feeds if firehose.wants_reaction(feeds) else None

    async def _tell_reaction(self, write: ReactionWrite) -> None:
        await self._emit_reaction(write, await write.counts())

    async def _emit_reaction(self, write: ReactionWrite, summary: Summary) -> None:
        """The socket event, with the counts of `summary` and their version: each node that
        delivers it sends its sockets these counts, or newer ones it sent already
        (realtime/broadcaster.py), so what a watcher hears of an activity never goes back."""
        event = write.event(dict(summary.counts))
        await self.broadcaster.reaction_event(write.activity_id, write.name, event, summary.version)

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


def _fired(name: str, event: dict[str, Any]) -> dict[str, Any]:
    """A reaction event as a firehose element: the socket event's data, named by `type`."""
    return {"type": name, **event, "published_at": format_time(datetime.now(UTC))}
