"""Reactions (likes, comments, ...) as Stream's Reactions API has them: pure shape and validation.

A reaction belongs to an activity (`activity_id`) and, for a child reaction, to a parent
reaction (`parent`); nesting stops at three levels, as in Stream. Its id is a UUIDv7 made from
the time it was added (so ids sort by time and pages are read newest first by id), or the UUID
the client chose. A reaction with `target_feeds` is also an activity in each of those feeds
(`target_activity`), removed with it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, NamedTuple

from .errors import InputError, PayloadTooLargeError
from .ids import clock, format_time, lookup_id
from .validation import check_storable

MAX_KIND = 255  # characters of a kind
MAX_USER_ID = 255  # characters of a user id
MAX_TARGET_FEEDS = 20  # Stream's documented maximum of target feeds per request
MAX_DEPTH = 3  # a reaction, its child, the child's child: a fourth level is refused
MAX_PAGE = 25  # Stream answers at most 25 reactions per filter page (a larger limit is capped)
DEFAULT_PAGE = 10  # what a filter without `limit` answers (the npm SDK's default too)
LATEST_CHILDREN = 10  # children in all (newest, by kind) in `latest_children` of a read reaction
USER_REFERENCE, ACTIVITY_REFERENCE, REACTION_REFERENCE = "SU:", "SA:", "SR:"
LOOKUPS = ("activity_id", "user_id", "reaction_id")


@dataclass(frozen=True)
class Reaction:
    """A stored reaction. `ancestors`: the parent chain, root first (empty for a reaction to an
    activity); `children_counts` counts the live children per kind (kept by atomic increments)."""

    id: str
    kind: str
    activity_id: str
    user_id: str
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    parent: str = ""
    ancestors: tuple[str, ...] = ()
    target_feeds: tuple[str, ...] = ()
    target_feeds_extra_data: dict[str, Any] | None = None
    children_counts: Mapping[str, int] = field(default_factory=dict)
    deleted_at: datetime | None = None

    def public(
        self,
        latest_children: Mapping[str, list[dict[str, Any]]] | None = None,
        extra_data: bool = False,
    ) -> dict[str, Any]:
        """Stream's shape of a reaction (without `duration`, which the HTTP layer adds). Its
        `target_feeds_extra_data` only with `extra_data`: Stream echoes it when it is written
        (add, update), and reads (get, filter, children) answer without it."""
        body: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "activity_id": self.activity_id,
            "user_id": self.user_id,
            "data": self.data,
            "parent": self.parent,
            "created_at": self.wire_times[0],
            "updated_at": self.wire_times[1],
            "latest_children": dict(latest_children or {}),
            "children_counts": dict(self.children_counts),
        }
        if self.target_feeds:
            body["target_feeds"] = list(self.target_feeds)
        if extra_data and self.target_feeds_extra_data is not None:
            body["target_feeds_extra_data"] = self.target_feeds_extra_data
        if self.deleted_at is not None:
            body["deleted_at"] = wire_time(self.deleted_at)
        return body

    @cached_property
    def wire_times(self) -> tuple[str, str]:
        """Its creation and update times as written, once per reaction: the reactions of a
        page come from the reaction cache, the same objects for as long as they are current."""
        return wire_time(self.created_at), wire_time(self.updated_at)

    @cached_property
    def shown(self) -> dict[str, Any]:
        """`public()` without children, made once per reaction and shared by every enriched
        read that shows it: never to be changed (copy it to add to it)."""
        return self.public()

    @property
    def foreign_id(self) -> str:
        """The foreign id of its activities in the target feeds."""
        return f"reaction:{self.id}"


class Summary(NamedTuple):
    """An activity's reactions in short: its counters, and a version that rises with every
    write to its reactions or their children (store/mongo/reactions.py)."""

    version: int
    counts: dict[str, int]


def retried_add(stored: Reaction, asked: Reaction) -> bool:
    """`asked` (an add refused because its id is taken) asks for what `stored` holds, and no
    later write changed it: the client's retry of that add."""
    return (
        stored.deleted_at is None
        and stored.updated_at == stored.created_at
        and (stored.kind, stored.activity_id, stored.user_id, stored.parent, stored.data)
        == (asked.kind, asked.activity_id, asked.user_id, asked.parent, asked.data)
        and (stored.target_feeds, stored.target_feeds_extra_data)
        == (asked.target_feeds, asked.target_feeds_extra_data)
    )


