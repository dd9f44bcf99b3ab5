"""Fanout jobs (`fanout_jobs`): the outbox of fanouts still to do, with a cursor and a lease.

A job is written before its insert is acknowledged, so a fanout cut short by a crash is never
lost: a job whose lease has run out is claimed by any node and resumed from its cursor.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from bson import ObjectId
from pymongo import ReturnDocument

from .mongo import Database, Document

JobKind = Literal["add", "remove"]


@dataclass(frozen=True)
class Cursor:
    """Followers done so far: every follower of `sources[:source]`, and of `sources[source]`
    those up to the follow `after`."""

    source: int = 0
    after: ObjectId | None = None


@dataclass
class Job:
    id: str
    kind: JobKind
    activity_id: str
    sources: list[str]
    foreign_id: str | None = None
    cursor: Cursor = field(default_factory=Cursor)
    resumed: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class JobStore:
    def __init__(self, db: Database, node_id: str, lease: timedelta) -> None:
        self.jobs = db["fanout_jobs"]
        self.node_id = node_id
        self.lease = lease

    async def create(
        self, kind: JobKind, activity_id: str, sources: list[str], foreign_id: str | None = None
    ) -> Job:
        """Write a job leased to this node, which runs it at once."""
        job = Job(str(uuid.uuid4()), kind, activity_id, sources, foreign_id)
        await self.jobs.insert_one({
            "_id": job.id, "kind": kind, "activity_id": activity_id, "sources": sources,
            "foreign_id": foreign_id, "cursor": {"source": 0, "after": None},
            "owner": self.node_id, "lease_until": self._lease_end(), "created_at": job.created_at,
        })  # fmt: skip
        return job

    async def claim_abandoned(self) -> Job | None:
        """Take over the oldest job whose owner stopped renewing its lease."""
        now = datetime.now(UTC)
        doc = await self.jobs.find_one_and_update(
            {"lease_until": {"$lt": now}},
            {"$set": {"owner": self.node_id, "lease_until": self._lease_end()}},
            sort=[("lease_until", 1)],
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _job(doc, resumed=True)

    async def advance(self, job: Job, cursor: Cursor) -> bool:
        """Record progress and renew the lease; False if another node has taken the job."""
        result = await self.jobs.update_one(
            {"_id": job.id, "owner": self.node_id},
            {
                "$set": {
                    "cursor": {"source": cursor.source, "after": cursor.after},
                    "lease_until": self._lease_end(),
                }
            },
        )
        job.cursor = cursor
        return result.matched_count == 1

    async def renew(self, job: Job) -> bool:
        result = await self.jobs.update_one(
            {"_id": job.id, "owner": self.node_id}, {"$set": {"lease_until": self._lease_end()}}
        )
        return result.matched_count == 1

    async def finish(self, job: Job) -> None:
        await self.jobs.delete_one({"_id": job.id, "owner": self.node_id})

    async def cancel(self, kind: JobKind, activity_id: str) -> int:
        """Drop the jobs of an activity, wherever they run: their owner loses its lease."""
        result = await self.jobs.delete_many({"kind": kind, "activity_id": activity_id})
        return result.deleted_count

    async def release_all(self) -> int:
        """On a graceful stop: let other nodes take our jobs now rather than after the lease."""
        result = await self.jobs.update_many(
            {"owner": self.node_id}, {"$set": {"lease_until": datetime(1970, 1, 1, tzinfo=UTC)}}
        )
        return result.modified_count

    async def pending(self) -> int:
        return await self.jobs.count_documents({})

    def _lease_end(self) -> datetime:
        return datetime.now(UTC) + self.lease


def _job(doc: Document, resumed: bool) -> Job:
    cursor = doc.get("cursor") or {}
    return Job(
        id=doc["_id"],
        kind=doc["kind"],
        activity_id=doc["activity_id"],
        sources=list(doc["sources"]),
        foreign_id=doc.get("foreign_id"),
        cursor=Cursor(cursor.get("source", 0), cursor.get("after")),
        resumed=resumed,
        created_at=doc["created_at"],
    )
