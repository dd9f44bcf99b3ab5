"""The lines of an import file, validated as the API validates what they stand for.

One JSON object a line, `type` naming its kind and the object under the key of that name, in
the shape Stream's API answers it:

    {"type": "user", "user": {"id", "data", "created_at", "updated_at"}}
    {"type": "collection", "collection": {"collection", "id", "data", "user_id"?, ...}}
    {"type": "activity", "feed": "user:alice", "activity": {...as a read of that feed...}}
    {"type": "follow", "follow": {"feed_id", "target_id", "activity_copy_limit"?}}
    {"type": "reaction", "reaction": {"id", "kind", "activity_id", "user_id", "parent", ...}}

Pure: a bad line raises the TidingsError the API would answer (its fields prefixed with the
kind), and nothing of it is stored.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..domain.activities import Activity, Limits, parse_activity
from ..domain.errors import FeedConfigError, InputError
from ..domain.feeds import parse_feed_id
from ..domain.ids import lookup_id
from ..domain.objects import Entry, User, check_data, check_id, now
from ..domain.reactions import Bounds, parse_add

KINDS = ("user", "collection", "activity", "follow", "reaction")
# What reads add to an activity and an add may not send: left out of an imported one.
READ_ONLY = frozenset({
    "id", "origin", "duration", "reaction_counts", "latest_reactions", "latest_reactions_extra",
    "own_reactions", "own_reactions_extra", "score", "actor_data",
})  # fmt: skip


@dataclass(frozen=True)
class Rules:
    """What the API would accept, from the settings."""

    limits: Limits
    bounds: Bounds
    object_bytes: int
    followable: Collection[str]  # feed groups whose feeds may be followed
    default_copy_limit: int
    max_copy_limit: int


@dataclass(frozen=True)
class ActivityLine:
    """An activity as read from `feed`: its own (`origin` None), or a copy of one of `origin`'s
    (through a follow). `source_id`: the id it had where it was read, when not the one its
    time and foreign id give here."""

    feed: str
    activity: Activity
    origin: str | None
    source_id: str | None


@dataclass(frozen=True)
class FollowLine:
    source: str
    target: str
    copy_limit: int


@dataclass(frozen=True)
class ReactionLine:
    """A reaction; `activity_id` as the file names it (an id here, or a source id an import
    of its activity remembered); `parent` empty for a reaction to an activity."""

    id: str
    kind: str
    activity_id: str
    user_id: str
    parent: str
    data: dict[str, Any]
    target_feeds: tuple[str, ...]
    target_feeds_extra_data: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


Record = User | Entry | ActivityLine | FollowLine | ReactionLine


def parse_line(text: str, rules: Rules) -> tuple[str, Record]:
    """(kind, record) of one line; InputError (or another TidingsError) when refused."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InputError(f"not JSON: {exc}", {"line": ["not a JSON object"]}) from None
    if not isinstance(raw, dict):
        raise InputError("a line must be a JSON object", {"line": ["not a JSON object"]})
    kind = raw.get("type")
    if kind not in KINDS:
        raise InputError(
            f"type must be one of {', '.join(KINDS)}", {"type": [f"unknown type {kind!r}"]}
        )
    body = raw.get(kind)
    if not isinstance(body, dict):
        raise InputError(f"{kind} must be an object", {kind: ["not an object"]})
    parsed: Record
    if kind == "user":
        parsed = _user(body, rules)
    elif kind == "collection":
        parsed = _entry(body, rules)
    elif kind == "activity":
        parsed = _activity(raw.get("feed"), body, rules)
    elif kind == "follow":
        parsed = _follow(body, rules)
    else:
        parsed = _reaction(body, rules)
    return kind, parsed


def _time(value: object, field: str, default: datetime) -> datetime:
    """An RFC 3339 / ISO-8601 time (no offset: UTC), to the millisecond as the store keeps it."""
    if value is None:
        return default
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise InputError(f"{field} is not an ISO-8601 time", {field: ["not a time"]})
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def _user(body: Mapping[str, Any], rules: Rules) -> User:
    user_id = check_id(body.get("id"), "user.id")
    data = check_data(body.get("data"), "user.data", rules.object_bytes)
    created = _time(body.get("created_at"), "user.created_at", now())
    return User(user_id, data, created, _time(body.get("updated_at"), "user.updated_at", created))


