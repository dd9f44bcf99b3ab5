"""The Reactions API's use cases: add, read, update, delete, restore and filter reactions.

A reaction's `target_feeds` each get an activity (domain/reactions.py `target_activity`),
added through the feeds' own add (`FeedService.add_to_many`), so it fans out, goes live on
sockets and to the firehose as any add does; deleting the reaction removes it the same way
(`FeedService.remove`). Everything a request names is validated and authorised before anything
is stored. Each reaction answered carries its user's object (`user`, as Stream enriches it),
read with the users of its latest children in one query.

Each stored write is announced (feeds/announce.py): to the firehose endpoints that take
reaction events before it answers, then to the sockets watching the activity. A write that may
have stopped between its store write and that (a node's death) is covered by the client's
retry where the retry can tell: a retried add (the same id, answered 409) and a retried soft
delete store the same message again (the same id, from the state the store holds); an update
run again is a new update (a new `updated_at`), announced as such; a hard delete's event is
written before the reaction goes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..auth import Grant, authorize_reaction_targets, reaction_user, require_reaction_owner
from ..domain.activities import parse_activity
from ..domain.errors import ConflictError, DoesNotExistError, InputError
from ..domain.feeds import FeedId
from ..domain.objects import User
from ..domain.ports import ReactionCounts, UserStore
from ..domain.reactions import (
    LATEST_CHILDREN,
    Bounds,
    Change,
    NewReaction,
    Reaction,
    Summary,
    child_ancestors,
    counts_without,
    id_time,
    now_ms,
    retried_add,
    target_activity,
    wire_time,
)
from ..runtime.background import TaskSet, ahead, completes
from ..runtime.faults import fault_point
from ..store.mongo.reactions import Query, ReactionStore
from .announce import ReactionWrite
from .service import FeedService

ADDED, UPDATED, DELETED = "reaction.added", "reaction.updated", "reaction.deleted"


@dataclass(frozen=True)
class Missed:
    """What a watcher of an activity's reactions missed (`changed_since`), and its counts now
    (with their version, so that no older event's counts go out after them)."""

    reactions: list[dict[str, Any]]
    more: bool
    counts: Summary


@dataclass(frozen=True)
class FilterPage:
    results: list[dict[str, Any]]
    more: bool
    activity: dict[str, Any] | None = None


class Reactions:
    def __init__(
        self,
        store: ReactionStore,
        feeds: FeedService,
        bounds: Bounds,
        writes: TaskSet,
        users: UserStore,
    ) -> None:
        self.store, self.feeds, self.bounds, self.users = store, feeds, bounds, users
        # What the enrichment of a page of activities reads (counts, latest, own reactions).
        self.counts: ReactionCounts = store
        self.writes = writes  # the writes under way (drained at shutdown)

    @completes
    async def add(self, new: NewReaction, grant: Grant) -> dict[str, Any]:
        """Store a reaction (or a child reaction) and put its activity in its target feeds."""
        user_id = reaction_user(grant, new.user_id)
        writer = authorize_reaction_targets(grant, new.target_feeds)
        activity_id, ancestors = new.activity_id, tuple[str, ...]()
        if new.parent:
            parent = await self.store.get(new.parent)
            if parent is None or parent.deleted_at is not None:
                raise InputError(
                    f"parent reaction {new.parent} does not exist", {"parent": ["not found"]}
                )
            ancestors = child_ancestors(parent)
            activity_id = parent.activity_id
        reaction = Reaction(
            id=new.id, kind=new.kind, activity_id=activity_id, user_id=user_id, data=new.data,
            created_at=new.created_at, updated_at=new.created_at, parent=new.parent,
            ancestors=ancestors, target_feeds=new.target_feeds,
            target_feeds_extra_data=new.target_feeds_extra_data,
        )  # fmt: skip
        target = self._target(reaction)  # validated before anything is stored
        # its user, for the event, looked up while the reaction is written
        async with ahead(self.users.get_many({user_id})) as users:
            try:
                left = await self.store.insert(reaction)
            except ConflictError:
                await self._added_again(reaction)
                raise
            fault_point("reactions.inserted")
            if reaction.target_feeds:
                try:
                    await self._add_targets(reaction.target_feeds, writer, target)
                except Exception:
                    await self.store.delete(reaction.id)  # keeps nothing of a refused add
                    raise
            body = _put_user(reaction.public(extra_data=True), await users)
        await self._tell(ADDED, body, wire_time(reaction.created_at), left)
        return body

    async def get(self, reaction_id: str) -> dict[str, Any]:
        reaction = await self._existing(reaction_id)
        latest = await self.store.newest_children([reaction.id], LATEST_CHILDREN)
        return await self._with_users(_public(reaction, latest.get(reaction.id, {})))

    @completes
    async def update(self, reaction_id: str, change: Change, grant: Grant) -> dict[str, Any]:
        """New `data`, and, when given, a new set of target feeds (the activity leaves the
        feeds dropped and joins the feeds added) and new extra data for its activities."""
        old = await self._existing(reaction_id)
        require_reaction_owner(grant, old.user_id)
        targets = old.target_feeds if change.target_feeds is None else change.target_feeds
        writer = authorize_reaction_targets(
            grant, [t for t in targets if t not in old.target_feeds]
        )
        extra = change.target_feeds_extra_data
        new = replace(
            old,
            data=old.data if change.data is None else change.data,
            target_feeds=targets,
            target_feeds_extra_data=old.target_feeds_extra_data if extra is None else extra,
        )
        target = self._target(new)
        dropped = [t for t in old.target_feeds if t not in targets]
        added = [t for t in targets if t not in old.target_feeds]
        await self._remove_targets(old, dropped)
        if added:
            await self._add_targets(added, writer, target)
        kept = [t for t in targets if t in old.target_feeds]
        if extra is not None and kept:
            await self.feeds.replace([parse_activity(target, self.feeds.limits)])
        updated = await self.store.update(
            reaction_id,
            {
                "data": new.data,
                "target_feeds": list(new.target_feeds),
                "target_feeds_extra_data": new.target_feeds_extra_data,
            },
            now_ms(),
        )
        if updated is None:
            raise _missing(reaction_id)
        stored, left = updated
        latest = await self.store.newest_children([reaction_id], LATEST_CHILDREN)
        body = stored.public(_lists(latest.get(reaction_id, {})), extra_data=True)
        await self._with_users(body)
        await self._tell(UPDATED, body, _updated(stored), left)
        return body

    @completes
    async def delete(self, reaction_id: str, soft: bool, grant: Grant) -> None:
        """Soft: marked deleted (readable by id, uncounted, restorable; its activities stay).
        Hard: gone with its children, and their activities leave the target feeds first, so
        a delete cut short is finished by its retry."""
        reaction = await self._existing(reaction_id)
        require_reaction_owner(grant, reaction.user_id, "delete")
        if soft:
            now = now_ms()
            async with ahead(self.users.get_many({reaction.user_id})) as users:
                left = await self.store.soft_delete(reaction_id, now)
                if left is not None:
                    body = _put_user(replace(reaction, deleted_at=now).public(), await users)
                    await self._tell(DELETED, body, wire_time(now), left)
                elif reaction.deleted_at is not None and self.feeds.announcer.firehose.reactions:
                    # Deleted already, maybe by this delete's first try, stopped before its
                    # firehose message was stored: that message again, under the same id.
                    body = _put_user(reaction.public(), await users)
                    await self._tell(DELETED, body, wire_time(reaction.deleted_at), sockets=False)
            return
        for child in await self.store.descendants_with_targets(reaction_id):
            await self._remove_targets(child, child.target_feeds)
        await self._remove_targets(reaction, reaction.target_feeds)
        body = await self._with_users(reaction.public())
        # Once per reaction: an add of the same id after it is a new reaction (created_at).
        gone = f"hard {wire_time(reaction.created_at)} {wire_time(reaction.updated_at)}"
        write = self._write(DELETED, body, gone)
        announcer = self.feeds.announcer
        async with announcer.reaction_removal(write, lambda c: counts_without(c, reaction)) as r:
            await self.store.delete_descendants(reaction_id)
            r.gone, r.left = await self.store.delete(reaction_id)
            fault_point("reactions.deleted")

    @completes
    async def restore(self, reaction_id: str, grant: Grant) -> None:
        """Undo a soft delete; a reaction that is not soft-deleted is DoesNotExist, as in
        Stream."""
        reaction = await self._existing(reaction_id)
        require_reaction_owner(grant, reaction.user_id)
        now = now_ms()
        async with ahead(self.users.get_many({reaction.user_id})) as users:
            left = None
            if reaction.deleted_at is not None:
                left = await self.store.restore(reaction_id, now)
            if left is None:
                raise DoesNotExistError(
                    f"reaction {reaction_id} is not soft-deleted", {"id": ["not soft-deleted"]}
                )
            body = _put_user(replace(reaction, deleted_at=None).public(), await users)
        await self._tell(ADDED, body, f"restored {wire_time(now)}", left)

    async def require_activity(self, activity_id: str) -> None:
        """DoesNotExist unless the activity is stored (and not removed)."""
        stored = await self.feeds.activities.get(activity_id)
        if stored is None or stored.removed:
            raise DoesNotExistError(
                f"activity {activity_id} does not exist", {"activity_id": ["not found"]}
            )

    async def changed_since(self, activity_id: str, since: str, limit: int) -> Missed:
        """The reactions of an activity (children too) added, updated, soft-deleted or restored
        after the reaction `since` was added (its UUIDv7 time, or, for an id a client chose,
        the time that reaction was stored), oldest id first, at most `limit`; and the
        activity's counts now. A hard-deleted reaction is gone: only the counts tell of it."""
        after = id_time(since)
        if after is None:
            found = await self.store.get(since)
            if found is None or found.activity_id != activity_id:
                raise InputError(
                    "since must be the id of a reaction to this activity", {"since": ["unknown"]}
                )
            after = found.created_at
        changed = await self.store.changed_since(activity_id, after, limit + 1)
        bodies = [reaction.public() for reaction in changed[:limit]]
        if bodies:
            await self._with_users(*bodies)
        return Missed(bodies, len(changed) > limit, await self.store.summary(activity_id))

    async def _tell(
        self, name: str, reaction: dict[str, Any], version: str, left: Summary | None = None,
        sockets: bool = True,
    ) -> None:  # fmt: skip
        """The write of `reaction` is stored: the firehose's endpoints that take reaction
        events have it stored when this returns; its activity's watchers hear in the
        background (unless not `sockets`). `version`: the state it tells of (the message id
        comes from it); `left`: the activity's counts as the write left them (None: read
        them)."""
        write = self._write(name, reaction, version, left)
        await self.feeds.announcer.reaction(write, sockets)

    def _write(
        self, name: str, reaction: dict[str, Any], version: str, left: Summary | None = None
    ) -> ReactionWrite:
        # a copy: the answer's body is the HTTP layer's to change
        return ReactionWrite(name, dict(reaction), version, self.store.summary, self._feeds, left)

    async def _added_again(self, asked: Reaction) -> None:
        """An add refused because its id is taken: when it is the client's retry of the add
        that took it, that add's firehose message again, under the same id (kept while it
        waits, sent again if it went), since the first try may have stopped before storing
        it. Not to the sockets: they heard, or recover with `since`."""
        if not self.feeds.announcer.firehose.reactions:
            return
        stored = await self.store.get(asked.id)
        if stored is None or not retried_add(stored, asked):
            return
        body = await self._with_users(stored.public(extra_data=True))
        await self._tell(ADDED, body, wire_time(stored.created_at), sockets=False)

    async def _feeds(self, activity_id: str) -> Collection[str]:
        """The feeds the activity was added to: those that own it and the `to` feeds they
        named (none for an activity unknown or removed)."""
        stored = await self.feeds.activities.get(activity_id)
        if stored is None or stored.removed:
            return ()
        return stored.reach(stored.owners)

    async def filter(
        self,
        query: Query,
        with_activity_data: bool = False,
        own_children_of: str | None = None,
    ) -> FilterPage:
        """A page of reactions (one more read to tell whether there are more), each with its
        newest children (ten in all, by kind) and, for `own_children_of`, that user's
        children: one query for the page, one for the children, one for the own children."""
        found = await self.store.page(replace(query, limit=query.limit + 1))
        page, more = found[: query.limit], len(found) > query.limit
        ids = [r.id for r in page]
        latest = await self.store.newest_children(ids, LATEST_CHILDREN)
        own = None
        if own_children_of is not None:
            own = await self.store.latest_of("parent", ids, LATEST_CHILDREN, own_children_of)
        results = []
        for reaction in page:
            body = _public(reaction, latest.get(reaction.id, {}))
            if own is not None:
                body["own_children"] = _lists(own.get(reaction.id, {}))
            results.append(body)
        await self._with_users(*results)
        activity = None
        if with_activity_data and query.field == "activity_id":
            stored = await self.feeds.activities.get(query.value)
            if stored is not None and not stored.removed:
                activity = stored.public()
        return FilterPage(results, more, activity)

    async def _with_users(self, *bodies: dict[str, Any]) -> dict[str, Any]:
        """Put its user's object in each reaction body and in each of its children (latest
        and own); a reaction whose user is not stored gets none. Answers the first body."""
        every = [*bodies, *(c for b in bodies for c in _children(b))]
        users = await self.users.get_many({body["user_id"] for body in every})
        for body in every:
            _put_user(body, users)
        return bodies[0] if bodies else {}

    async def _existing(self, reaction_id: str) -> Reaction:
        reaction = await self.store.get(reaction_id)
        if reaction is None:
            raise _missing(reaction_id)
        return reaction

    def _target(self, reaction: Reaction) -> dict[str, Any]:
        """The target feeds' activity, validated as any activity (an InputError before
        anything is stored)."""
        activity = target_activity(reaction)
        if reaction.target_feeds:
            parse_activity(activity, self.feeds.limits)
        return activity

    async def _add_targets(
        self, feeds: Sequence[str], grant: Grant, target: dict[str, Any]
    ) -> None:
        groups = self.bounds.groups
        ids = [FeedId(*f.split(":", 1)) for f in feeds if f.partition(":")[0] in groups]
        await self.feeds.add_to_many(ids, parse_activity(target, self.feeds.limits), grant)

    async def _remove_targets(self, reaction: Reaction, feeds: Sequence[str]) -> None:
        for feed in feeds:
            group, _, user_id = feed.partition(":")
            await self.feeds.remove(FeedId(group, user_id), None, reaction.foreign_id)


def _put_user(body: dict[str, Any], users: Mapping[str, User]) -> dict[str, Any]:
    """Put its user's object (of `users`, if there) in a reaction's body; answers it."""
    user = users.get(body["user_id"])
    if user is not None:
        body["user"] = user.public()
    return body


def _public(reaction: Reaction, latest: dict[str, list[Reaction]]) -> dict[str, Any]:
    return reaction.public(_lists(latest))


def _children(body: dict[str, Any]) -> list[dict[str, Any]]:
    lists = [*body["latest_children"].values(), *body.get("own_children", {}).values()]
    return [child for children in lists for child in children]


def _lists(latest: dict[str, list[Reaction]]) -> dict[str, list[dict[str, Any]]]:
    return {kind: [child.public() for child in items] for kind, items in latest.items()}


def _updated(stored: Reaction) -> str:
    """An update's version: its time, and a digest of what it set (two updates within one
    millisecond are two messages, unless they set the same)."""
    what = [stored.data, list(stored.target_feeds), stored.target_feeds_extra_data]
    digest = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()
    return f"{wire_time(stored.updated_at)} {digest[:16]}"


def _missing(reaction_id: str) -> DoesNotExistError:
    return DoesNotExistError(f"reaction {reaction_id} does not exist", {"id": ["not found"]})
