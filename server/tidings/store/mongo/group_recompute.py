"""Groups computed again from their entries: a compare-and-set on the group's version.

A group document (store/mongo/groups.py) carries `v`, bumped by every join and every recompute, and
`joined`: the join tokens (`group_joins`, store/mongo/activities.py) whose join this group counts
while their insert is still pending. A recompute reads the group, then its entries, and writes
what those make (domain/aggregation.regroup) only if the group is still at the version it read;
otherwise it reads both again. So a join that lands between the read and the write is never
overwritten, and of two recomputes the one that read first cannot write back an entry the
other saw removed.

Which entries count: those whose insert has finished (no token, or a token no longer in
`group_joins`), and those of a pending insert whose join this group holds already (`joined`).
The entries of a pending insert whose join has not reached this group are left to that join,
which adds them on top of what the recompute wrote; counting them here too would count them
twice. A recompute that recovers an insert cut short (a crash between its entries and the
removal of its token) adopts its token: it counts those entries and records the token in
`joined`, so that the insert's own join, should it still be running after all, changes
nothing (and recomputes the group in its turn: store/mongo/groups.py).

An insert takes milliseconds from its token to its joins, so `joined` keeps only the newest
MAX_JOINED tokens (no second write per group to forget a token once its insert is done: that
made a grouped fanout to 500 feeds some 60% slower), and a token older than ABANDONED_AFTER is
taken for that of an insert cut short: its entries count (they are the truth; its join cannot
come any more: an insert that finds itself that late recomputes instead of joining, `late`).
What this leaves: a crash right after an insert's join, then MAX_JOINED joins of the same group
and a removal from it within ABANDONED_AFTER, before any retry: that recompute leaves the
crashed insert's entries out, until the group is recomputed again.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from ...domain.aggregation import Group, regroup
from ...domain.errors import UnavailableError
from ...domain.ids import id_time
from ...runtime.faults import fault_pause
from .client import Database, Document
from .merged_groups import origin_members

RETRIES = 20  # recomputes of one group that lost the race to a concurrent write
MAX_JOINED = 32  # tokens a group remembers (the newest)
ABANDONED_AFTER = timedelta(seconds=60)  # a join token older than this: its insert was cut short
ENTRY_FIELDS = {"activity_id": 1, "actor": 1, "verb": 1, "origin": 1, "join": 1, "_id": 0}


class GroupRecompute:
    def __init__(self, db: Database) -> None:
        self.groups = db["feed_groups"]
        self.entries = db["feed_entries"]
        self.joins = db["group_joins"]
        self.activities = db["activities"]

    async def run(
        self,
        pairs: Iterable[tuple[str, str]],
        adopt: Collection[ObjectId] = (),
        create: bool = False,
    ) -> set[str]:
        """Recompute the groups of these (feed, group key) pairs; an empty one disappears. A
        group not stored is left out (aged out, it stays out) unless `create`. `adopt`:
        tokens of inserts whose entries this recompute counts (see the module's docstring).
        Answers the feeds where a group was created."""
        created: set[str] = set()
        for feed, key in set(pairs):
            if await self._one(feed, key, frozenset(adopt), create):
                created.add(feed)
        return created

    async def _one(self, feed: str, key: str, adopt: frozenset[ObjectId], create: bool) -> bool:
        for _ in range(RETRIES):
            doc = await self.groups.find_one({"feed": feed, "group": key}, {"v": 1, "joined": 1})
            if doc is None and not create:
                return False
            group, origins, joined = await self._computed(feed, key, doc, adopt)
            await fault_pause("groups.recompute_read")
            if await self._write(feed, doc, group, {"origins": origins, "joined": joined}):
                return doc is None and group is not None
        raise UnavailableError(f"the group {key!r} of {feed} kept changing; retry the request")

    async def _computed(
        self, feed: str, key: str, doc: Document | None, adopt: frozenset[ObjectId]
    ) -> tuple[Group | None, list[str], list[ObjectId]]:
        """The group that the counted entries make, its `origins`, and the tokens it is to
        hold."""
        entries = await self.entries.find({"feed": feed, "group": key}, ENTRY_FIELDS).to_list()
        held = set((doc or {}).get("joined") or ())
        seen = {e["join"] for e in entries if "join" in e}
        live = {t for t in await self._live(seen | held) if not abandoned(t)}
        adopted = adopt & seen
        counts = held | adopted | (seen - live)
        counted = [e for e in entries if "join" not in e or e["join"] in counts]
        members: dict[str, tuple[str, Any]] = {
            e["activity_id"]: (str(e.get("actor", "")), e.get("verb")) for e in counted
        }
        newest = max(members, default=None)
        if newest is not None and members[newest][1] is None:  # an entry from before verbs
            stored = await self.activities.find_one({"_id": newest})
            verb = json.loads(stored["data"]).get("verb", "") if stored and "data" in stored else ""
            members[newest] = (members[newest][0], str(verb))
        group = regroup(key, {i: (a, str(v or "")) for i, (a, v) in members.items()})
        came = {e["activity_id"]: e["origin"] for e in counted if e.get("origin") is not None}
        shown = set(group.activity_ids) if group is not None else set()
        origins = origin_members({i: o for i, o in came.items() if i in shown})
        return group, origins, sorted((held | adopted) & live)

    async def _live(self, tokens: set[ObjectId]) -> set[ObjectId]:
        """Those of `tokens` whose insert has not finished (their record is still there)."""
        if not tokens:
            return set()
        query = {"_id": {"$in": list(tokens)}}
        return {d["_id"] async for d in self.joins.find(query, {"_id": 1})}

    async def _write(
        self, feed: str, doc: Document | None, group: Group | None, extra: Document
    ) -> bool:
        """Write the group (with the `extra` fields) if the stored one is still `doc` (by id
        and version): answers whether it was."""
        if doc is None:
            if group is None:
                return True
            try:
                await self.groups.insert_one({
                    "feed": feed, **_fields(group), **extra, "v": 1,
                    "is_seen": False, "is_read": False,
                })  # fmt: skip
            except DuplicateKeyError:  # joined meanwhile
                return False
            return True
        current = {"_id": doc["_id"], "v": doc.get("v")}
        if group is None:
            return (await self.groups.delete_one(current)).deleted_count == 1
        update = {"$set": {**_fields(group), **extra, "v": (doc.get("v") or 0) + 1}}
        return (await self.groups.update_one(current, update)).matched_count == 1


def _fields(group: Group) -> Document:
    """A group's derived fields as stored."""
    return {
        "group": group.key, "activity_ids": list(group.activity_ids),
        "activity_count": group.activity_count, "actors": list(group.actors),
        "gid": group.newest, "newest_verb": f"{group.newest} {group.verb}",
        "updated_at": id_time(group.newest), "created_at": id_time(group.oldest),
    }  # fmt: skip


def abandoned(token: ObjectId) -> bool:
    """Whether the insert of `token` counts as cut short (by the clock of its ObjectId)."""
    return datetime.now(UTC) - token.generation_time > ABANDONED_AFTER


def late(token: ObjectId) -> bool:
    """Whether an insert of `token` is too late to join (half of ABANDONED_AFTER gone: clocks
    of nodes differ, and ObjectIds count whole seconds): it recomputes its groups instead."""
    return datetime.now(UTC) - token.generation_time > ABANDONED_AFTER / 2
