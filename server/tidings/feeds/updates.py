"""Changing stored activities: full and partial updates, and activity_to_targets.

An update changes the one activity document; every feed holding the activity reads it from
there (entries name it by id), pull feeds' followers too (they merge the pull feed's entries at
read time and load the same document). So the store write is the whole update, and only the
live events reach out: after the write, each feed holding it (found by the feed_entries
activity_id index) gets it in `new`, with the same id and the origin it has there; the
followers of a pull feed that merged it get it through that pull feed's room.

activity_to_targets moves an activity between `to` feeds of one owner: an added target gets
what an add's `to` gets (Placing.place: entry, fanout job, events); a removed one loses its
entry and, through a remove job of that target only, its followers' copies.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..auth import Grant, authorize_retarget
from ..domain.activities import (
    Activity,
    Change,
    Limits,
    apply_change,
    parse_targets,
    public_activity,
)
from ..domain.errors import DoesNotExistError, InputError
from ..domain.events import feed_update
from ..domain.feeds import FeedId
from ..domain.ids import activity_id, parse_time
from ..domain.ports import FeedUpdate
from ..runtime.faults import fault_point
from ..store.mongo.client import Document
from ..store.mongo.entry_writes import Entry
from ..store.mongo.jobs import Job
from .context import FeedContext
from .placing import Placing

# An updated activity: its id, its new fields and the version written (the document's `v`).
Changed = tuple[str, dict[str, Any], int]


def _missing(ids: Sequence[str], found: Mapping[str, Document], field: str) -> None:
    for index, wanted in enumerate(ids):
        if wanted not in found:
            raise DoesNotExistError(
                f"activity {wanted} does not exist", {f"{field}[{index}]": [f"{wanted} not found"]}
            )


def _without_to(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "to"}


class Updates:
    def __init__(self, ctx: FeedContext, placing: Placing) -> None:
        self.ctx, self.placing = ctx, placing
        self.activities = ctx.activities

    async def replace(self, new: Sequence[Activity]) -> list[dict[str, Any]]:
        """Full updates (POST activities/): each activity's fields become the given ones
        (its `to` stays: targets change through activity_to_targets). One not stored yet is
        stored, in no feed, as Stream does (without `to`: no feed named its targets)."""
        found = await self.activities.documents([a.id for a in new])
        changed: list[Changed] = []
        for activity in new:
            if activity.id not in found:
                created = await self._store_new(activity, found)
                if created is not None:
                    changed.append((activity.id, created, 0))
                    continue

            def whole(old: dict[str, Any], activity: Activity = activity) -> dict[str, Any]:
                data = {k: v for k, v in activity.data.items() if k != "to"}
                if "to" in old:
                    data["to"] = old["to"]
                return data

            written = await self.activities.change_data(activity.id, found[activity.id], whole)
            if written is not None:
                changed.append((activity.id, *written))
        await self._announce_after_write(changed)
        return [public_activity(i, d, None) for i, d, _ in changed]

    async def _store_new(
        self, activity: Activity, found: dict[str, Document]
    ) -> dict[str, Any] | None:
        """Store an activity not stored yet, in no feed: its fields. None when it was stored
        meanwhile (by an add): then it is in `found`, to be updated as any other."""
        created = replace(activity, to=(), data=_without_to(activity.data))
        while not await self.activities.save_unowned(created):
            found.update(await self.activities.documents([activity.id]))
            if activity.id in found:
                return None
        return created.data

    async def change(self, changes: Sequence[Change], limits: Limits) -> list[dict[str, Any]]:
        """Partial updates (POST activity/): every change is checked against the stored
        fields before any is written; all must exist."""
        ids = [c.id for c in changes]
        found = await self.activities.documents(ids)
        _missing(ids, found, "changes")
        preview: dict[str, Document] = {}
        for change in changes:  # validate the whole batch (changes to one id compose)
            doc = preview.get(change.id, found[change.id])
            data = apply_change(_fields(doc), change, limits)
            preview[change.id] = {**doc, "data": _text(data)}
        changed: dict[str, tuple[dict[str, Any], int]] = {}
        for change in changes:

            def apply(old: dict[str, Any], change: Change = change) -> dict[str, Any]:
                return apply_change(old, change, limits)

            written = await self.activities.change_data(change.id, found[change.id], apply)
            if written is not None:
                changed[change.id] = written
        await self._announce_after_write([(i, d, v) for i, (d, v) in changed.items()])
        return [public_activity(i, d, None) for i, (d, _) in changed.items()]

    async def _announce_after_write(self, changed: Sequence[Changed]) -> None:
        """Sockets get updates in the background; with firehose endpoints, the update answers
        only once its firehose messages are stored (nothing acknowledged is lost), so the
        announcement runs before the answer then (its time grows with the feeds holding it)."""
        if self.ctx.announcer.firehose.on:
            await self.announce(changed)
        else:
            self.ctx.announcer.tasks.spawn(self.announce(changed))

    async def announce(self, changed: Sequence[Changed]) -> None:
        """The live side of updates (run after the writes): every feed holding each activity
        gets it in `new`, with the origin it has there; pull feeds' followers through the
        pull feed's room. Firehose messages are told the version written, so that an update
        back to earlier fields is a new message, not a repeat of the earlier one."""
        announcer = self.ctx.announcer
        for activity_id_, data, version in changed:
            written = f"{activity_id_} v{version}"
            async for page in self.activities.holders(activity_id_):
                by_origin: dict[str | None, list[str]] = defaultdict(list)
                for entry in page:
                    by_origin[entry.origin].append(entry.feed)
                for origin, feeds in by_origin.items():
                    event = feed_update(feeds[0], new=[public_activity(activity_id_, data, origin)])
                    await announcer.announce([FeedUpdate(feeds, event)], of=written)
                direct = by_origin.get(None, [])
                if direct:
                    metas = await self.ctx.follows.meta.get_many(direct)
                    held = {e.feed: e for e in page if e.origin is None}
                    for feed in direct:
                        if metas[feed].merges(held[feed].pulled):
                            event = feed_update(
                                feed, new=[public_activity(activity_id_, data, feed)]
                            )
                            pulled = FeedUpdate([feed], event, pull=True)
                            await announcer.announce([pulled], of=written)

    async def retarget(
        self, feed: FeedId, body: object, grant: Grant, limits: Limits
    ) -> dict[str, Any]:
        """activity_to_targets: `{foreign_id, time, new_targets | added_targets,
        removed_targets}` for an activity `feed` owns. Every target named or dropped is
        authorised (`authorize_retarget`) before anything is changed."""
        if not isinstance(body, dict):
            raise InputError("the body must be an object", {"body": ["not an object"]})
        foreign_id, when = body.get("foreign_id"), body.get("time")
        if not isinstance(foreign_id, str) or not foreign_id or not isinstance(when, str):
            raise InputError(
                "foreign_id and time are required", {"foreign_id": ["foreign_id and time"]}
            )
        if "new_targets" in body and ("added_targets" in body or "removed_targets" in body):
            raise InputError(
                "new_targets cannot be combined with added_targets or removed_targets",
                {"new_targets": ["not with added_targets / removed_targets"]},
            )
        try:
            wanted = activity_id(parse_time(when), foreign_id, {})
        except (ValueError, OverflowError) as exc:
            raise InputError("time is not a valid time", {"time": [str(exc)]}) from exc
        replace, new_tokens = parse_targets(body.get("new_targets"), limits, "new_targets")
        added, added_tokens = parse_targets(body.get("added_targets"), limits, "added_targets")
        removed, removed_tokens = parse_targets(
            body.get("removed_targets"), limits, "removed_targets"
        )
        tokens = {**new_tokens, **added_tokens, **removed_tokens}
        secret, groups = str(self.ctx.settings.auth.api_secret), self.ctx.settings.feeds
        authorize_retarget(grant, feed, [*replace, *added, *removed], tokens, secret, groups)
        origin = str(feed)
        stored = await self.activities.get(wanted)
        if stored is None or stored.removed or origin not in stored.owners:
            raise DoesNotExistError(
                f"activity with foreign_id {foreign_id} and time {when} not found in {origin}",
                {"foreign_id": ["not found"]},
            )
        current = stored.owners[origin]
        if "new_targets" in body:
            final = replace
        else:
            final = tuple(t for t in dict.fromkeys((*current, *added)) if t not in removed)
        if len(final) > limits.max_to:
            raise InputError(
                f"to may name at most {limits.max_to} feeds", {"to": [f"at most {limits.max_to}"]}
            )
        # What to add and drop is read from the entries, not only from the owners' `to`: a
        # retry after a crash midway (between the `to` write and the entries) finishes it.
        held = await self.activities.entries_of(list({*current, *final, *removed}), stored.id)
        direct = {f for f, e in held.items() if e.origin is None}
        gained = [t for t in final if t not in direct and t != origin]
        lost = [t for t in dict.fromkeys((*current, *removed)) if t not in final]
        authorize_retarget(grant, feed, lost, tokens, secret, groups)  # new_targets' drops too
        started = time.perf_counter()
        others = [o for o in stored.owners if o != origin]
        kept = stored.reach(others) | {origin}
        # Order (as a removal's): the remove jobs are written and the entries deleted, then
        # the owner's `to` changes, and only then do the jobs run, once a fanout of the
        # activity still running can no longer copy it through a dropped target (its batches
        # check `reaches`; it is cancelled and started again for what is still reached).
        jobs = [
            job
            for target in lost
            if target not in kept and target in direct
            for job in [await self._drop(target, stored.id, stored.foreign_id, held[target])]
            if job is not None
        ]
        fault_point("targets.before_to")
        await self.activities.set_targets(stored.id, origin, final)
        fault_point("targets.after_to")
        if jobs and await self.ctx.jobs.cancel("add", stored.id):
            fresh = await self.activities.get(stored.id)
            if fresh is not None and not fresh.removed:
                await self.placing.fan_out_again(fresh, list(fresh.owners))
        for job in jobs:
            self.ctx.runner.start(job)
        if gained:
            data = {**stored.data, "to": list(final)} if final else stored.data
            activity = Activity(stored.id, data["time"], stored.foreign_id, final, data)
            await self.placing.place([activity], {stored.id: gained}, started)
        return {
            "activity": public_activity(stored.id, stored.data, None) | {"to": list(final)},
            "added": gained,
            "removed": lost,
        }

    async def _drop(
        self, target: str, activity: str, foreign_id: str | None, held: Entry
    ) -> Job | None:
        """The activity leaves `target` (named in `to` no more): its entry now; its
        followers' copies through the remove job answered (written here, started by the
        caller), which takes only the copies that came through `target`. Its firehose
        `deleted` is written before the entry goes and sent after (as a removal's)."""
        ctx = self.ctx
        metas = await ctx.follows.meta.get_many([target])
        pull, merged = metas[target].pulls, metas[target].merges(held.pulled)
        job = None
        if metas[target].slots and not merged:
            silent = [target] if pull else []
            job = await ctx.jobs.create("remove", activity, [target], foreign_id, silent)
        foreign = [foreign_id] if foreign_id else []
        event = feed_update(target, deleted=[activity], deleted_foreign_ids=foreign)
        async with ctx.announcer.removal([FeedUpdate([target], event, pull)]):
            await self.activities.remove_entries([target], activity)
            fault_point("targets.after_drop")
        return job


def _fields(doc: Document) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(doc["data"])
    return loaded


def _text(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))
