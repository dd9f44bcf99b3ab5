"""The bulk writes of `tidings import` that no request makes: activity documents of many feeds
in one insert, the ids an import gave activities (their source's ids, when they differ),
reactions in one insert, and their counters recounted.

Every write here is idempotent, so that an import killed between two of them and run again
from its checkpoint stores each record once: inserts into unique keys (duplicates skipped),
counters set from the reactions stored (never incremented).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from ...domain.activities import Activity
from ...domain.reactions import Reaction
from . import bulk
from .client import Database, Document, in_chunks
from .owners import activity_doc
from .reactions import ReactionStore, reaction_document, reaction_of


class ImportWrites:
    def __init__(self, db: Database, reactions: ReactionStore) -> None:
        self.activities = db["activities"]
        self.ids = db["import_ids"]  # {_id: an id of the source, id: the activity's id here}
        self.reactions = reactions

    async def insert_activities(self, owned: Sequence[tuple[Activity, str | None]]) -> list[int]:
        """Insert the documents of activities (each owned by its feed, with its `to`; None:
        by no feed yet) in one unordered insert; answer the indexes of those stored already."""
        if not owned:
            return []
        docs = [
            activity_doc(a, {} if feed is None else {feed: a.to}, feed or "") for a, feed in owned
        ]
        try:
            await self.activities.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            return bulk.duplicates(exc)
        return []

    async def owners(self, ids: Collection[str]) -> dict[str, Document]:
        """The ownership of the stored activities of `ids` (removed ones left out)."""
        found: dict[str, Document] = {}
        for part in in_chunks(list(ids)):
            query = {"_id": {"$in": part}, "removed": {"$ne": True}}
            async for doc in self.activities.find(query, {"owners": 1, "feed": 1, "to": 1}):
                found[doc["_id"]] = doc
        return found

    async def remember_ids(self, pairs: dict[str, str]) -> None:
        """Source id → id here, for the activities whose ids changed on the way in."""
        if pairs:
            await self.ids.bulk_write(
                [UpdateOne({"_id": k}, {"$set": {"id": v}}, upsert=True) for k, v in pairs.items()],
                ordered=False,
            )

    async def translate(self, ids: Collection[str]) -> dict[str, str]:
        """The ids here of source ids an import remembered (others are absent)."""
        found: dict[str, str] = {}
        for part in in_chunks(list(ids)):
            async for doc in self.ids.find({"_id": {"$in": part}}):
                found[doc["_id"]] = doc["id"]
        return found

    async def reactions_of(self, ids: Collection[str]) -> dict[str, Reaction]:
        """The stored reactions of `ids`, deleted ones too (a child may be imported under a
        parent deleted after it was added)."""
        found: dict[str, Reaction] = {}
        for part in in_chunks(list(ids)):
            async for doc in self.reactions.reactions.find({"_id": {"$in": part}}):
                found[doc["_id"]] = reaction_of(doc)
        return found

    async def insert_reactions(self, reactions: Sequence[Reaction]) -> int:
        """Insert reactions in one unordered insert (those stored already skipped), uncounted;
        `recount` then sets the counters they change. Answers how many were new."""
        if not reactions:
            return 0
        docs = [reaction_document(r) for r in reactions]
        try:
            await self.reactions.reactions.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            return len(docs) - len(bulk.duplicates(exc))
        return len(docs)

    async def recount(self, activity_ids: Collection[str], parents: Collection[str]) -> None:
        """Set the counters of activities and of parent reactions to what their live reactions
        are (one aggregation per IN_CHUNK of them), raising each activity's reaction version
        once."""
        children = await self._kinds("parent", parents, {})
        if parents:
            await self.reactions.reactions.bulk_write(
                [UpdateOne({"_id": p}, {"$set": {"children_counts": children.get(p, {})}})
                 for p in parents], ordered=False,
            )  # fmt: skip
        counts = await self._kinds("activity_id", activity_ids, {"parent": ""})
        writes = [
            UpdateOne({"_id": a}, {"$set": {"counts": counts.get(a, {})}, "$inc": {"v": 1}},
                      upsert=True)
            for a in activity_ids
        ]  # fmt: skip
        if writes:
            await self.reactions.counts.bulk_write(writes, ordered=False)
            self.reactions.summaries.forget(list(activity_ids))

    async def _kinds(
        self, field: str, ids: Collection[str], match: Document
    ) -> dict[str, dict[str, int]]:
        """Live reactions per kind, of each of `ids` (by `field`)."""
        found: dict[str, dict[str, int]] = {}
        for part in in_chunks(list(ids)):
            cursor = await self.reactions.reactions.aggregate([
                {"$match": {field: {"$in": part}, "deleted_at": None, **match}},
                {"$group": {"_id": {"of": f"${field}", "kind": "$kind"}, "n": {"$sum": 1}}},
            ])  # fmt: skip
            rows: list[dict[str, Any]] = await cursor.to_list()
            for row in rows:
                found.setdefault(row["_id"]["of"], {})[row["_id"]["kind"]] = row["n"]
        return found