def counts_without(counts: Mapping[str, int], reaction: Reaction) -> dict[str, int]:
    """An activity's counts once `reaction` is hard-deleted: one fewer of its kind when it is
    counted there (a live reaction to the activity; a child counts on its parent only, and a
    soft-deleted reaction is no longer counted)."""
    out = dict(counts)
    if not reaction.parent and reaction.deleted_at is None and reaction.kind in out:
        out[reaction.kind] = max(0, out[reaction.kind] - 1)
    return out


class SentCounts:
    """The newest counts (by version) one node sent with an activity's reaction events, for
    the `limit` activities last sent: what it sends of an activity never goes back. Each
    event carries the counts its write left, but racing writes' events (from this node or
    others, over the bus) arrive in any order; an event older than what was sent already
    carries the newer counts, which were there after its write too."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._sent: OrderedDict[str, Summary] = OrderedDict()

    def newest(self, activity_id: str, read: Summary) -> dict[str, int]:
        """The counts to send with an event whose counts are `read`: its own, or newer ones."""
        sent = self._sent.get(activity_id)
        if sent is None or read.version >= sent.version:
            sent = read
        self._sent[activity_id] = sent
        self._sent.move_to_end(activity_id)
        if len(self._sent) > self.limit:
            self._sent.popitem(last=False)
        return dict(sent.counts)


def child_ancestors(parent: Reaction, field_name: str = "parent") -> tuple[str, ...]:
    """The ancestors of a child of `parent` (root first); InputError past MAX_DEPTH levels.
    `field_name`: the input's field that names the parent, in the error."""
    ancestors = (*parent.ancestors, parent.id)
    if len(ancestors) >= MAX_DEPTH:
        raise InputError(
            f"reactions nest at most {MAX_DEPTH} levels deep",
            {field_name: [f"already {MAX_DEPTH} levels deep"]},
        )
    return ancestors


def wire_time(time: datetime) -> str:
    """Stream writes a reaction's times in UTC with a `Z`."""
    return format_time(time) + "Z"


@dataclass(frozen=True)
class Bounds:
    """What a reaction may hold: `max_bytes` of JSON for `data` and for the extra data."""

    max_bytes: int
    groups: frozenset[str]


@dataclass(frozen=True)
class NewReaction:
    """An add as validated: `activity_id` is empty for a child (its parent's is used)."""

    id: str
    kind: str
    user_id: str | None
    activity_id: str
    parent: str
    data: dict[str, Any]
    target_feeds: tuple[str, ...]
    target_feeds_extra_data: dict[str, Any] | None
    created_at: datetime


def parse_add(body: object, bounds: Bounds) -> NewReaction:
    """POST reaction/: validated whole; an InputError names the first bad field."""
    raw = _object(body)
    kind = _text(raw.get("kind"), "kind", MAX_KIND)
    if "." in kind or kind.startswith("$") or "\0" in kind:
        raise InputError("kind may not hold '.' or NUL, nor start with '$'", {"kind": ["bad"]})
    parent = raw.get("parent") or ""
    activity_id = raw.get("activity_id") or ""
    if not isinstance(parent, str) or not isinstance(activity_id, str):
        raise InputError("activity_id and parent must be strings", {"activity_id": ["string"]})
    if parent:
        parent = _uuid(parent, "parent")
    elif activity_id:
        activity_id = _text(activity_id, "activity_id", MAX_USER_ID)
    else:
        raise InputError(
            "a reaction needs an activity_id (or a parent, for a child reaction)",
            {"activity_id": ["required"]},
        )
    user_id = raw.get("user_id")
    if user_id is not None:
        user_id = _text(user_id, "user_id", MAX_USER_ID)
    new_id = raw.get("id")
    targets, extra = parse_targets(raw, bounds)
    return NewReaction(
        id=_uuid(new_id, "id") if new_id else new_reaction_id(),
        kind=kind,
        user_id=user_id,
        activity_id=activity_id,
        parent=parent,
        data=parse_data(raw.get("data"), bounds, "data"),
        target_feeds=targets or (),
        target_feeds_extra_data=extra,
        created_at=now_ms(),
    )


@dataclass(frozen=True)
class Change:
    """PUT reaction/{id}/: None for what the update leaves as it is."""

    data: dict[str, Any] | None
    target_feeds: tuple[str, ...] | None
    target_feeds_extra_data: dict[str, Any] | None


