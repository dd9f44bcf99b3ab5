"""JWT tokens, as Stream's SDKs sign them (HS256 with the app secret), and what each may do.

Three kinds (DESIGN.md "Tokens"):
- server token `{"resource": "*", "action": "*", "feed_id": "*"}`: everything;
- scoped token `{"resource", "action", "feed_id"}`: one resource and action on one feed, the feed
  written `timeline42` (as the SDKs do) or `timeline:42`;
- user token `{"user_id": "bob"}`: read every feed of user id `bob`, write only `user:bob`;
- scoped user token: a scoped token with a `user_id` as well: the scope authorises (as a scoped
  token's), the user names who acts (the presence member of a raid room).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from .domain.activities import Activity
from .domain.errors import NotAllowedError, SignatureError
from .domain.feeds import FeedId

Action = Literal["read", "write", "delete"]
Resource = Literal["feed", "follower", "activities", "feed_targets"]
USER_WRITE_GROUP = "user"


@dataclass(frozen=True)
class Grant:
    """What a verified token allows."""

    resource: str | None
    action: str | None
    feed_id: str | None
    user_id: str | None
    expires_at: float | None

    def allows(self, resource: Resource, action: Action, feed: FeedId) -> bool:
        if self.resource is not None:
            return (
                (self.resource == "*" or self.resource == resource)
                and (self.action == "*" or self.action == action)
                and self.feed_id in ("*", feed.compact, str(feed))
            )
        if self.user_id is None:
            return False
        if action == "read":
            return feed.user_id == self.user_id
        return feed == FeedId(USER_WRITE_GROUP, self.user_id)

    def require(self, resource: Resource, action: Action, feed: FeedId) -> None:
        if not self.allows(resource, action, feed):
            raise NotAllowedError(f"you don't have permission to {action} {resource} {feed}")

    def app_wide(self, resource: Resource, action: Action) -> bool:
        """Whether this is a token for `resource` on every feed (`feed_id: "*"`), as Stream's
        SDKs sign server-side for the calls that name no feed of their own (activities/,
        activity/, add_to_many/, stats/follow/). A server token is one."""
        return (
            self.resource in ("*", resource)
            and self.action in ("*", action)
            and self.feed_id == "*"
        )

    def require_app_wide(self, resource: Resource, action: Action) -> None:
        if not self.app_wide(resource, action):
            raise NotAllowedError(
                f"you don't have permission to {action} {resource}: this call needs a "
                f'server-side token for every feed (feed_id "*")'
            )

    def may_write(self, feed: str) -> bool:
        """Whether this token may add activities to `feed` (a stored `group:user_id`)."""
        group, _, user_id = feed.partition(":")
        return self.allows("feed", "write", FeedId(group, user_id))

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= time.time()


def authorize_targets(
    grant: Grant, activities: Sequence[Activity], secret: str, batch: bool = False
) -> None:
    """DESIGN.md: every `to` feed is authorised. A token that may write the feed (a server
    token may write anywhere) authorises it; else the entry's own feed token (after the space,
    as the SDKs send it) must allow writing it. One unauthorised entry refuses the request
    whole (NotAllowedError), before anything is stored. `batch`: name the fields as in a
    batch add (`activities[i].to`)."""
    entry_grants: dict[str, Grant | None] = {}  # each distinct entry token verified once
    for index, activity in enumerate(activities):
        for feed in activity.to:
            if grant.may_write(feed):
                continue
            token = activity.to_tokens.get(feed)
            if token is not None and token not in entry_grants:
                entry_grants[token] = _entry_grant(token, secret)
            entry = entry_grants.get(token) if token is not None else None
            if entry is not None and not entry.expired and entry.may_write(feed):
                continue
            field = f"activities[{index}].to" if batch else "to"
            why = "its feed token does not allow writing it" if token else "no token allows it"
            raise NotAllowedError(
                f"you don't have permission to write feed {feed} (named in to)",
                {field: [f"{feed}: {why}"]},
            )


def authorize_feeds(
    grant: Grant,
    feeds: Sequence[str],
    tokens: Mapping[str, str],
    secret: str,
    field: str,
    allowed: Callable[[str], bool] | None = None,
) -> None:
    """As `authorize_targets`, for a plain list of feeds (the targets of
    activity_to_targets): each is allowed when `grant` may write it, or `allowed(feed)`, or
    the token the entry carried after a space allows writing it. One refusal refuses all."""
    entry_grants: dict[str, Grant | None] = {}
    for feed in feeds:
        if grant.may_write(feed) or (allowed is not None and allowed(feed)):
            continue
        token = tokens.get(feed)
        if token is not None and token not in entry_grants:
            entry_grants[token] = _entry_grant(token, secret)
        entry = entry_grants.get(token) if token is not None else None
        if entry is not None and not entry.expired and entry.may_write(feed):
            continue
        why = "its feed token does not allow writing it" if token else "no token allows it"
        raise NotAllowedError(
            f"you don't have permission to write feed {feed} (named in {field})",
            {field: [f"{feed}: {why}"]},
        )


def _entry_grant(token: str, secret: str) -> Grant | None:
    try:
        return decode_token(token, secret)
    except SignatureError:
        return None


def decode_token(token: str | None, secret: str) -> Grant:
    """Verify a token (a `Bearer ` prefix is accepted) and say what it grants."""
    if not token:
        raise SignatureError("missing authentication token (Authorization header)")
    token = token.removeprefix("Bearer ").strip()
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], options={"verify_aud": False}
        )
    except jwt.ExpiredSignatureError as exc:
        raise SignatureError("token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise SignatureError(f"invalid token signature: {exc}") from exc
    resource, action, feed_id = claims.get("resource"), claims.get("action"), claims.get("feed_id")
    user_id = claims.get("user_id")
    if resource is None and user_id is None:
        raise SignatureError("token names neither a resource nor a user_id")
    return Grant(
        resource=None if resource is None else str(resource),
        action=None if action is None else str(action),
        feed_id=None if feed_id is None else str(feed_id),
        user_id=None if user_id is None else str(user_id),
        expires_at=float(claims["exp"]) if "exp" in claims else None,
    )


def server_token(secret: str, ttl: float | None = None) -> str:
    return _sign({"resource": "*", "action": "*", "feed_id": "*"}, secret, ttl)


def user_token(user_id: str, secret: str, ttl: float | None = None) -> str:
    return _sign({"user_id": user_id}, secret, ttl)


def feed_token(
    feed: FeedId,
    secret: str,
    ttl: float | None = None,
    action: str = "read",
    user_id: str | None = None,
) -> str:
    """A token for one feed and one action (`*`: every action): by default a read token, as a
    backend hands to a client that only watches it. With `user_id`, a scoped user token: the
    scope authorises, the user names the member (a raid room's)."""
    claims: dict[str, Any] = {"resource": "*", "action": action, "feed_id": feed.compact}
    if user_id is not None:
        claims["user_id"] = user_id
    return _sign(claims, secret, ttl)


def _sign(claims: dict[str, Any], secret: str, ttl: float | None) -> str:
    if ttl is not None:
        claims["exp"] = int(time.time() + ttl)
    return jwt.encode(claims, secret, algorithm="HS256")
