"""One chunk of an import's lines, validated whole and then written in a few bulk writes, kind
by kind: users, collection entries, activities (documents, then entries), follows (the bulk
follow path: the follower gets its copy of the target's newest `activity_copy_limit`
activities, as a follow does), reactions (then their counters, recounted).

Historic data is not news: an import sends no `feed.update` to sockets and writes no firehose
message, and an activity is placed in its feed and its `to` feeds only, never fanned out to
the feed's followers. Follower feeds get what they hold from the file (the activities a read of
that feed answers, `origin` naming the followed feed) and from the copies of the follows
imported after the activities.

Every write is idempotent (unique keys: activity ids from time and foreign id, user ids, entry
keys, (follower, target), reaction ids), so a chunk written again after a crash stores nothing
twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..domain.activities import Activity
from ..domain.errors import DoesNotExistError, InputError, TidingsError
from ..domain.objects import Entry as ObjectEntry
from ..domain.objects import User
from ..domain.reactions import MAX_DEPTH, Reaction, child_ancestors
from ..feeds.following import FollowService
from ..store.mongo.activities import ActivityStore
from ..store.mongo.client import in_chunks
from ..store.mongo.collections import EntryStore
from ..store.mongo.entry_writes import Entry
from ..store.mongo.imports import ImportWrites
from ..store.mongo.owners import owners_of
from ..store.mongo.users import UserStore
from .records import ActivityLine, FollowLine, ReactionLine, Rules, parse_line


@dataclass
class Outcome:
    """What a chunk did: per kind, lines stored and lines already there; the lines refused."""

    imported: Counter[str] = field(default_factory=Counter)
    existing: Counter[str] = field(default_factory=Counter)
    refused: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, line: int, kind: str | None, error: TidingsError) -> None:
        self.refused.append({"line": line, "type": kind, "error": error.body()})


@dataclass(frozen=True)
class Stores:
    activities: ActivityStore
    users: UserStore
    entries: EntryStore
    writes: ImportWrites
    follows: FollowService


class Importer:
    def __init__(self, stores: Stores, rules: Rules, target: str) -> None:
        self.stores, self.rules = stores, rules
        self.target = target  # the store and database written, as checkpoints name them

    async def chunk(self, lines: Sequence[tuple[int, str]]) -> Outcome:
        """Import numbered lines: each validated first (a bad one refused, nothing of it
        stored), then the good ones written, kind by kind."""
        out = Outcome()
        kinds: dict[str, list[tuple[int, Any]]] = {}
        for number, text in lines:
            try:
                kind, record = parse_line(text, self.rules)
            except TidingsError as exc:
                out.refuse(number, _kind_of(text), exc)
                continue
            kinds.setdefault(kind, []).append((number, record))
        await self._users(kinds.get("user", []), out)
        await self._entries(kinds.get("collection", []), out)
        await self._activities(kinds.get("activity", []), out)
        await self._follows(kinds.get("follow", []), out)
        await self._reactions(kinds.get("reaction", []), out)
        return out

    async def _users(self, lines: list[tuple[int, User]], out: Outcome) -> None:
        users = {u.id: u for _, u in lines}  # one id twice: the last line wins
        written = set(await self.stores.users.insert_many(list(users.values()), override=False))
        for _, user in lines:
            (out.imported if user.id in written else out.existing)["user"] += 1
            written.discard(user.id)

    async def _entries(self, lines: list[tuple[int, ObjectEntry]], out: Outcome) -> None:
        entries = {e.key: e for _, e in lines}
        there = await self.stores.entries.get_many(list(entries))
        await self.stores.entries.upsert_many(list(entries.values()))
        for _, entry in lines:  # those there already get the file's data
            (out.existing if entry.key in there else out.imported)["collection"] += 1
            there[entry.key] = entry

    async def _activities(self, lines: list[tuple[int, ActivityLine]], out: Outcome) -> None:
        """Documents first (each owned by the feed that added it: the line's feed, or the
        `origin` of a copy; none for an entry that a `to` put in the line's feed), then every
        entry in one insert."""
        if not lines:
            return
        owners: dict[str, list[str | None]] = {}
        by_id: dict[str, Activity] = {}
        entries: dict[tuple[str, str], Entry] = {}
        for _, line in lines:
            a = line.activity
            by_id.setdefault(a.id, a)
            owner = _owner(line)
            if owner not in owners.setdefault(a.id, []):
                owners[a.id].append(owner)
            for feed in (owner, *a.to) if owner is not None else ():
                entries.setdefault((feed, a.id), Entry(feed, a.id))
            entries.setdefault((line.feed, a.id), Entry(line.feed, a.id, line.origin))
        first = [(by_id[i], next((o for o in found if o), None)) for i, found in owners.items()]
        there = {first[i][0].id for i in await self.stores.writes.insert_activities(first)}
        # Owners still to add: of a new document all but its first; of a stored one, all.
        await self._own([
            (a, o) for a, head in first for o in owners[a.id]
            if o is not None and (a.id in there or o != head)
        ])  # fmt: skip
        inserted = await self.stores.activities.insert_entries(list(entries.values()))
        await self._raise_max(inserted)
        new = {(e.feed, e.activity_id) for e in inserted}
        for _, line in lines:
            held = (line.feed, line.activity.id) in new
            (out.imported if held else out.existing)["activity"] += 1
            new.discard((line.feed, line.activity.id))
        await self.stores.writes.remember_ids(
            {line.source_id: line.activity.id for _, line in lines if line.source_id}
        )

    async def _raise_max(self, inserted: list[Entry]) -> None:
        """Feeds with followers record the highest id they hold, as an add's do: a later add
        below it is back-dated (feeds/placing.py), copied into pull feeds' followers."""
        highest: dict[str, str] = {}
        for entry in inserted:
            if entry.origin is None:
                highest[entry.feed] = max(highest.get(entry.feed, ""), entry.activity_id)
        meta = self.stores.follows.follows.meta
        for feeds in in_chunks(list(highest)):
            found = await meta.get_many(feeds)
            await meta.raise_max_many({f: highest[f] for f in feeds if found[f].slots})

    async def _own(self, pairs: list[tuple[Activity, str]]) -> None:
        """Activities stored already (or added by several feeds): each feed that added one
        becomes an owner, unless it is one with those `to` feeds (a repeated import)."""
        if not pairs:
            return
        docs = await self.stores.writes.owners({a.id for a, _ in pairs})
        for activity, feed in pairs:
            doc = docs.get(activity.id)
            named = owners_of(doc).get(feed) if doc is not None else None
            if named is not None and set(activity.to) <= set(named):
                continue
            await self.stores.activities.save([activity], feed, lambda _: True)

    async def _follows(self, lines: list[tuple[int, FollowLine]], out: Outcome) -> None:
        by_limit: dict[int, list[tuple[int, FollowLine]]] = {}
        for number, line in lines:
            by_limit.setdefault(line.copy_limit, []).append((number, line))
        for limit, group in by_limit.items():
            pairs = [(line.source, line.target) for _, line in group]
            failed, there = await self.stores.follows.follow_each(pairs, limit)
            for number, line in group:
                pair = (line.source, line.target)
                error = failed.get(pair)
                if error is not None:
                    out.refuse(number, "follow", error)
                else:
                    (out.existing if pair in there else out.imported)["follow"] += 1
                    there.add(pair)

    async def _reactions(self, lines: list[tuple[int, ReactionLine]], out: Outcome) -> None:
        """Parents resolved in the store or earlier in the chunk; activities by their id here,
        or by the source id an import of them remembered. Counters recounted at the end."""
        if not lines:
            return
        writes = self.stores.writes
        asked = {r.activity_id for _, r in lines if not r.parent}
        mapped = await writes.translate(asked)
        live = await writes.owners({mapped.get(i, i) for i in asked})
        known = await writes.reactions_of({r.parent for _, r in lines if r.parent})
        ready: list[Reaction] = []
        pending = list(lines)
        for _ in range(MAX_DEPTH):
            waiting = []
            for number, line in pending:
                if line.parent and line.parent not in known:
                    waiting.append((number, line))
                    continue
                try:
                    reaction = _reaction(line, known, mapped, live)
                except TidingsError as exc:
                    out.refuse(number, "reaction", exc)
                    continue
                known[reaction.id] = reaction
                ready.append(reaction)
            pending = waiting
        for number, line in pending:
            error = InputError(
                f"parent reaction {line.parent} does not exist", {"reaction.parent": ["not found"]}
            )
            out.refuse(number, "reaction", error)
        new = await writes.insert_reactions(ready)
        out.imported["reaction"] += new
        out.existing["reaction"] += len(ready) - new
        parents = {r.parent for r in ready if r.parent}
        await writes.recount({r.activity_id for r in ready}, parents)


def _owner(line: ActivityLine) -> str | None:
    """The feed that added the activity: the line's own feed, the followed feed it came from
    (`origin`), or unknown (None) when a `to` put it in the line's feed."""
    if line.origin is not None:
        return line.origin
    if line.feed in line.activity.to:
        return None
    return line.feed


def _reaction(
    line: ReactionLine,
    known: dict[str, Reaction],
    mapped: dict[str, str],
    live: dict[str, Any],
) -> Reaction:
    ancestors: tuple[str, ...] = ()
    activity_id = mapped.get(line.activity_id, line.activity_id)
    if line.parent:
        parent = known[line.parent]
        ancestors = child_ancestors(parent, "reaction.parent")
        activity_id = parent.activity_id
    elif activity_id not in live:
        raise DoesNotExistError(
            f"activity {line.activity_id} does not exist", {"reaction.activity_id": ["not found"]}
        )
    return Reaction(
        id=line.id, kind=line.kind, activity_id=activity_id, user_id=line.user_id,
        data=line.data, created_at=line.created_at, updated_at=line.updated_at,
        parent=line.parent, ancestors=ancestors, target_feeds=line.target_feeds,
        target_feeds_extra_data=line.target_feeds_extra_data, deleted_at=line.deleted_at,
    )  # fmt: skip


def _kind_of(text: str) -> str | None:
    """The `type` a refused line claims, when it can be read."""
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    kind = raw.get("type") if isinstance(raw, dict) else None
    return kind if isinstance(kind, str) else None