def parse_update(body: object, bounds: Bounds) -> Change:
    raw = _object(body)
    data = None if raw.get("data") is None else parse_data(raw["data"], bounds, "data")
    targets, extra = parse_targets(raw, bounds)
    return Change(data, targets, extra)


def parse_targets(
    raw: Mapping[str, Any], bounds: Bounds
) -> tuple[tuple[str, ...] | None, dict[str, Any] | None]:
    """`target_feeds` (None when absent or null) and `target_feeds_extra_data`."""
    targets = raw.get("target_feeds")
    extra = raw.get("target_feeds_extra_data")
    if extra is not None:
        extra = parse_data(extra, bounds, "target_feeds_extra_data")
        reserved = sorted({"id", "actor", "verb", "object", "foreign_id", "time"} & extra.keys())
        if reserved:
            raise InputError(
                f"target_feeds_extra_data cannot set {', '.join(reserved)}",
                {"target_feeds_extra_data": [f"{name} is reserved" for name in reserved]},
            )
    if targets is None:
        return None, extra
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise InputError("target_feeds must be a list of feed ids", {"target_feeds": ["list"]})
    if len(targets) > MAX_TARGET_FEEDS:
        raise InputError(
            f"target_feeds holds more than {MAX_TARGET_FEEDS} feeds",
            {"target_feeds": [f"at most {MAX_TARGET_FEEDS}"]},
        )
    for target in targets:
        group, sep, user = target.partition(":")
        if not sep or group not in bounds.groups or not user or len(target) > 2 * MAX_USER_ID:
            raise InputError(
                f"{target!r} is not a feed of a configured group",
                {"target_feeds": [f"{target}: not a feed id (group:user_id)"]},
            )
    return tuple(dict.fromkeys(targets)), extra


def parse_data(value: object, bounds: Bounds, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{name} must be a JSON object", {name: ["not an object"]})
    check_storable(value, name)
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > bounds.max_bytes:
        raise PayloadTooLargeError(
            f"{name} is {size} bytes of JSON, more than the {bounds.max_bytes} allowed",
            {name: [f"larger than {bounds.max_bytes} bytes"]},
        )
    return value


def target_activity(reaction: Reaction) -> dict[str, Any]:
    """The activity a reaction adds to its target feeds, as Stream writes it: the user as
    actor, the kind as verb, the activity reacted to as object, the reaction itself under
    `reaction`, its time as time, and the extra data merged in. (Stream also writes an empty
    `target`, which Tidings' activities cannot hold: it is left out.)"""
    return {
        **(reaction.target_feeds_extra_data or {}),
        "actor": USER_REFERENCE + reaction.user_id,
        "verb": reaction.kind,
        "object": ACTIVITY_REFERENCE + reaction.activity_id,
        "foreign_id": reaction.foreign_id,
        "time": format_time(reaction.created_at),
        "reaction": REACTION_REFERENCE + reaction.id,
    }


def now_ms() -> datetime:
    """Now, to the millisecond: what the store keeps of a time, so that a reaction reads back
    as it was answered."""
    now = clock.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_reaction_id() -> str:
    """A UUIDv7 of now: reaction ids sort by the time they were added."""
    micros = int(clock.now().timestamp() * 1_000_000)
    millis, sub_ms = divmod(micros, 1000)
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (millis << 80) | (0x7 << 76) | ((sub_ms * 4096 // 1000) << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))


def id_time(reaction_id: str) -> datetime | None:
    """The time a UUIDv7 reaction id was made at (to the millisecond); None for another UUID
    (a client may choose its reactions' ids)."""
    value = uuid.UUID(reaction_id)
    if value.version != 7:
        return None
    return datetime.fromtimestamp((value.int >> 80) / 1000, UTC)


def _uuid(value: object, name: str) -> str:
    found = lookup_id(value) if isinstance(value, str) else None
    if found is None:
        raise InputError(f"{name} must be a UUID", {name: ["not a UUID"]})
    return found


def _object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object", {"body": ["not an object"]})
    return body


def _text(value: object, name: str, most: int) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{name} is required (a non-empty string)", {name: ["required"]})
    if len(value) > most:
        raise InputError(f"{name} is longer than {most}", {name: [f"at most {most} characters"]})
    check_storable(value, name)
    return value
