"""Writes firehose messages: a message per endpoint per stored batch of feed updates.

`hand_over` is called in the step that makes updates due (an insert before its answer, a fanout
batch before its job's cursor moves past it): once it returns, the messages are in the store,
so nothing acknowledged can be lost. Messages of a healthy endpoint are written leased to this
node and handed to its worker, which sends them at once, while they are being written (their
feeds hold the updates already; a message is settled, deleted or given back for a retry, only
once it is stored: so the write costs no latency); those of a backlogged endpoint are written
due now, for the next claim of any node; those of an endpoint that is failing
are written due after the first retry delay (any node takes them then). An endpoint disabled by
a 410 gets nothing written until it is enabled again: its updates are only counted (skipped).

`hold` and `release` are the same in two steps, for a removal: its `deleted` messages are
written before its entries are deleted, leased to this node and not sent; `release` sends them
once the entries are gone. A removal that fails in between (or a node that dies there) leaves
them to any node once their lease runs out, so the `deleted` is as durable as the removal.

A message's id is derived from what it says (its elements without `published_at`), or from the
step's `key` when given: a client's retried add writes the same id (kept, or sent again with it).

`hand_over_reaction` and `hold_reaction` do the same for a reaction event, one element in a
message of its own, for the endpoints that take reaction events (`reactions = true`); its id
comes from its `key` (the reaction, the event and the state it tells of).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..store.mongo.deliveries import DeliveryStore, Message
from .endpoints import Endpoint
from .messages import Element, Update, bodies, elements, message_id, reaction_element

if TYPE_CHECKING:
    from .worker import DeliveryWorker, Route

# What an activity's element adds to its own JSON at most: the feed (twice, with `origin`), its
# id and time, the event's other fields and the message's brackets.
ELEMENT_OVERHEAD = 1024


@dataclass
class Held:
    """Messages written leased to this node, not sent yet (`hold`), by route."""

    routed: dict[Route, list[Message]] = field(default_factory=dict)


Parts = Callable[[Endpoint, int], list[Element]]  # an endpoint's elements, for its size limit


class Firehose:
    """The outbox writer (a no-op when no endpoint is configured)."""

    def __init__(
        self,
        store: DeliveryStore | None = None,
        endpoints: Sequence[Endpoint] = (),
        worker: DeliveryWorker | None = None,
        max_bytes: int = 250_000,
        retry_initial: float = 5.0,
        limits: Mapping[str, int] | None = None,
    ) -> None:
        self.store, self.worker = store, worker
        self.endpoints = list(endpoints) if store is not None else []
        self.retry_initial = retry_initial
        # The largest message of each endpoint: `max_bytes`, or less when its queue says so.
        self.limits = {e.key: min(max_bytes, (limits or {}).get(e.key, max_bytes))
                       for e in self.endpoints}  # fmt: skip

    @property
    def on(self) -> bool:
        return bool(self.endpoints)

    @property
    def reactions(self) -> bool:
        """Some endpoint takes reaction events."""
        return any(e.reactions for e in self.endpoints)

    @property
    def reaction_groups(self) -> bool:
        """Some endpoint takes the reaction events of some feed groups only: routing them
        needs the feeds the activity was added to."""
        return any(e.reactions and e.groups for e in self.endpoints)

    def wants_reaction(self, feeds: Collection[str]) -> bool:
        """Some endpoint takes a reaction event to an activity added to `feeds`."""
        return any(e.wants_reaction(feeds) for e in self.endpoints)

    def activity_bytes(self, max_bytes: int) -> int:
        """The largest activity (as JSON) to accept, given `max_bytes` of the activities'
        config: one that alone would not fit a message of every endpoint is refused."""
        if not self.limits:
            return max_bytes
        return max(1, min(max_bytes, min(self.limits.values()) - ELEMENT_OVERHEAD))

    async def hand_over(
        self,
        updates: Sequence[Update],
        since: datetime,
        key: str | None = None,
        of: str = "",
    ) -> None:
        """Store the messages of `updates` (one element per feed) for every endpoint that wants
        any of their feeds. `since`: when the insert that caused them arrived. `key` names the
        step when it may run again (the same messages then, not new ones). `of` names the
        state the updates tell of (an activity's version), when the same words may come again
        for a later state: the id is then derived from both."""
        if not self.endpoints or self.store is None:
            return
        now = datetime.now(UTC)
        await self._write(self._route(_feed_parts(updates), since, key, now, of), now)

    async def hand_over_reaction(
        self, event: dict[str, Any], feeds: Collection[str], key: str, since: datetime
    ) -> None:
        """Store a reaction event (its element, `event`) for every endpoint that takes it
        (`feeds`: those its activity was added to, for endpoints of some feed groups only)."""
        if not self.endpoints or self.store is None:
            return
        now = datetime.now(UTC)
        await self._write(self._route(_reaction_parts(event, feeds), since, key, now, ""), now)

    async def _write(self, routed: dict[Route, list[Message]], now: datetime) -> None:
        assert self.store is not None
        send = routed.get("send", [])
        writing = None
        if send and self.worker is not None:
            # Sent while being written: what they tell of is stored already (the feeds hold
            # the updates, the store the reaction's write), and the message is settled
            # (deleted, or given back for a retry) only once it is stored.
            writing = asyncio.ensure_future(self.store.add(send, leased=True))
            self.worker.hand(send, writing)
        await self.store.add(routed.get("backlog", []), due=now)
        later = now + timedelta(seconds=self.retry_initial)
        await self.store.add(routed.get("failing", []), due=later)
        if writing is not None:
            await writing

    async def hold(self, updates: Sequence[Update], since: datetime) -> Held:
        """Write the messages of `updates` leased to this node, unsent: `release` sends them;
        if it never comes, any node does once their lease runs out."""
        if not self.endpoints or self.store is None:
            return Held()
        now = datetime.now(UTC)
        return await self._hold(self._route(_feed_parts(updates), since, None, now, ""))

    async def hold_reaction(
        self, event: dict[str, Any], feeds: Collection[str], key: str, since: datetime
    ) -> Held:
        """`hold` for a reaction event (a hard delete's, written before the reaction goes)."""
        if not self.endpoints or self.store is None:
            return Held()
        now = datetime.now(UTC)
        return await self._hold(self._route(_reaction_parts(event, feeds), since, key, now, ""))

    async def _hold(self, routed: dict[Route, list[Message]]) -> Held:
        assert self.store is not None
        await self.store.add([m for ms in routed.values() for m in ms], leased=True)
        return Held(routed)

    async def release(self, held: Held) -> None:
        """Send the held messages now (as `hand_over` routes them)."""
        if self.store is None:
            return
        if self.worker is not None:
            self.worker.hand(held.routed.get("send", []))
        now = datetime.now(UTC)
        await self.store.release([m.id for m in held.routed.get("backlog", [])], now)
        later = now + timedelta(seconds=self.retry_initial)
        await self.store.release([m.id for m in held.routed.get("failing", [])], later)

    def _route(
        self, parts_of: Parts, since: datetime, key: str | None, now: datetime, of: str
    ) -> dict[Route, list[Message]]:
        """The messages of each endpoint, by route; a disabled endpoint's are counted only."""
        routed: dict[Route, list[Message]] = {}
        for endpoint in self.endpoints:
            limit = self.limits[endpoint.key]
            parts = parts_of(endpoint, limit)
            route: Route = "failing" if self.worker is None else self.worker.route(endpoint.key)
            if route == "dead":
                if parts and self.worker is not None:
                    self.worker.skip(endpoint.key, len(parts))
                continue
            for number, (body, what) in enumerate(bodies(parts, limit)):
                routed.setdefault(route, []).append(Message(
                    message_id(key or f"content\n{of}\n{what}", endpoint.key, number), endpoint.key,
                    body, since, first_due=now,
                ))  # fmt: skip
        return routed


def _feed_parts(updates: Sequence[Update]) -> Parts:
    def parts(endpoint: Endpoint, limit: int) -> list[Element]:
        return [p for u in updates for p in elements(u, endpoint.wants, limit)]

    return parts


def _reaction_parts(event: dict[str, Any], feeds: Collection[str]) -> Parts:
    made: dict[int, Element] = {}  # by size limit: encoded once per limit

    def parts(endpoint: Endpoint, limit: int) -> list[Element]:
        if not endpoint.wants_reaction(feeds):
            return []
        if limit not in made:
            made[limit] = reaction_element(event, limit)
        return [made[limit]]

    return parts
