"""Feed ids (`group:user_id`) and the groups they belong to."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import NamedTuple

from .errors import FeedConfigError, InputError

GROUP_RE = re.compile(r"^[a-z0-9_]{1,32}$")
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
