"""Writes firehose messages: a message per endpoint per stored batch of feed updates.

`hand_over` is called in the step that makes updates due (an insert before its answer, a fanout
batch before its job's cursor moves past it): once it returns, the messages are in the store,
so nothing acknowledged can be lost. Messages of a healthy endpoint are written leased to this
node and handed to its worker, which sends them at once, while they are being written (their
feeds hold the updates already; a message is settled, deleted or given back for a retry, only
once it is stored: so the write costs no latency); those of a backlogged endpoint are written
due now, for the next claim of any node; those of an endpoint that is failing
are written due after the first retry delay (any node takes them then); those of an endpoint
disabled by a 410 are written dead (replayable once it is re-enabled).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..store.deliveries import DeliveryStore, Message
from .endpoints import Endpoint
from .messages import Update, bodies, elements, message_id

if TYPE_CHECKING:
    from .worker import DeliveryWorker


class Firehose:
    """The outbox writer (a no-op when no endpoint is configured)."""

    def __init__(
        self,
        store: DeliveryStore | None = None,
        endpoints: Sequence[Endpoint] = (),
        worker: DeliveryWorker | None = None,
        max_bytes: int = 250_000,
        retry_initial: float = 5.0,
    ) -> None:
        self.store, self.worker = store, worker
        self.endpoints = list(endpoints) if store is not None else []
        self.max_bytes, self.retry_initial = max_bytes, retry_initial

    @property
    def on(self) -> bool:
        return bool(self.endpoints)

    async def hand_over(
        self, updates: Sequence[Update], since: datetime, key: str | None = None
    ) -> None:
        """Store the messages of `updates` (one element per feed) for every endpoint that wants
        any of their feeds. `since`: when the insert that caused them arrived. `key` names the
        step when it may run again (the same messages then, not new ones)."""
        if not self.endpoints or self.store is None:
            return
        now = datetime.now(UTC)
        routed: dict[str, list[Message]] = {}
        for endpoint in self.endpoints:
            parts = [p for update in updates for p in elements(update, endpoint.wants)]
            route = "failing" if self.worker is None else self.worker.route(endpoint.key)
            for number, body in enumerate(bodies(parts, self.max_bytes)):
                routed.setdefault(route, []).append(Message(
                    message_id(key, endpoint.key, number), endpoint.key, body, since,
                    first_due=now,
                ))  # fmt: skip
        send = routed.get("send", [])
        writing = None
        if send and self.worker is not None:
            # Sent while being written: the feeds hold the updates already, and the message
            # is settled (deleted, or given back for a retry) only once it is stored.
            writing = asyncio.ensure_future(self.store.add(send, leased=True))
            self.worker.hand(send, writing)
        await self.store.add(routed.get("backlog", []), due=now)
        later = now + timedelta(seconds=self.retry_initial)
        await self.store.add(routed.get("failing", []), due=later)
        await self.store.add(routed.get("dead", []), dead=True)
        if writing is not None:
            await writing
