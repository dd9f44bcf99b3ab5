"""`reactions` and `reaction_counts`: every query of the Reactions API.

Counts are counters kept by atomic `$inc`, so concurrent adds and deletes never lose one:
an activity's in `reaction_counts` (`{_id: activity_id, counts: {kind: n}}`), a reaction's
children's in its own document (`children_counts`). A counter moves only with the write that
changed what it counts, decided by that write's own answer: an insert that took, or the
conditional write that flipped the document's `counted` flag (`_uncount`, `restore`), so a
repeated or concurrent delete never counts twice. A kind whose reactions are all gone keeps
its counter at 0, as in Stream.

Every write to an activity's reactions (or their children) raises the activity's version `v`
in the same update as its counter, and answers the document that update left (`Summary`): the
exact counts at that version, with no read after the write.

The enrichment of a page of activities (`counts_of`, `latest_of`) costs one query each,
whatever the page's size: never one per activity.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ...domain.errors import ConflictError
from ...domain.reactions import MAX_DEPTH, Reaction, Summary
from ..memory.coalesce import Coalescer
from ..memory.object_cache import ObjectCache
from .client import Database, Document

Parent = Literal["activity_id", "parent"]
Field = Literal["activity_id", "user_id", "parent"]
Latest = dict[str, dict[str, list[Reaction]]]  # parent id -> kind -> newest first


@dataclass(frozen=True)
class Query:
    """One page of a filter: `field` = `value` (`activity_id`: reactions to the activity, not
    their children), optionally of one `kind`, within the id bounds, newest first unless it is
    bounded from below only (then oldest first, as Stream pages forward)."""

    field: Field
    value: str
    kind: str | None
    bounds: Mapping[str, str]
    limit: int

    @property
    def ascending(self) -> bool:
        keys = self.bounds.keys()
        return bool(keys & {"id_gt", "id_gte"}) and not keys & {"id_lt", "id_lte"}


class Deleted(NamedTuple):
    """What a hard delete did: whether it took the reaction, and the counts it left."""

    gone: bool
    left: Summary | None


class ReactionStore:
    def __init__(self, db: Database, summaries: ObjectCache[str, Summary] | None = None) -> None:
        self.reactions = db["reactions"]
        self.counts = db["reaction_counts"]
        # the activities' versions and counters enriched reads look up, forgotten on writes
        self.summaries: ObjectCache[str, Summary] = summaries or ObjectCache(0)
        # what memory lacks, read for every page of a tick at once (one `$in`)
        self._summaries_read: Coalescer[str, Summary] = Coalescer(self._summaries_of)

    async def insert(self, reaction: Reaction) -> Summary:
        """Store a new reaction and count it on its parent (or its activity); answers the
        activity's counts as its count left them. An id taken already: ConflictError (409),
        and nothing is counted."""
        try:
            await self.reactions.insert_one(_document(reaction))
        except DuplicateKeyError as exc:
            raise ConflictError(
                f"a reaction with id {reaction.id} exists already", {"id": ["already taken"]}
            ) from exc
        return await self._count(reaction, 1)

    async def get(self, reaction_id: str) -> Reaction | None:
        doc = await self.reactions.find_one({"_id": reaction_id})
        return None if doc is None else _reaction(doc)

    async def update(
        self, reaction_id: str, changes: Mapping[str, Any], now: datetime
    ) -> tuple[Reaction, Summary] | None:
        """Set fields of a reaction that is not (hard) deleted, and the activity's counts as
        the update left them; None when there is none."""
        doc = await self.reactions.find_one_and_update(
            {"_id": reaction_id},
            {"$set": {**changes, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        reaction = _reaction(doc)
        return reaction, await self._changed(reaction.activity_id)

    async def soft_delete(self, reaction_id: str, now: datetime) -> Summary | None:
        """Mark deleted (it stays readable by id, with `deleted_at`) and uncount it: the
        activity's counts as it left them. None when there is no such live reaction (a second
        soft delete changes nothing)."""
        return await self._uncount({"_id": reaction_id, "deleted_at": None}, {"deleted_at": now})

    async def restore(self, reaction_id: str, now: datetime) -> Summary | None:
        """Undo a soft delete and count it again (the activity's counts as that left them);
        None when it is not soft-deleted. The time
        is kept (`restored_at`, not answered) for the watchers' recovery (`changed_since`)."""
        doc = await self.reactions.find_one_and_update(
            {"_id": reaction_id, "deleted_at": {"$ne": None}, "counted": False},
            {"$unset": {"deleted_at": ""}, "$set": {"counted": True, "restored_at": now}},
        )
        if doc is None:
            return None
        return await self._count(_reaction(doc), 1)

    async def delete(self, reaction_id: str) -> Deleted:
        """Delete a reaction, uncounted first (unless a soft delete uncounted it already), so
        that a delete cut short between the two is finished by its retry without counting
        twice. `gone` is False when another delete took it first; `left`: the activity's
        counts as the uncount left them (None when this delete counted nothing down)."""
        left = await self._uncount({"_id": reaction_id}, {})
        result = await self.reactions.delete_one({"_id": reaction_id})
        return Deleted(result.deleted_count == 1, left)

    async def _uncount(self, match: Document, changes: Document) -> Summary | None:
        """The one way a counted reaction stops being counted: `counted` flips from true to
        false in the same conditional write that makes `changes`, and only the write that
        flipped it decrements the counter (and answers the counts it left; None for the
        others). Two racing deletes (hard and soft, or twice the same) flip it once between
        them, whatever the order."""
        doc = await self.reactions.find_one_and_update(
            {**match, "counted": True}, {"$set": {**changes, "counted": False}}
        )
        if doc is None:
            return None
        return await self._count(_reaction(doc), -1)

    async def descendants_with_targets(self, reaction_id: str) -> list[Reaction]:
        """The children (at any depth) that put activities in target feeds."""
        docs = await self.reactions.find(
            {"ancestors": reaction_id, "target_feeds.0": {"$exists": True}}
        ).to_list()
        return [_reaction(d) for d in docs]

    async def delete_descendants(self, reaction_id: str) -> int:
        """The children of a deleted reaction go with it (their counters with their parents)."""
        result = await self.reactions.delete_many({"ancestors": reaction_id})
        return result.deleted_count

    async def page(self, query: Query) -> list[Reaction]:
        """A filter page of up to `query.limit` live reactions."""
        found: Document = {query.field: query.value, "deleted_at": None}
        if query.field == "activity_id":
            found["parent"] = ""
        if query.kind is not None:
            found["kind"] = query.kind
        ids = {f"${op[3:]}": value for op, value in query.bounds.items()}
        if ids:
            found["_id"] = ids
        order = 1 if query.ascending else -1
        docs = await self.reactions.find(found).sort("_id", order).limit(query.limit).to_list()
        return [_reaction(d) for d in docs]

    async def changed_since(self, activity_id: str, since: datetime, limit: int) -> list[Reaction]:
        """The reactions of an activity (children too) added, updated, soft-deleted or
        restored after `since`, soft-deleted ones included, oldest id first, at most `limit`."""
        after = {"$gt": since}
        changed = [{"created_at": after}, {"updated_at": after}, {"deleted_at": after},
                   {"restored_at": after}]  # fmt: skip
        docs = self.reactions.find({"activity_id": activity_id, "$or": changed}).sort("_id", 1)
        return [_reaction(d) for d in await docs.limit(limit).to_list()]

    async def many(self, reaction_ids: Collection[str]) -> dict[str, Reaction]:
        """The live reactions of `reaction_ids` (an enrichment's `SR:` references): one query."""
        docs = await self.reactions.find(
            {"_id": {"$in": list(reaction_ids)}, "deleted_at": None}
        ).to_list()
        return {d["_id"]: _reaction(d) for d in docs}

    async def scan(self) -> AsyncIterator[Reaction]:
        """Every reaction, parents before their children (an export's read)."""
        for depth in range(MAX_DEPTH):
            async for doc in self.reactions.find({"ancestors": {"$size": depth}}).sort("_id", 1):
                yield _reaction(doc)

    async def ids_of_user(self, user_id: str, limit: int) -> list[str]:
        """Ids of the reactions `user_id` added (soft-deleted ones too: they are still held),
        newest first, at most `limit` (a data export)."""
        docs = self.reactions.find({"user_id": user_id}, {"_id": 1}).sort("_id", -1)
        return [d["_id"] async for d in docs.limit(limit)]

    async def summaries_of(self, activity_ids: Sequence[str]) -> dict[str, Summary]:
        """The version and the counters of each activity (those never reacted to are left
        out): one query, for those memory does not hold."""
        return await self.summaries.read_through(activity_ids, self._summaries_read.get_many)

    async def _summaries_of(self, activity_ids: Sequence[str]) -> dict[str, Summary]:
        docs = await self.counts.find({"_id": {"$in": list(activity_ids)}}).to_list()
        return {d["_id"]: _summary(d) for d in docs}

    async def summary(self, activity_id: str) -> Summary:
        """The version and the counters of an activity as the store holds them now (not from
        memory): what a reaction event read after its write carries."""
        return (await self._summaries_of([activity_id])).get(activity_id, Summary(0, {}))

    async def counts_of(self, activity_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """`reaction_counts` of each activity (those with none are left out): one query."""
        docs = await self.counts.find({"_id": {"$in": list(activity_ids)}}).to_list()
        return {d["_id"]: dict(d.get("counts", {})) for d in docs}

    async def latest_of(
        self,
        parent: Parent,
        ids: Sequence[str],
        per_kind: int,
        user_id: str | None = None,
        kinds: Sequence[str] | None = None,
    ) -> Latest:
        """The newest `per_kind` live reactions of each kind of each of `ids`: reactions to
        activities (`parent="activity_id"`: `latest_reactions`) or children of reactions
        (`parent="parent"`: `latest_children`); only `user_id`'s when given (`own_reactions`,
        `own_children`). One aggregation for the whole page, each group cut to `per_kind` in
        the store ($topN), never one query per activity."""
        if not ids or per_kind < 1:
            return {}
        match: Document = {parent: {"$in": list(ids)}, "deleted_at": None}
        if parent == "activity_id":
            match["parent"] = ""
        if user_id is not None:
            match["user_id"] = user_id
        if kinds is not None:
            match["kind"] = {"$in": list(kinds)}
        cursor = await self.reactions.aggregate([
            {"$match": match},
            {"$group": {
                "_id": {"of": f"${parent}", "kind": "$kind"},
                "items": {"$topN": {"n": per_kind, "sortBy": {"_id": -1}, "output": "$$ROOT"}},
            }},
        ])  # fmt: skip
        latest: Latest = {}
        async for group in cursor:
            key = group["_id"]
            items = sorted(group["items"], key=lambda d: d["_id"], reverse=True)
            latest.setdefault(key["of"], {})[key["kind"]] = [_reaction(d) for d in items]
        return latest

    async def newest_children(self, ids: Sequence[str], most: int) -> Latest:
        """The newest `most` live children of each of `ids`, whatever their kinds, grouped by
        kind (newest first): a read reaction's `latest_children`, as Stream answers them (ten
        in all, not ten a kind). One aggregation for the whole page ($topN)."""
        if not ids or most < 1:
            return {}
        cursor = await self.reactions.aggregate([
            {"$match": {"parent": {"$in": list(ids)}, "deleted_at": None}},
            {"$group": {
                "_id": "$parent",
                "items": {"$topN": {"n": most, "sortBy": {"_id": -1}, "output": "$$ROOT"}},
            }},
        ])  # fmt: skip
        latest: Latest = {}
        async for group in cursor:
            kinds = latest.setdefault(group["_id"], {})
            for doc in sorted(group["items"], key=lambda d: d["_id"], reverse=True):
                kinds.setdefault(doc["kind"], []).append(_reaction(doc))
        return latest

    async def recount(self, activity_id: str) -> dict[str, int]:
        """The live reactions to an activity counted from the documents (what the counters
        must equal: the tests compare them)."""
        cursor = await self.reactions.aggregate([
            {"$match": {"activity_id": activity_id, "parent": "", "deleted_at": None}},
            {"$group": {"_id": "$kind", "n": {"$sum": 1}}},
        ])  # fmt: skip
        return {row["_id"]: row["n"] async for row in cursor}

    async def _count(self, reaction: Reaction, step: int) -> Summary:
        """Move the counter, and the activity's version (`v`) after it: every write to an
        activity's reactions (or their children) raises `v` once it is done, so a page's
        latest reactions read after `v` was read are at least as new as `v` says (what
        store/memory/reaction_cache.py relies on). Answers the activity's document as that
        update left it: one round trip, as `update_one`'s."""
        field = f"{reaction.kind}"
        if reaction.parent:
            await self.reactions.update_one(
                {"_id": reaction.parent}, {"$inc": {f"children_counts.{field}": step}}
            )
            return await self._changed(reaction.activity_id)
        return await self._bump(reaction.activity_id, {f"counts.{field}": step, "v": 1})

    async def _changed(self, activity_id: str) -> Summary:
        return await self._bump(activity_id, {"v": 1})

    async def _bump(self, activity_id: str, inc: Document) -> Summary:
        doc = await self.counts.find_one_and_update(
            {"_id": activity_id}, {"$inc": inc}, upsert=True,
            return_document=ReturnDocument.AFTER,
        )  # fmt: skip
        if doc is None:  # racing upserts of a first counter: a store may answer none
            doc = await self.counts.find_one({"_id": activity_id})
        self.summaries.forget([activity_id])
        return _summary(doc or {})


def _summary(doc: Document) -> Summary:
    return Summary(doc.get("v", 0), dict(doc.get("counts", {})))


def _document(reaction: Reaction) -> Document:
    doc: Document = {
        "_id": reaction.id,
        "kind": reaction.kind,
        "activity_id": reaction.activity_id,
        "user_id": reaction.user_id,
        "data": reaction.data,
        "parent": reaction.parent,
        "ancestors": list(reaction.ancestors),
        "target_feeds": list(reaction.target_feeds),
        "children_counts": {},
        "counted": True,  # flipped by the one write that uncounts it (_uncount)
        "created_at": reaction.created_at,
        "updated_at": reaction.updated_at,
    }
    if reaction.target_feeds_extra_data is not None:
        doc["target_feeds_extra_data"] = reaction.target_feeds_extra_data
    return doc


def reaction_document(reaction: Reaction) -> Document:
    """The document of a reaction stored as it is (an import's): its deletion kept, and then
    not counted; its counters are set by a recount (store/mongo/imports.py)."""
    doc = _document(reaction)
    if reaction.deleted_at is not None:
        doc["deleted_at"], doc["counted"] = reaction.deleted_at, False
    return doc


def reaction_of(doc: Document) -> Reaction:
    """The reaction of a `reactions` document (deleted or not)."""
    return _reaction(doc)


def _reaction(doc: Document) -> Reaction:
    return Reaction(
        id=doc["_id"],
        kind=doc["kind"],
        activity_id=doc["activity_id"],
        user_id=doc["user_id"],
        data=doc.get("data") or {},
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        parent=doc.get("parent", ""),
        ancestors=tuple(doc.get("ancestors", ())),
        target_feeds=tuple(doc.get("target_feeds", ())),
        target_feeds_extra_data=doc.get("target_feeds_extra_data"),
        children_counts=dict(doc.get("children_counts") or {}),
        deleted_at=doc.get("deleted_at"),
    )
