"""Firehose messages (`deliveries`): the outbox of feed updates still to hand over to an endpoint.

A message is written in the step that makes its updates due (before the insert is answered, or
before a fanout batch counts as done), leased to the node that wrote it, which sends it at once.
The lease is the fanout jobs' (store/mongo/leases.py): `owner` and `lease_until`, renewed while the
message is in flight, taken over by any node once it runs out. A message waiting for a retry
has no owner, and `lease_until` is the time it is due: one index answers "what may I take now".
Delivered messages are deleted; dead ones (`state: "dead"`) are kept until replayed, purged,
or older than `firehose.dead_retention_days`.

`firehose_endpoints` holds the endpoints disabled by an answer 410 (Gone), by endpoint key, with
the count of updates not written for it since (`skipped`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import BulkWriteError

from . import bulk
from .client import Database, Document
from .leases import EPOCH, Leases

DUE, DEAD = "due", "dead"


@dataclass
class Message:
    id: str  # the webhook-id: stable across retries
    endpoint: str  # the endpoint's key (firehose/endpoints.py)
    body: str  # the JSON list of updates, as sent
    created_at: datetime  # when the insert that caused it arrived (latency metric)
    attempts: int = 0
    first_due: datetime = field(default_factory=lambda: datetime.now(UTC))


class DeliveryStore:
    def __init__(self, db: Database, node_id: str, lease: timedelta) -> None:
        self.deliveries = db["deliveries"]
        self.endpoints = db["firehose_endpoints"]
        self.node_id = node_id
        self.leases = Leases(self.deliveries, node_id, lease)

    def lease_end(self) -> datetime:
        return self.leases.end()

    async def add(
        self,
        messages: Sequence[Message],
        leased: bool = False,
        due: datetime | None = None,
        dead: bool = False,
    ) -> None:
        """Write messages: leased to this node (`leased`), due at `due` for any node, or dead
        (their endpoint is disabled). A message id that exists already (a fanout batch run
        again) is left as it is."""
        if not messages:
            return
        owner, until = (self.node_id, self.lease_end()) if leased else (None, due or EPOCH)
        extra: dict[str, Any] = {"dead_at": datetime.now(UTC)} if dead else {}
        docs = [
            {"_id": m.id, "endpoint": m.endpoint, "body": m.body, "state": DEAD if dead else DUE,
             "owner": owner, "lease_until": until, "attempts": 0, "created_at": m.created_at,
             "first_due": m.first_due, **extra}
            for m in messages
        ]  # fmt: skip
        try:
            await self.deliveries.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            bulk.duplicates(exc)  # repeats are left as they are; anything else raises

    async def claim(self, endpoint: str, limit: int) -> list[Message]:
        """Lease up to `limit` due messages of `endpoint` (retries due now, and messages whose
        node stopped renewing their lease), oldest due first."""
        now = datetime.now(UTC)
        wanted = {"endpoint": endpoint, "state": DUE, "lease_until": {"$lt": now}}
        found = self.deliveries.find(wanted, {"_id": 1}).sort("lease_until", 1).limit(limit)
        ids = [doc["_id"] async for doc in found]
        if not ids:
            return []
        token = uuid.uuid4().hex  # which of them this claim got (others may claim at once)
        await self.deliveries.update_many(
            {**wanted, "_id": {"$in": ids}},
            {"$set": {"owner": self.node_id, "lease_until": self.lease_end(), "claim": token}},
        )
        got = self.deliveries.find({"_id": {"$in": ids}, "claim": token})
        return [_message(doc) async for doc in got]

    async def renew(self, ids: Sequence[str]) -> set[str]:
        """Renew the leases of messages in flight; answer those still this node's."""
        return await self.leases.renew(ids)

    async def done(self, ids: Sequence[str]) -> None:
        if ids:
            await self.deliveries.delete_many({"_id": {"$in": list(ids)}})

    async def release(self, ids: Sequence[str], due: datetime) -> None:
        """Messages written leased to this node (outbox `hold`): due at `due` for any node."""
        if ids:
            await self.deliveries.update_many(
                {"_id": {"$in": list(ids)}, "owner": self.node_id},
                {"$set": {"owner": None, "lease_until": due}},
            )

    async def retry(self, message: Message, due: datetime, error: str) -> None:
        """Give the message back, due again at `due` (any node may take it then)."""
        await self.deliveries.update_one(
            {"_id": message.id, "owner": self.node_id},
            {"$set": {"owner": None, "lease_until": due, "last_error": error[:500]},
             "$inc": {"attempts": 1}},
        )  # fmt: skip

    async def bury(self, ids: Sequence[str], error: str) -> int:
        """Dead-letter messages: kept, out of the way, until replayed."""
        result = await self.deliveries.update_many(
            {"_id": {"$in": list(ids)}, "state": DUE},
            {"$set": {"state": DEAD, "owner": None, "dead_at": datetime.now(UTC),
                      "last_error": error[:500]}, "$inc": {"attempts": 1}},
        )  # fmt: skip
        return result.modified_count

    async def bury_endpoint(self, endpoint: str, error: str) -> int:
        result = await self.deliveries.update_many(
            {"endpoint": endpoint, "state": DUE},
            {"$set": {"state": DEAD, "owner": None, "dead_at": datetime.now(UTC),
                      "last_error": error[:500]}},
        )  # fmt: skip
        return result.modified_count

    async def release_all(self) -> int:
        """On a graceful stop: other nodes may take this node's messages now."""
        return await self.leases.release_all()

    async def disable(self, endpoint: str, reason: str) -> None:
        await self.endpoints.update_one(
            {"_id": endpoint},
            {"$set": {"disabled_at": datetime.now(UTC), "reason": reason}},
            upsert=True,
        )

    async def disabled(self) -> dict[str, Document]:
        return {doc["_id"]: doc async for doc in self.endpoints.find({})}

    async def count_skipped(self, endpoint: str, updates: int) -> None:
        """`updates` of the disabled `endpoint` were not written (nothing if it was enabled
        meanwhile: its document is gone, and is not made again)."""
        await self.endpoints.update_one({"_id": endpoint}, {"$inc": {"skipped": updates}})

    async def enable(self, endpoint: str) -> Document | None:
        """Enable `endpoint` again; answer what its disabled document said (None: it was not
        disabled). Its dead letters stay dead (`replay` sends them)."""
        found: Document | None = await self.endpoints.find_one_and_delete({"_id": endpoint})
        return found

    async def purge(self, endpoint: str | None, before: datetime | None) -> int:
        """Delete dead letters (of `endpoint`, dead before `before`)."""
        wanted: dict[str, Any] = {"state": DEAD}
        if endpoint is not None:
            wanted["endpoint"] = endpoint
        if before is not None:
            wanted["dead_at"] = {"$lt": before}
        result = await self.deliveries.delete_many(wanted)
        return result.deleted_count

    async def replay(self, endpoint: str | None, since: datetime | None) -> int:
        """Dead letters (of `endpoint`, dead since `since`) back to due now; re-enables the
        endpoint (all of them without `endpoint`)."""
        wanted: dict[str, Any] = {"state": DEAD}
        if endpoint is not None:
            wanted["endpoint"] = endpoint
        if since is not None:
            wanted["dead_at"] = {"$gte": since}
        await self.endpoints.delete_many({} if endpoint is None else {"_id": endpoint})
        now = datetime.now(UTC)
        result = await self.deliveries.update_many(
            wanted,
            {"$set": {"state": DUE, "owner": None, "lease_until": EPOCH, "attempts": 0,
                      "first_due": now}, "$unset": {"dead_at": ""}},
        )  # fmt: skip
        return result.modified_count

    async def status(self) -> dict[str, dict[str, int]]:
        """Per endpoint key: messages due (waiting for a first try or a retry), in flight
        (leased to a live node), dead."""
        now = datetime.now(UTC)
        out: dict[str, dict[str, int]] = {}
        for endpoint in await self.deliveries.distinct("endpoint"):
            due = {"endpoint": endpoint, "state": DUE}
            flying = {**due, "owner": {"$ne": None}, "lease_until": {"$gte": now}}
            count = self.deliveries.count_documents
            all_due, in_flight = await count(due), await count(flying)
            dead = await count({"endpoint": endpoint, "state": DEAD})
            out[endpoint] = {"due": all_due - in_flight, "in_flight": in_flight, "dead": dead}
        return out


def _message(doc: Document) -> Message:
    return Message(
        id=doc["_id"], endpoint=doc["endpoint"], body=doc["body"], created_at=doc["created_at"],
        attempts=int(doc.get("attempts", 0)), first_due=doc.get("first_due") or doc["created_at"],
    )  # fmt: skip
