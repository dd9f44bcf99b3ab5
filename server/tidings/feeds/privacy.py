"""Stream's data privacy calls, server-side only: delete activities from named feeds, delete
reactions, and export the ids of what a user added.

Deletes go through the feeds' own removal and the Reactions API's own delete, so a removed
activity leaves the follower feeds and goes live as any removal does, and a deleted reaction
takes its target feeds' activities and its counters with it. A batch is validated whole
before anything is deleted; ids that name nothing are skipped, so a retried call succeeds.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..auth import SERVER_GRANT
from ..domain.errors import DoesNotExistError, InputError
from ..domain.feeds import FeedId, parse_feed_id
from ..domain.ids import lookup_id
from ..domain.objects import USER_PREFIX, check_id
from .reactions import Reactions
from .service import FeedService

MAX_BATCH = 100  # activities or reactions of one delete call
MAX_EXPORT = 10_000  # ids of each kind an export lists at most (the newest)


@dataclass(frozen=True)
class Deletion:
    """An activity to delete, and the feeds to delete it from."""

    activity_id: str
    feeds: tuple[FeedId, ...]


class DataPrivacy:
    def __init__(self, feeds: FeedService, reactions: Reactions) -> None:
        self.feeds, self.reactions = feeds, reactions

    def parse_activities(self, body: object) -> list[Deletion]:
        """`{activities: [{id, remove_from_feeds: ["group:user", ...]}]}`, validated whole."""
        items = _bounded(body.get("activities") if isinstance(body, dict) else None, "activities")
        groups = self.feeds.settings.feeds.keys()
        found = []
        for index, item in enumerate(items):
            field = f"activities[{index}]"
            if not isinstance(item, dict):
                raise InputError(f"{field} must be an object", {field: ["not an object"]})
            activity_id = lookup_id(item["id"]) if isinstance(item.get("id"), str) else None
            if activity_id is None:
                raise InputError(f"{field}.id must be an activity id", {f"{field}.id": ["bad"]})
            feeds = _bounded(item.get("remove_from_feeds"), f"{field}.remove_from_feeds")
            parsed = tuple(
                parse_feed_id(f, groups, f"{field}.remove_from_feeds[{i}]")
                for i, f in enumerate(feeds)
            )
            found.append(Deletion(activity_id, parsed))
        return found

    async def delete_activities(self, deletions: Sequence[Deletion]) -> None:
        for deletion in deletions:
            for feed in deletion.feeds:
                await self.feeds.remove(feed, deletion.activity_id, None)

    async def delete_reactions(self, body: object) -> None:
        """`{ids: [...], soft_delete?: bool}`: each reaction deleted as `DELETE reaction/`
        would (hard: with its children and its target feeds' activities)."""
        if not isinstance(body, dict):
            raise InputError("the body must be an object", {"body": ["not an object"]})
        ids = _bounded(body.get("ids"), "ids")
        soft = body.get("soft_delete", False)
        if not isinstance(soft, bool):
            raise InputError("soft_delete must be a boolean", {"soft_delete": ["not a boolean"]})
        checked = []
        for index, value in enumerate(ids):
            found = lookup_id(value) if isinstance(value, str) else None
            if found is None:
                raise InputError("ids must be reaction ids", {f"ids[{index}]": ["not a UUID"]})
            checked.append(found)
        for reaction_id in dict.fromkeys(checked):
            with contextlib.suppress(DoesNotExistError):  # gone already: nothing to do
                await self.reactions.delete(reaction_id, soft, SERVER_GRANT)

    async def export_ids(self, user_id: str) -> dict[str, Any]:
        """What `user_id` added: the activities its own feeds hold directly with it as actor
        (`<id>` or `SU:<id>`), and its reactions; the newest `MAX_EXPORT` of each."""
        user_id = check_id(user_id, "user_id")
        store = self.feeds.activities
        ids: list[str] = []
        for group in self.feeds.settings.feeds:
            ids += await store.latest_own(f"{group}:{user_id}", MAX_EXPORT)
        found = await store.documents(sorted(set(ids), reverse=True)[:MAX_EXPORT])
        actors = {user_id, USER_PREFIX + user_id}
        activities = [i for i, doc in found.items() if _actor(doc) in actors]
        reactions = await self.reactions.store.ids_of_user(user_id, MAX_EXPORT)
        return {
            "user_id": user_id,
            "activity_count": len(activities),
            "activity_ids": sorted(activities, reverse=True),
            "reaction_count": len(reactions),
            "reaction_ids": reactions,
        }


def _actor(doc: dict[str, Any]) -> object:
    return json.loads(doc["data"]).get("actor")


def _bounded(items: object, field: str, most: int = MAX_BATCH) -> list[Any]:
    if not isinstance(items, list) or not items or len(items) > most:
        raise InputError(f"{field} must be a list of 1 to {most} items", {field: [f"1 to {most}"]})
    return items
