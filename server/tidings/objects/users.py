"""Users: add (or get-or-create), read (with the follow counts of Stream's profile), update,
delete; the batch calls of `users/` (add, get and delete many: server-side only, as Stream
has them); and the many-by-id read that reference enrichment (`SU:<id>`) uses."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..auth import Grant
from ..config import ObjectSettings
from ..domain.errors import ConflictError, DoesNotExistError, InputError
from ..domain.objects import User, check_data, check_id, now
from ..domain.ports import FollowCounter, UserStore
from .permissions import require_server_side, require_user

# Stream's profile counts: the followers of the user's `user` feed and the feeds its `timeline`
# feed follows ("timeline -> user feed groups", its suite's profile.js).
FOLLOWERS_GROUP, FOLLOWING_GROUP = "user", "timeline"


class Users:
    def __init__(self, store: UserStore, follows: FollowCounter, limits: ObjectSettings) -> None:
        self.store, self.follows, self.limits = store, follows, limits

    async def add(self, body: object, get_or_create: bool, grant: Grant) -> dict[str, Any]:
        """A new user (`{id, data}`); its id taken: the stored user with `get_or_create`, else
        a conflict (409). Nothing is stored for a refused request."""
        if not isinstance(body, dict):
            raise InputError("the body must be an object", {"body": ["not an object"]})
        user_id = check_id(body.get("id"), "id")
        data = check_data(body.get("data"), "data", self.limits.max_bytes)
        require_user(grant, "write", user_id)
        when = now()
        if await self.store.insert(User(user_id, data, when, when)):
            return User(user_id, data, when, when).public()
        found = await self.store.get(user_id) if get_or_create else None
        if found is None:
            raise ConflictError(f"user {user_id} already exists", {"id": ["already exists"]})
        return found.public()

    async def get(self, user_id: str, with_follow_counts: bool, grant: Grant) -> dict[str, Any]:
        user_id = check_id(user_id, "user_id")
        require_user(grant, "read", user_id)
        found = await self.store.get(user_id)
        if found is None:
            raise DoesNotExistError(f"user {user_id} does not exist")
        answer = found.public()
        if with_follow_counts:
            answer["followers_count"] = await self.follows.count_of(
                f"{FOLLOWERS_GROUP}:{user_id}", followers=True
            )
            answer["following_count"] = await self.follows.count_of(
                f"{FOLLOWING_GROUP}:{user_id}", followers=False
            )
        return answer

    async def update(self, user_id: str, body: object, grant: Grant) -> dict[str, Any]:
        """Replace the user's `data`."""
        user_id = check_id(user_id, "user_id")
        if not isinstance(body, dict):
            raise InputError("the body must be an object", {"body": ["not an object"]})
        data = check_data(body.get("data"), "data", self.limits.max_bytes)
        require_user(grant, "write", user_id)
        updated = await self.store.update(user_id, data, now())
        if updated is None:
            raise DoesNotExistError(f"user {user_id} does not exist")
        return updated.public()

    async def delete(self, user_id: str, grant: Grant) -> None:
        user_id = check_id(user_id, "user_id")
        require_user(grant, "delete", user_id)
        if not await self.store.delete(user_id):
            raise DoesNotExistError(f"user {user_id} does not exist")

    async def add_many(self, body: object, grant: Grant) -> list[dict[str, Any]]:
        """`{users: [{id, data}], override}` (`override_existing` as stream-net sends it):
        new users are created; one whose id is taken keeps its data, or with `override` gets
        the new data. Answers the users written, as stored. The batch is validated whole
        (ids, data, at most `objects.max_batch`, no id twice) before anything is stored."""
        require_server_side(grant, "write", "users")
        if not isinstance(body, dict):
            raise InputError("the body must be an object", {"body": ["not an object"]})
        items = body.get("users")
        most = self.limits.max_batch
        if not isinstance(items, list) or not 1 <= len(items) <= most:
            raise InputError(f"users must list 1 to {most} users", {"users": [f"1 to {most}"]})
        override = body.get("override", body.get("override_existing", False))
        if not isinstance(override, bool):
            raise InputError("override must be a boolean", {"override": ["not a boolean"]})
        when, users = now(), dict[str, User]()
        for index, item in enumerate(items):
            field = f"users[{index}]"
            if not isinstance(item, dict):
                raise InputError(f"{field} must be an object", {field: ["not an object"]})
            user_id = check_id(item.get("id"), f"{field}.id")
            if user_id in users:
                raise InputError(f"user {user_id} is listed twice", {f"{field}.id": ["twice"]})
            data = check_data(item.get("data"), f"{field}.data", self.limits.max_bytes)
            users[user_id] = User(user_id, data, when, when)
        written = await self.store.insert_many(list(users.values()), override)
        stored = await self.store.get_many(written)
        return [stored[i].public() for i in written if i in stored]

    async def get_many(self, user_ids: list[str], grant: Grant) -> list[dict[str, Any]]:
        """The users of `ids` that exist, in the order asked."""
        require_server_side(grant, "read", "users")
        ids = self._bounded(user_ids)
        found = await self.store.get_many(ids)
        return [found[i].public() for i in ids if i in found]

    async def delete_many(self, user_ids: list[str], grant: Grant) -> list[str]:
        """Delete the users of `ids` (those that do not exist too: the call is idempotent);
        answers the ids, as Stream's `deleted_user_ids`."""
        require_server_side(grant, "delete", "users")
        ids = self._bounded(user_ids)
        await self.store.delete_many(ids)
        return ids

    def _bounded(self, user_ids: list[str]) -> list[str]:
        most = self.limits.max_batch
        ids = list(dict.fromkeys(check_id(i, "ids") for i in user_ids))
        if not 1 <= len(ids) <= most:
            raise InputError(f"ids must name 1 to {most} users", {"ids": [f"1 to {most}"]})
        return ids

    async def many(self, user_ids: Collection[str]) -> dict[str, User]:
        """The users of `user_ids` that exist, in one store query (for enrichment)."""
        return await self.store.get_many(user_ids)
