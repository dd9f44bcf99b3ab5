"""Groups merged in at read time, and their marks (`group_marks`).

A grouped feed that follows a pull feed gets that feed's new activities merged in at read time
(feeds/reads.py), never copied: a group may exist only by the merge, or hold merged activities
newer than its stored part. Such marks are stored per (feed, group key) in `group_marks` as the
group id (its newest activity id) the mark saw, `seen` / `read`: the merged part is seen while
no merged activity is newer than that (a newer one joining makes the group unseen again, as a
copied one does); the stored part keeps its own flags, set by the same mark (conditional on the
stored group being as read). Materialising the group on mark instead would put entries in the
feed that a removal through the pull feed does not know of (it removes merged activities
without a pass over the followers), or copy a celebrity's activities after all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from pymongo import UpdateOne

from ...domain.aggregation import MAX_GROUP_ACTIVITIES, Group, Joining, apply
from ...domain.ids import id_time
from .client import Database, Document

COUNT_CHUNK = 100  # feeds or keys per `$in` (the embedded store's $in is quadratic)
MarkAll = bool | Collection[str]  # mark_seen / mark_read: every group, or these group ids


class MergedGroups:
    def __init__(self, db: Database) -> None:
        self.marks = db["group_marks"]
        self.groups = db["feed_groups"]  # a mark marks the stored part of a group too
        self.follows = db["follows"]

    async def following_pull(self, feeds: Sequence[str]) -> set[str]:
        """Those of `feeds` that follow some pull feed (their follows carry `pull_source`, a
        sparse index of `follows`): their groups merge at read time. One query per
        COUNT_CHUNK feeds."""
        follows = self.follows
        found: set[str] = set()
        for start in range(0, len(feeds), COUNT_CHUNK):
            chunk = list(feeds[start : start + COUNT_CHUNK])
            query = {"pull_source": {"$in": chunk}}
            found |= {d["pull_source"] async for d in follows.find(query, {"pull_source": 1})}
        return found

    async def merge_marks(self, feed: str, keys: Sequence[str]) -> dict[str, Document]:
        """The feed's marks of these merged groups, by key."""
        found: dict[str, Document] = {}
        for start in range(0, len(keys), COUNT_CHUNK):
            chunk = list(keys[start : start + COUNT_CHUNK])
            async for d in self.marks.find({"feed": feed, "group": {"$in": chunk}}):
                found[d["group"]] = d
        return found

    async def mark_merged(
        self, feed: str, merged: Sequence[Document], seen: MarkAll, read: MarkAll
    ) -> bool:
        """Mark merged groups (as `combined` answers them): every one (True) or those of these
        group ids. Marks of groups no longer merged in are dropped. Answers whether any was."""
        ops: list[UpdateOne] = []
        stored_ops: list[UpdateOne] = []
        for field, flag, which in (("seen", "is_seen", seen), ("read", "is_read", read)):
            if which is False or (not isinstance(which, bool) and not which):
                continue
            for doc in merged:
                if not isinstance(which, bool) and doc["gid"] not in which:
                    continue
                ops.append(UpdateOne(
                    {"feed": feed, "group": doc["group"]},
                    {"$max": {field: doc["gid"]}}, upsert=True,
                ))  # fmt: skip
                if doc.get("stored_gid") is not None:
                    stored_ops.append(UpdateOne(
                        {"feed": feed, "group": doc["group"], "gid": doc["stored_gid"]},
                        {"$set": {flag: True}},
                    ))  # fmt: skip
        if not ops:
            return False
        await self.marks.bulk_write(ops, ordered=False)
        if stored_ops:
            await self.groups.bulk_write(stored_ops, ordered=False)
        await self.marks.delete_many(
            {"feed": feed, "group": {"$nin": [d["group"] for d in merged]}}
        )
        return True


def combined(doc: Document | None, joining: Joining, mark: Document | None = None) -> Document:
    """A stored group (or none) with activities merged in at read time (a pull feed's), as the
    group would be had they been copied (domain/aggregation.apply); seen (read) when its stored
    part is and no merged activity is newer than what a mark saw (`mark`, from `group_marks`,
    or the stored group's id when it is seen: what the merge adds below it was there)."""
    base = None
    if doc is not None:
        base = Group(
            doc["group"], tuple(doc["activity_ids"]), doc["activity_count"],
            tuple(doc.get("actors", ())), stored_verb(doc), doc["gid"],
            min(doc["activity_ids"]) if doc["activity_ids"] else doc["gid"],
        )  # fmt: skip
    group = apply(base, joining)
    created = id_time(joining.oldest)

    def marked(flag: str, field: str) -> bool:
        stored = doc is None or bool(doc[flag])
        upto = max(
            str((mark or {}).get(field, "")), doc["gid"] if doc is not None and doc[flag] else ""
        )
        return stored and joining.newest <= upto

    return {
        "feed": doc["feed"] if doc else "", "group": group.key, "gid": group.newest,
        "newest_verb": f"{group.newest} {group.verb}", "activity_ids": list(group.activity_ids),
        "origins": doc.get("origins") if doc is not None else [],  # the stored part's
        "activity_count": group.activity_count, "actors": list(group.actors),
        "created_at": min(doc["created_at"], created) if doc else created,
        "updated_at": id_time(group.newest),
        "is_seen": marked("is_seen", "seen"), "is_read": marked("is_read", "read"),
        "stored_gid": doc["gid"] if doc is not None else None,
    }  # fmt: skip


def stored_verb(doc: Document) -> str:
    """A stored group's verb: its `newest_verb` is "<newest id> <verb>"."""
    return str(doc.get("newest_verb", "")).partition(" ")[2]


def origin_members(origins: Mapping[str, str]) -> list[str]:
    """A group's `origins`: "<activity id> <origin>" of its newest MAX_GROUP_ACTIVITIES
    activities that came through a follow, newest first (activity ids sort by time and are of
    one length, so these sort as their ids do); the others have no origin."""
    came = sorted(origins, reverse=True)[:MAX_GROUP_ACTIVITIES]
    return [f"{i} {origins[i]}" for i in came]


def group_origins(doc: Document) -> dict[str, str] | None:
    """The origins of a group's activities that came through a follow, by id; None for a
    group stored before groups kept them."""
    stored = doc.get("origins")
    if not isinstance(stored, list):
        return None
    return dict(m.split(" ", 1) for m in stored)
