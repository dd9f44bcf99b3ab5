"""Delivery workers: on every node, one per endpoint, sending the messages this node holds.

A node holds the messages it wrote (handed over by outbox.py) and those it claimed: retries
that are due and messages whose node died (their lease ran out). While it holds them, one
keep-alive (leases.py, as for fanout jobs) renews all their leases every third of
`firehose.lease_seconds`. A sent message is deleted; a failed one is given back, due after an
exponential backoff with jitter, until `give_up_after_seconds` have passed since it was first
due: then it is dead-lettered. A 410 disables the endpoint on every node (the store's
`firehose_endpoints`) and dead-letters its messages; while it is disabled its updates are not
written at all, only counted (`skip`: the metric at once, the store's count at the next poll);
`tidings firehose enable` (or `replay`) enables it again. Dead letters older than
`firehose.dead_retention_days` are deleted by any node, at most once a minute each.

Per endpoint at most `firehose.concurrency` sends are in flight (one for a FIFO queue, so that
each feed's updates go in order); a node claims more of an endpoint's messages only while it
holds fewer than `firehose.claim_batch` of them waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from ..config import FirehoseSettings
from ..metrics import (
    FIREHOSE_DEAD,
    FIREHOSE_DELIVERED,
    FIREHOSE_DISABLED,
    FIREHOSE_LATENCY,
    FIREHOSE_RETRIED,
    FIREHOSE_SKIPPED,
)
from ..runtime.background import TaskSet
from ..runtime.leases import keep_alive
from ..store.mongo.deliveries import DeliveryStore, Message
from .endpoints import Endpoint
from .messages import retry_delay
from .senders import Outcome, Sender

log = logging.getLogger(__name__)
Route = Literal["send", "backlog", "failing", "dead"]
PURGE_EVERY = 60.0  # seconds between two purges of old dead letters


class DeliveryWorker:
    def __init__(
        self,
        store: DeliveryStore,
        endpoints: Sequence[Endpoint],
        senders: Mapping[str, Sender],
        settings: FirehoseSettings,
    ) -> None:
        self.store, self.settings = store, settings
        self.endpoints = {e.key: e for e in endpoints}
        self.senders = dict(senders)
        self._queues: dict[str, asyncio.Queue[Message]] = {k: asyncio.Queue() for k in senders}
        self._slots = {
            k: asyncio.Semaphore(1 if s.ordered else settings.concurrency)
            for k, s in senders.items()
        }
        self._held: dict[str, Message] = {}
        # Messages handed over while their write to the store is still going on: sent at
        # once (their feeds hold the updates already), settled only once written.
        self._writes: dict[str, asyncio.Future[None]] = {}
        self._disabled: set[str] = set()
        self._failing_until: dict[str, float] = {}  # monotonic: the last send failed
        self._skipped: dict[str, int] = {}  # updates of disabled endpoints, to count in store
        self._purged_at = 0.0  # monotonic: the last purge of old dead letters
        self._sends = TaskSet("firehose send")

    def route(self, endpoint: str) -> Route:
        """Where new messages of `endpoint` go: to this node's sender at once ("send"); to the
        store, due now, for the next claim of any node, when this node holds a backlog of
        them already ("backlog"); due after the first retry delay, when its last send failed
        ("failing"); nowhere, when it is disabled ("dead": counted as skipped)."""
        if endpoint in self._disabled:
            return "dead"
        failing = self._failing_until.get(endpoint, 0.0) > time.monotonic()
        if endpoint not in self.senders or failing:
            return "failing"
        if self._queues[endpoint].qsize() >= self.settings.claim_batch:
            return "backlog"
        return "send"

    def skip(self, endpoint: str, updates: int) -> None:
        """`updates` feed updates of the disabled `endpoint` were not written."""
        FIREHOSE_SKIPPED.labels(self.endpoints[endpoint].kind).inc(updates)
        self._skipped[endpoint] = self._skipped.get(endpoint, 0) + updates

    def hand(
        self, messages: Sequence[Message], written: asyncio.Future[None] | None = None
    ) -> None:
        """Messages leased to this node: send them. `written`: their write to the store, when
        it is still going on (they are settled only once it is done)."""
        for message in messages:
            if message.id not in self._held and message.endpoint in self._queues:
                self._held[message.id] = message
                if written is not None:
                    self._writes[message.id] = written
                self._queues[message.endpoint].put_nowait(message)

    async def run(self) -> None:
        """Forever: the senders of every endpoint, the claims and the keep-alive."""
        async with asyncio.TaskGroup() as group:
            for key in self.senders:
                group.create_task(self._drain(key))
            group.create_task(self._claims())
            group.create_task(
                keep_alive(self._renew, self.settings.lease_seconds, "firehose messages",
                           self._nothing, self._drop_all)
            )  # fmt: skip

    async def _nothing(self) -> None:
        return None

    async def _renew(self) -> bool:
        writes = self._writes
        ids = [i for i in self._held if i not in writes or writes[i].done()]
        mine = await self.store.renew(ids)
        for lost in set(ids) - mine:  # another node took it over (this one was too slow)
            self._held.pop(lost, None)
        return True

    async def _drop_all(self) -> None:
        """The leases could not be renewed for a whole lease: other nodes may have taken the
        messages; forget them (one in flight may still go: at least once)."""
        log.warning("firehose: dropping %d messages whose leases ran out", len(self._held))
        self._held.clear()
        self._writes.clear()

    async def _drain(self, key: str) -> None:
        queue, slots, sender = self._queues[key], self._slots[key], self.senders[key]
        while True:
            batch = [await queue.get()]
            while len(batch) < sender.batch and not queue.empty():
                batch.append(queue.get_nowait())
            batch = [m for m in batch if m.id in self._held]  # not lost or dropped meanwhile
            if not batch:
                continue
            await slots.acquire()
            try:
                task = self._sends.spawn(self._send(key, sender, batch))
            except BaseException:
                slots.release()
                raise
            task.add_done_callback(lambda _: slots.release())

    async def _send(self, key: str, sender: Sender, batch: list[Message]) -> None:
        if key in self._disabled:
            buried = await self.store.bury([m.id for m in batch], "endpoint disabled")
            FIREHOSE_DEAD.labels(sender.kind).inc(buried)
            self._forget(batch)
            return
        try:
            outcomes = await sender.send(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("firehose: sending to %s failed", self._label(key), exc_info=True)
            outcomes = {m.id: Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
                        for m in batch}  # fmt: skip
        try:
            await self._settle(key, sender.kind, await self._written(batch), outcomes)
        finally:
            self._forget(batch)

    async def _written(self, batch: list[Message]) -> list[Message]:
        """Wait for the store writes of `batch` still going on; leave out the messages whose
        write failed (the step that wrote them fails and runs again: it writes them anew)."""
        writes = {w for m in batch if (w := self._writes.get(m.id)) is not None}
        if writes:
            await asyncio.wait(writes)
        return [m for m in batch if _succeeded(self._writes.get(m.id))]

    def _forget(self, batch: Sequence[Message]) -> None:
        for message in batch:
            self._held.pop(message.id, None)
            self._writes.pop(message.id, None)

    async def _settle(
        self, key: str, kind: str, batch: Sequence[Message], outcomes: Mapping[str, Outcome]
    ) -> None:
        now = datetime.now(UTC)
        sent = [m for m in batch if outcomes[m.id].ok]
        if sent:
            await self.store.done([m.id for m in sent])
            self._failing_until.pop(key, None)
            FIREHOSE_DELIVERED.labels(kind).inc(len(sent))
            for message in sent:
                latency = (now - message.created_at).total_seconds()
                FIREHOSE_LATENCY.labels(kind).observe(max(0.0, latency))
        gone = [m for m in batch if outcomes[m.id].gone]
        if gone:
            await self._disable(key, kind, outcomes[gone[0].id].error)
            return
        failed = [m for m in batch if not outcomes[m.id].ok]
        if not failed:
            return
        settings = self.settings
        self._failing_until[key] = time.monotonic() + settings.retry_initial_seconds
        give_up = timedelta(seconds=settings.give_up_after_seconds)
        for message in failed:
            error = outcomes[message.id].error
            if now - message.first_due >= give_up:
                await self.store.bury([message.id], error)
                FIREHOSE_DEAD.labels(kind).inc()
                log.error(
                    "firehose: message %s to %s dead-lettered: %s",
                    message.id, self._label(key), error,
                )  # fmt: skip
                continue
            delay = retry_delay(
                message.attempts, settings.retry_initial_seconds, settings.retry_max_seconds
            )
            await self.store.retry(message, now + timedelta(seconds=delay), error)
            FIREHOSE_RETRIED.labels(kind).inc()
        log.warning("firehose: %d messages to %s failed (%s); retried later",
                    len(failed), self._label(key), outcomes[failed[0].id].error)  # fmt: skip

    async def _disable(self, key: str, kind: str, reason: str) -> None:
        self._disabled.add(key)
        await self.store.disable(key, reason)
        buried = await self.store.bury_endpoint(key, f"endpoint disabled: {reason}")
        FIREHOSE_DISABLED.labels(kind).inc()
        FIREHOSE_DEAD.labels(kind).inc(buried)
        log.error(
            "firehose: %s answered %s: disabled, %d messages dead-lettered "
            "(`tidings firehose enable %d` enables it again, `replay --endpoint %d` sends them)",
            self._label(key), reason, buried, self.endpoints[key].number,
            self.endpoints[key].number,
        )  # fmt: skip

    def _label(self, key: str) -> str:
        endpoint = self.endpoints.get(key)
        return endpoint.label if endpoint is not None else "an endpoint no longer configured"

    async def _claims(self) -> None:
        """Forever: learn which endpoints are disabled (by any node), and claim the due
        messages of the others: retries, and those of dead nodes."""
        while True:
            try:
                await self._count_skipped()
                self._disabled = set(await self.store.disabled()) & set(self.senders)
                for key in self.senders:
                    room = self.settings.claim_batch - self._queues[key].qsize()
                    if key in self._disabled or room <= 0:
                        continue
                    self.hand(await self.store.claim(key, room))
                await self._purge()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("firehose: could not claim due messages")
            await asyncio.sleep(self.settings.poll_seconds)

    async def _count_skipped(self) -> None:
        skipped, self._skipped = self._skipped, {}
        for key, updates in skipped.items():
            await self.store.count_skipped(key, updates)

    async def _purge(self) -> None:
        """Delete the dead letters older than the retention (0: none), at most once a minute
        (or once a retention, if that is shorter)."""
        keep = self.settings.dead_retention_days * 86400.0
        if keep <= 0 or time.monotonic() - self._purged_at < min(PURGE_EVERY, keep):
            return
        self._purged_at = time.monotonic()
        purged = await self.store.purge(None, datetime.now(UTC) - timedelta(seconds=keep))
        if purged:
            log.info("firehose: deleted %d dead letters older than %g days", purged,
                     self.settings.dead_retention_days)  # fmt: skip

    async def close(self, task: asyncio.Task[None], grace: float) -> None:
        """Stop claiming, give the sends in flight `grace` seconds, then let other nodes take
        what this node still holds."""
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self._sends.drain(grace)
        released = await self.store.release_all()
        if released:
            log.info("firehose: released %d messages to other nodes", released)


def _succeeded(write: asyncio.Future[None] | None) -> bool:
    return write is None or (not write.cancelled() and write.exception() is None)
