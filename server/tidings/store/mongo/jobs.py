"""Fanout jobs (`fanout_jobs`): the outbox of fanouts still to do, with a cursor and a lease.

A job is written before its insert is acknowledged, so a fanout cut short by a crash is never
lost: a job whose lease has run out is claimed by any node and resumed from its cursor.
Kinds: "add" and "remove" copy (remove) an activity into (from) the followers of its feeds;
"to_pull" and "to_push" switch a feed's fanout mode (fanout/switches.py), one job per switch
(its id names the feed and its pull period, so that a switch is never started twice).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from .client import Database, Document
from .leases import Leases

JobKind = Literal["add", "remove", "to_pull", "to_push"]


@dataclass(frozen=True)
class Cursor:
    """Followers done so far: every follower of `sources[:source]`, and of `sources[source]`
    those in its follower chunks up to number `after`."""

    source: int = 0
    after: int | None = None


@dataclass
class Job:
    id: str
    kind: JobKind
    activity_id: str
    sources: list[str]
    foreign_id: str | None = None
    # Sources whose batches emit nothing: their followers' subscribers had the event already
    # (a pull feed's update goes to one room that all of them are in).
    silent: list[str] = field(default_factory=list)
    cursor: Cursor = field(default_factory=Cursor)
    resumed: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class JobStore:
    def __init__(self, db: Database, node_id: str, lease: timedelta) -> None:
        self.jobs = db["fanout_jobs"]
        self.node_id = node_id
        self.lease = lease
        self.leases = Leases(self.jobs, node_id, lease)

    async def create(
        self,
        kind: JobKind,
        activity_id: str,
        sources: list[str],
        foreign_id: str | None = None,
        silent: list[str] | None = None,
    ) -> Job:
        """Write a job leased to this node, which runs it at once."""
        job = Job(str(uuid.uuid4()), kind, activity_id, sources, foreign_id, silent or [])
        await self._insert(job)
        return job

    async def create_once(self, job_id: str, kind: JobKind, sources: list[str]) -> Job | None:
        """Write the job `job_id` unless it exists already (then None)."""
        job = Job(job_id, kind, "", sources)
        try:
            await self._insert(job)
        except DuplicateKeyError:
            return None
        return job

    async def _insert(self, job: Job) -> None:
        await self.jobs.insert_one({
            "_id": job.id, "kind": job.kind, "activity_id": job.activity_id,
            "sources": job.sources, "foreign_id": job.foreign_id, "silent": job.silent,
            "cursor": {"source": 0, "after": None}, "owner": self.node_id,
            "lease_until": self._lease_end(), "created_at": job.created_at,
        })  # fmt: skip

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
        return await self.leases.release_all()

    async def pending(self) -> int:
        return await self.jobs.count_documents({})

    def _lease_end(self) -> datetime:
        return self.leases.end()


def _job(doc: Document, resumed: bool) -> Job:
    cursor = doc.get("cursor") or {}
    after = cursor.get("after")
    return Job(
        id=doc["_id"],
        kind=doc["kind"],
        activity_id=doc["activity_id"],
        sources=list(doc["sources"]),
        foreign_id=doc.get("foreign_id"),
        silent=list(doc.get("silent") or []),
        # A cursor of another shape (an older version's) restarts the source: batches are
        # idempotent.
        cursor=Cursor(cursor.get("source", 0), after if isinstance(after, int) else None),
        resumed=resumed,
        created_at=doc["created_at"],
    )