def _entry(body: Mapping[str, Any], rules: Rules) -> Entry:
    collection = check_id(body.get("collection"), "collection.collection")
    entry_id = check_id(body.get("id"), "collection.id")
    owner = body.get("user_id")
    owner = None if owner is None else check_id(owner, "collection.user_id")
    data = check_data(body.get("data"), "collection.data", rules.object_bytes)
    created = _time(body.get("created_at"), "collection.created_at", now())
    updated = _time(body.get("updated_at"), "collection.updated_at", created)
    return Entry(collection, entry_id, data, owner, created, updated)


def _activity(feed: object, body: Mapping[str, Any], rules: Rules) -> ActivityLine:
    groups = rules.limits.groups
    if not isinstance(feed, str):
        raise InputError("feed is required (the feed it was read from)", {"feed": ["required"]})
    feed_id = str(parse_feed_id(feed, groups, "feed"))
    origin = body.get("origin") or None
    if origin is not None:
        if not isinstance(origin, str):
            raise InputError("origin must be a feed id", {"activity.origin": ["not a feed id"]})
        origin = str(parse_feed_id(origin, groups, "activity.origin"))
    if not body.get("time"):  # without it, each run would make another id: stored twice
        raise InputError(
            "an imported activity needs its time (its id is made from it)",
            {"activity.time": ["required"]},
        )
    given = body.get("id")
    fields = {k: v for k, v in body.items() if k not in READ_ONLY}
    activity = parse_activity(fields, rules.limits, "activity.")
    source_id = None
    if given is not None:
        source_id = lookup_id(given) if isinstance(given, str) else None
        if source_id is None:
            raise InputError("activity.id must be a UUID", {"activity.id": ["not a UUID"]})
    return ActivityLine(
        feed_id,
        activity,
        None if origin == feed_id else origin,
        None if source_id == activity.id else source_id,
    )


def _follow(body: Mapping[str, Any], rules: Rules) -> FollowLine:
    groups = rules.limits.groups
    source = body.get("feed_id")
    target = body.get("target_id")
    if not isinstance(source, str) or not isinstance(target, str):
        raise InputError(
            "feed_id and target_id are required", {"follow.feed_id": ["feed_id and target_id"]}
        )
    source_id = parse_feed_id(source, groups, "follow.feed_id")
    target_id = parse_feed_id(target, groups, "follow.target_id")
    if source_id == target_id:
        raise InputError("a feed cannot follow itself", {"follow.target_id": ["itself"]})
    if target_id.group not in rules.followable:
        raise FeedConfigError(
            f"feeds of group {target_id.group} cannot be followed",
            {"follow.target_id": [f"feed group {target_id.group} is not followable"]},
        )
    limit = body.get("activity_copy_limit")
    if limit is None:
        limit = rules.default_copy_limit
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise InputError(
            "activity_copy_limit must be a whole number", {"follow.activity_copy_limit": ["<0"]}
        )
    if limit > rules.max_copy_limit:
        raise InputError(
            f"activity_copy_limit must be at most {rules.max_copy_limit}",
            {"follow.activity_copy_limit": [f"at most {rules.max_copy_limit}"]},
        )
    return FollowLine(str(source_id), str(target_id), limit)


def _reaction(body: Mapping[str, Any], rules: Rules) -> ReactionLine:
    for name in ("id", "user_id"):
        if not body.get(name):
            raise InputError(f"reaction.{name} is required", {f"reaction.{name}": ["required"]})
    try:
        new = parse_add(dict(body), rules.bounds)
    except InputError as exc:
        raise type(exc)(exc.detail, {f"reaction.{k}": v for k, v in exc.fields.items()}) from None
    created = _time(body.get("created_at"), "reaction.created_at", now())
    deleted = body.get("deleted_at")
    return ReactionLine(
        id=new.id, kind=new.kind, activity_id=new.activity_id, user_id=str(new.user_id),
        parent=new.parent, data=new.data, target_feeds=new.target_feeds,
        target_feeds_extra_data=new.target_feeds_extra_data, created_at=created,
        updated_at=_time(body.get("updated_at"), "reaction.updated_at", created),
        deleted_at=None if deleted is None else _time(deleted, "reaction.deleted_at", created),
    )  # fmt: skip
