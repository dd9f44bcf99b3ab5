"""Feed ids (`group:user_id`) and the groups they belong to."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import NamedTuple

from .errors import FeedConfigError, InputError

GROUP_RE = re.compile(r"^[a-z0-9_]{1,32}$")
# What a user token may do with other users' feeds of a group (Stream's client-side feed group
# permissions): nothing; read their activities; read them and add activities to them.
PRIVATE, GLOBAL_READ, GLOBAL_READ_WRITE = "private", "global_read", "global_read_write"
CLIENT_PERMISSIONS = (PRIVATE, GLOBAL_READ, GLOBAL_READ_WRITE)
USER_ID_RE = re.compile(r"^[\w\-.@=]{1,255}$")


class FeedId(NamedTuple):
    group: str
    user_id: str

    def __str__(self) -> str:
        return f"{self.group}:{self.user_id}"

    @property
    def compact(self) -> str:
        """The form Stream's SDKs put in scoped tokens: `timeline42` for `timeline:42`."""
        return f"{self.group}{self.user_id}"


def scope_feed(value: str, groups: Collection[str]) -> FeedId | None:
    """The one feed a token's `feed_id` names. `timeline:42` names `timeline:42`; the compact
    form Stream's SDKs sign (`timeline42`) names the feed of the *longest* configured group it
    begins with whose rest is a valid user id: with the groups `timeline` and
    `timeline_aggregated`, `timeline_aggregatedalice` is `timeline_aggregated:alice`, never
    `timeline:_aggregatedalice` (a token for that feed must be signed with the colon). None
    when it names no feed of a configured group."""
    group, sep, user_id = value.partition(":")
    if sep:
        valid = GROUP_RE.match(group) and USER_ID_RE.match(user_id) and group in groups
        return FeedId(group, user_id) if valid else None
    for group in sorted(groups, key=len, reverse=True):
        user_id = value[len(group) :]
        if value.startswith(group) and USER_ID_RE.match(user_id):
            return FeedId(group, user_id)
    return None


def parse_feed(group: str, user_id: str, groups: Collection[str], field: str = "feed") -> FeedId:
    """Check a feed's parts: well formed, and a configured group."""
    if not GROUP_RE.match(group) or not USER_ID_RE.match(user_id):
        raise InputError(
            f"invalid feed id {group}:{user_id}",
            {field: [f"{group}:{user_id} is not a valid feed id (group:user_id)"]},
        )
    if group not in groups:
        raise FeedConfigError(
            f"feed group {group} does not exist", {field: [f"unknown feed group {group}"]}
        )
    return FeedId(group, user_id)


def parse_feed_id(value: object, groups: Collection[str], field: str = "feed") -> FeedId:
    """Parse `group:user_id`. The SDKs append a feed token after a space (`user:44 <jwt>`):
    the request's own token authorises the call, so only the feed id before the space counts."""
    if not isinstance(value, str):
        raise InputError(f"{field} must be a feed id string", {field: ["must be a string"]})
    feed = value.split(" ", 1)[0]
    group, sep, user_id = feed.partition(":")
    if not sep:
        raise InputError(
            f"invalid feed id {feed!r}", {field: [f"{feed!r} is not a feed id (group:user_id)"]}
        )
    return parse_feed(group, user_id, groups, field)
