"""JWT tokens, as Stream's SDKs sign them (HS256 with the app secret), and what each may do.

Three kinds (docs/guide/tokens.md):
- server token `{"resource": "*", "action": "*", "feed_id": "*"}`: everything;
- scoped token `{"resource", "action", "feed_id"}`: one resource and action on one feed, the feed
  written `timeline42` (as the SDKs do) or `timeline:42`; the compact form is resolved against
  the configured groups when the token is read, so that it names exactly one feed
  (`domain.feeds.scope_feed`);
- user token `{"user_id": "bob"}`: read, follow from, unfollow from and mark every feed of user
  id `bob`; add to and remove from only `user:bob`; besides, read other users' feeds of a
  group whose `client_permissions` is `global_read`, and read and add to those of a
  `global_read_write` group (Stream's client-side feed group permissions);
- scoped user token: a scoped token with a `user_id` as well: the scope authorises (as a scoped
  token's), the user names who acts (the presence member of a raid room).
A token that names a user acts as that user: it may not add an activity whose actor is another
user's reference (`SU:<id>`, what the SDKs send for `client.currentUser`).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import jwt

from .domain.activities import Activity
from .domain.errors import InputError, NotAllowedError, SignatureError
from .domain.feeds import GLOBAL_READ, GLOBAL_READ_WRITE, PRIVATE, FeedId, scope_feed

Action = Literal["read", "write", "delete"]
Resource = Literal[
    "feed", "follower", "activities", "feed_targets", "users", "collections", "reactions"
]
USER_WRITE_GROUP = "user"
USER_REFERENCE = "SU:"  # how Stream's SDKs write a user in an activity (`SU:bob`)


@dataclass(frozen=True)
class Grant:
    """What a verified token allows."""

    resource: str | None
    action: str | None
    feed_id: str | None
    user_id: str | None
    expires_at: float | None
    feed: FeedId | None = None  # the one feed `feed_id` names (none when "*" or unknown)
    # The groups whose other users' feeds a user token may read or write, by group.
    shared: Mapping[str, str] = field(default_factory=dict, compare=False)

    def allows(self, resource: Resource, action: Action, feed: FeedId) -> bool:
        if self.resource is not None:
            return (
                (self.resource == "*" or self.resource == resource)
                and (self.action == "*" or self.action == action)
                and (self.feed_id == "*" or self.feed == feed)
            )
        if self.user_id is None:
            return False
        if resource == "feed" and feed.user_id != self.user_id:
            shared = self.shared.get(feed.group, PRIVATE)
            return (action == "read" and shared in (GLOBAL_READ, GLOBAL_READ_WRITE)) or (
                action == "write" and shared == GLOBAL_READ_WRITE
            )
        if action == "read" or resource == "follower":
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

    def may_read_to_follow(self, target: FeedId) -> bool:
        """Whether this token may read `target` for a follow of it: a scope (or user token)
        that reads it, or a token for the follows of every feed (`feed_id: "*"`, as the SDKs
        sign follow_many/ server-side). A room token reads its own room, no other."""
        return self.allows("feed", "read", target) or self.app_wide("follower", "write")

    def may_write(self, feed: str) -> bool:
        """Whether this token may add activities to `feed` (a stored `group:user_id`)."""
        group, _, user_id = feed.partition(":")
        return self.allows("feed", "write", FeedId(group, user_id))

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= time.time()


def authorize_add(
    grant: Grant,
    activities: Sequence[Activity],
    secret: str,
    groups: Collection[str],
    batch: bool = False,
) -> None:
    """Everything an add names besides its feed: each activity's actor, then each `to`
    feed. One refusal refuses the request whole (NotAllowedError), before anything is
    stored. `batch`: name the fields as in a batch add (`activities[i].to`)."""
    authorize_actors(grant, activities, batch)
    authorize_targets(grant, activities, secret, groups, batch)


def authorize_actors(grant: Grant, activities: Sequence[Activity], batch: bool = False) -> None:
    """No impersonation, as Stream: a token that names a user may not add an activity whose
    actor is another user's reference (`SU:<id>`); its own reference and any other string
    are accepted. A token for every feed (a server token) may name any actor."""
    if grant.user_id is None or grant.app_wide("feed", "write"):
        return
    own = USER_REFERENCE + grant.user_id
    for index, activity in enumerate(activities):
        actor = activity.data.get("actor")
        if isinstance(actor, str) and actor.startswith(USER_REFERENCE) and actor != own:
            field = f"activities[{index}].actor" if batch else "actor"
            raise NotAllowedError(
                f"user {grant.user_id} may not add an activity as {actor}",
                {field: [f"{actor} is not {own}: a user token acts as its own user"]},
            )


def authorize_targets(
    grant: Grant,
    activities: Sequence[Activity],
    secret: str,
    groups: Collection[str],
    batch: bool = False,
) -> None:
    """Every `to` feed is authorised. A token that may write the feed (a server
    token may write anywhere) authorises it; else the entry's own feed token (after the space,
    as the SDKs send it) must allow writing it. One unauthorised entry refuses the request
    whole (NotAllowedError), before anything is stored."""
    entries = _EntryTokens(secret, groups)
    for index, activity in enumerate(activities):
        field = f"activities[{index}].to" if batch else "to"
        for feed in activity.to:
            entries.require_write(grant, feed, activity.to_tokens.get(feed), field)


def authorize_retarget(
    grant: Grant,
    feed: FeedId,
    targets: Sequence[str],
    tokens: Mapping[str, str],
    secret: str,
    groups: Collection[str],
) -> None:
    """activity_to_targets: each target it adds, replaces or drops is authorised as a `to`
    entry of an add: `grant` may write it, or the token the entry carried after a space does.
    A token for retargeting this very feed (`resource: "feed_targets"`, what Stream's SDKs sign
    server-side for this call) names any target; a wider resource (`*`, a raid room's token)
    does not stand for it. One refusal refuses all (NotAllowedError)."""
    if grant.resource == "feed_targets" and grant.allows("feed_targets", "write", feed):
        return
    entries = _EntryTokens(secret, groups)
    for target in dict.fromkeys(targets):
        entries.require_write(grant, target, tokens.get(target), "targets")


class _EntryTokens:
    """The feed tokens one request carries beside feeds (`"user:44 <token>"`), each verified
    once."""

    def __init__(self, secret: str, groups: Collection[str]) -> None:
        self.secret, self.groups = secret, groups
        self.verified: dict[str, Grant | None] = {}

    def require_write(self, grant: Grant, feed: str, token: str | None, field: str) -> None:
        """`grant` may write `feed`, or else `token` (the entry's own) may."""
        if grant.may_write(feed):
            return
        if token is not None:
            if token not in self.verified:
                self.verified[token] = entry_grant(token, self.secret, self.groups)
            entry = self.verified[token]
            if entry is not None and entry.may_write(feed):
                return
        why = "its feed token does not allow writing it" if token else "no token allows it"
        raise NotAllowedError(
            f"you don't have permission to write feed {feed} (named in {field})",
            {field: [f"{feed}: {why}"]},
        )


def authorize_follow_target(
    grant: Grant,
    target: FeedId,
    target_token: str | None,
    secret: str,
    groups: Collection[str],
    field: str = "target",
) -> None:
    """A follow of a private feed (its group's `follow = "readers"`) needs the right to read
    it: the request's token (`Grant.may_read_to_follow`), or the follow's `target_token` (what
    Stream's Python SDK sends). Refused: NotAllowedError, before anything is stored."""
    if grant.may_read_to_follow(target):
        return
    entry = entry_grant(target_token, secret, groups) if target_token else None
    if entry is not None and entry.may_read_to_follow(target):
        return
    why = "target_token does not allow reading it" if target_token else "no token may read it"
    raise NotAllowedError(
        f"you don't have permission to follow {target}: its feeds are private", {field: [why]}
    )


class _Group(Protocol):
    @property
    def client_permissions(self) -> str: ...


def shared_groups(feeds: Mapping[str, _Group]) -> dict[str, str]:
    """The configured groups (`settings.feeds`) whose other users' feeds a user token may
    read or write, with their `client_permissions` (what `decode_token` takes as `shared`)."""
    return {
        name: g.client_permissions for name, g in feeds.items() if g.client_permissions != PRIVATE
    }


def entry_grant(token: str, secret: str, groups: Collection[str]) -> Grant | None:
    """What a token sent beside a feed grants (a `to` entry's, a follow's `target_token`):
    None when it is not a valid token (it then authorises nothing)."""
    try:
        grant = decode_token(token, secret, groups)
    except SignatureError:
        return None
    return None if grant.expired else grant


def decode_token(
    token: str | None,
    secret: str,
    groups: Collection[str],
    shared: Mapping[str, str] | None = None,
) -> Grant:
    """Verify a token (a `Bearer ` prefix is accepted) and say what it grants; its `feed_id`
    is resolved against the configured feed `groups` (`domain.feeds.scope_feed`); `shared`:
    the groups of `shared_groups`, what a user token may do with other users' feeds."""
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
    scope = None if feed_id is None else str(feed_id)
    return Grant(
        resource=None if resource is None else str(resource),
        action=None if action is None else str(action),
        feed_id=scope,
        user_id=None if user_id is None else str(user_id),
        expires_at=float(claims["exp"]) if "exp" in claims else None,
        feed=None if scope is None or scope == "*" else scope_feed(scope, groups),
        shared=shared or {},
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
    scope authorises, the user names the member (a raid room's). The feed is written with
    its colon, which names one feed whatever groups are configured."""
    claims: dict[str, Any] = {"resource": "*", "action": action, "feed_id": str(feed)}
    if user_id is not None:
        claims["user_id"] = user_id
    return _sign(claims, secret, ttl)


def _sign(claims: dict[str, Any], secret: str, ttl: float | None) -> str:
    if ttl is not None:
        claims["exp"] = int(time.time() + ttl)
    return jwt.encode(claims, secret, algorithm="HS256")


def reaction_user(grant: Grant, user_id: str | None) -> str:
    """Who adds a reaction, as Stream decides it: a server token names any user (and must
    name one); a user token acts as its own user, and naming another is an InputError (400,
    as Stream answers it); any other token adds none (NotAllowedError)."""
    if grant.user_id is not None and not grant.app_wide("reactions", "write"):
        if user_id is not None and user_id != grant.user_id:
            raise InputError(
                f"user {grant.user_id} may not add a reaction as {user_id}",
                {"user_id": [f"{user_id} is not {grant.user_id}: a user token acts as itself"]},
            )
        return grant.user_id
    if grant.app_wide("reactions", "write"):
        if user_id is None:
            raise InputError("user_id is required with a server token", {"user_id": ["required"]})
        return user_id
    raise NotAllowedError("this token may not add reactions: use a user or server token")


def require_reaction_owner(grant: Grant, owner: str, action: Action = "write") -> None:
    """Only its own user (or a server token) changes, deletes or restores a reaction."""
    if grant.app_wide("reactions", action) or grant.user_id == owner:
        return
    raise NotAllowedError(f"you don't have permission to change a reaction of user {owner}")


def authorize_reaction_targets(grant: Grant, targets: Sequence[str]) -> Grant:
    """A reaction's `target_feeds` are authorised as an activity's `to`: the token must be
    allowed to write each; a server-side token for reactions (what stream-python signs:
    `resource: "reactions"`, `feed_id: "*"`) writes all. One refusal refuses the request whole.
    Answers the grant that adds the reaction's activity to those feeds."""
    if grant.app_wide("reactions", "write"):
        return SERVER_GRANT
    for feed in targets:
        if not grant.may_write(feed):
            raise NotAllowedError(
                f"you don't have permission to write feed {feed} (named in target_feeds)",
                {"target_feeds": [f"{feed}: no token allows it"]},
            )
    return grant


SERVER_GRANT = Grant(resource="*", action="*", feed_id="*", user_id=None, expires_at=None)
