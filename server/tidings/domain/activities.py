"""Activities: validation of what clients send, and the shape they are given back in."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from .errors import CustomFieldError, InputError, PayloadTooLargeError
from .feeds import parse_feed_id
from .ids import ID_RE, activity_id, clock, format_time, parse_time
from .validation import input_error

RESERVED_FIELDS = frozenset({"id", "origin", "duration"})


class StreamString(fields.Field[str]):
    """A string; numbers are taken and kept as strings, as Stream does for actor, verb, …"""

    default_error_messages = {"invalid": "Not a valid string."}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise self.make_error("invalid")


class TimeField(fields.Field[str]):
    default_error_messages = {"invalid": "Not a valid ISO-8601 time."}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return format_time(parse_time(value))
        except (ValueError, OverflowError) as exc:
            raise self.make_error("invalid") from exc


def _text(required: bool) -> StreamString:
    return StreamString(
        required=required, allow_none=not required, validate=validate.Length(min=1, max=255)
    )


class ActivitySchema(Schema):
    class Meta:
        unknown = INCLUDE

    actor = _text(required=True)
    verb = _text(required=True)
    object = _text(required=True)
    target = _text(required=False)
    foreign_id = _text(required=False)
    time = TimeField(allow_none=True)
    to = fields.List(fields.String(), allow_none=True)


_SCHEMA = ActivitySchema()


@dataclass(frozen=True)
class Activity:
    """A validated activity: `data` holds what the client sent (normalised), never `id` or
    `origin`, which depend on storage and on the feed it is read from."""

    id: str
    time: str
    foreign_id: str | None
    to: tuple[str, ...]
    data: dict[str, Any] = field(repr=False)
    # The feed token a `to` entry carried after the space (`"user:44 <token>"`, as the SDKs
    # send it), by feed id: what may authorise writing that feed (auth.authorize_targets).
    to_tokens: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def public(self, origin: str | None = None) -> dict[str, Any]:
        return public_activity(self.id, self.data, origin)


# What Stream answers for the activity fields it always has but an add may leave out.
ABSENT_FIELDS: Mapping[str, Any] = {"foreign_id": "", "target": ""}


def public_activity(
    activity_id: str, data: Mapping[str, Any], origin: str | None
) -> dict[str, Any]:
    """An activity as Stream answers it: what was sent, `foreign_id` and `target` as `""` when
    left out (Stream's own suites expect both on every activity), its id and origin."""
    return {**ABSENT_FIELDS, **data, "id": activity_id, "origin": origin}


@dataclass(frozen=True)
class Limits:
    groups: Collection[str]
    max_bytes: int
    max_to: int
    max_batch: int = 100
    max_batch_bytes: int = 524288
    # How far ahead of the server's clock a `time` may be: a far-future activity would stay on
    # top of its feeds and raise its feed's highest id for good (feeds/service.py _pulled).
    max_future_seconds: float = 600.0


def parse_activity(raw: object, limits: Limits, prefix: str = "") -> Activity:
    """Validate one activity as Stream would; raise an InputError naming the bad fields."""
    if not isinstance(raw, dict):
        raise InputError(
            "an activity must be a JSON object", {prefix or "activity": ["not an object"]}
        )
    size = len(json.dumps(raw, separators=(",", ":"), default=str).encode())
    if size > limits.max_bytes:
        raise PayloadTooLargeError(
            f"activity is {size} bytes of JSON, more than the {limits.max_bytes} allowed",
            {prefix or "activity": [f"larger than {limits.max_bytes} bytes"]},
        )
    reserved = sorted(RESERVED_FIELDS & raw.keys())
    if reserved:
        raise CustomFieldError(
            f"{', '.join(reserved)} cannot be set on an activity",
            {prefix + name: ["reserved field"] for name in reserved},
        )
    # `""` is how an activity reads without them: one read back and sent again still has none
    raw = {k: v for k, v in raw.items() if not (k in ABSENT_FIELDS and v == "")}
    try:
        loaded: dict[str, Any] = _SCHEMA.load(raw)
    except ValidationError as exc:
        raise input_error(exc, prefix) from exc
    data = {key: value for key, value in loaded.items() if value is not None}
    to, to_tokens = _parse_to(data.pop("to", None) or [], limits, prefix + "to")
    now = clock.now()
    time = parse_time(data["time"]) if "time" in data else now
    if time > now + timedelta(seconds=limits.max_future_seconds):
        raise _future(prefix, limits, now)
    data["time"] = format_time(time)
    foreign_id = data.get("foreign_id")
    try:
        new_id = activity_id(time, foreign_id, data)
    except ValueError as exc:
        raise InputError("time out of range", {prefix + "time": ["must be after 1970"]}) from exc
    if to:
        data["to"] = list(to)
    return Activity(
        id=new_id, time=data["time"], foreign_id=foreign_id, to=to, data=data, to_tokens=to_tokens
    )


def _future(prefix: str, limits: Limits, now: datetime) -> InputError:
    latest = format_time(now + timedelta(seconds=limits.max_future_seconds))
    return InputError(
        f"time is more than {limits.max_future_seconds:g} seconds in the future",
        {prefix + "time": [f"at most {limits.max_future_seconds:g} s ahead ({latest})"]},
    )


def parse_activities(raw: object, limits: Limits) -> list[Activity]:
    """The body of an add: one activity, or `{"activities": [...]}`."""
    if isinstance(raw, dict) and "activities" in raw and "actor" not in raw:
        items = raw["activities"]
        if not isinstance(items, list) or not items:
            raise InputError(
                "activities must be a non-empty list", {"activities": ["must be a non-empty list"]}
            )
        _check_batch(items, limits)
        return [parse_activity(item, limits, f"activities[{i}].") for i, item in enumerate(items)]
    return [parse_activity(raw, limits)]


def _check_batch(items: list[Any], limits: Limits) -> None:
    """A batch is bounded whole, before any of it is validated or stored."""
    if len(items) > limits.max_batch:
        raise InputError(
            f"a batch may add at most {limits.max_batch} activities, not {len(items)}",
            {"activities": [f"at most {limits.max_batch} activities"]},
        )
    size = len(json.dumps(items, separators=(",", ":"), default=str).encode())
    if size > limits.max_batch_bytes:
        raise PayloadTooLargeError(
            f"the batch is {size} bytes of JSON, more than the {limits.max_batch_bytes} allowed",
            {"activities": [f"larger than {limits.max_batch_bytes} bytes in all"]},
        )


def _parse_to(to: list[str], limits: Limits, field: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """The bare feed ids of `to` (in order, once each), and the token each carried."""
    if len(to) > limits.max_to:
        raise InputError(
            f"{field} may name at most {limits.max_to} feeds",
            {field: [f"at most {limits.max_to} feeds"]},
        )
    feeds: dict[str, None] = {}
    tokens: dict[str, str] = {}
    for item in to:
        feed = str(parse_feed_id(item, limits.groups, field))
        feeds[feed] = None
        token = item.split(" ", 1)[1].strip() if " " in item else ""
        if token:
            tokens.setdefault(feed, token)
    return tuple(feeds), tokens


# --- updates (POST activities/, POST activity/, activity_to_targets) ---------------------------

# What an update may not change (Stream: the id is a function of foreign_id + time, and `to`
# changes only through activity_to_targets); `origin` and `duration` are never stored.
UPDATE_RESERVED = frozenset({"id", "foreign_id", "time", "to", "origin", "duration"})


@dataclass(frozen=True)
class Change:
    """One partial update: the activity it names, and its set/unset operations (dotted
    paths reach into nested objects, as in Stream: `"product.price": 7`)."""

    id: str
    set: Mapping[str, Any]
    unset: tuple[str, ...]
    prefix: str


def _bounded_list(raw: object, name: str, most: int) -> list[Any]:
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{name} must be a non-empty list", {name: ["must be a non-empty list"]})
    if len(raw) > most:
        raise InputError(
            f"{name} may hold at most {most} items, not {len(raw)}", {name: [f"at most {most}"]}
        )
    return raw


def reference(raw: Mapping[str, Any], prefix: str) -> str:
    """The id an update names: `id`, or `foreign_id` + `time` (the id is a function of them)."""
    given = raw.get("id")
    if given is not None:
        if not isinstance(given, str) or not ID_RE.match(given):
            raise InputError("id must be an activity id", {prefix + "id": ["not an activity id"]})
        return given
    foreign_id, time = raw.get("foreign_id"), raw.get("time")
    if not isinstance(foreign_id, str) or not foreign_id or not isinstance(time, str):
        raise InputError(
            "an update names its activity by id, or by foreign_id and time",
            {prefix + "foreign_id": ["id, or foreign_id and time, required"]},
        )
    try:
        return activity_id(parse_time(time), foreign_id, {})
    except (ValueError, OverflowError) as exc:
        raise InputError("time is not a valid time", {prefix + "time": [str(exc)]}) from exc


def parse_full_updates(raw: object, limits: Limits, most: int) -> list[Activity]:
    """`{activities: [...]}` of a full update: each a whole activity with foreign_id and time
    (what names it), validated as an add's; the whole list before any is stored."""
    items = _bounded_list(
        raw.get("activities") if isinstance(raw, dict) else None, "activities", most
    )
    _check_batch(items, limits)
    parsed = []
    for index, item in enumerate(items):
        prefix = f"activities[{index}]."
        if not isinstance(item, dict) or not item.get("foreign_id") or not item.get("time"):
            raise InputError(
                "an updated activity needs its foreign_id and time",
                {prefix + "foreign_id": ["foreign_id and time are required"]},
            )
        # An activity as read back carries its id and origin: the id must be the one its
        # foreign_id and time name; origin and duration are the read's, not the activity's.
        given = item.get("id")
        item = {k: v for k, v in item.items() if k not in ("id", "origin", "duration")}
        activity = parse_activity(item, limits, prefix)
        if given is not None and given != activity.id:
            raise InputError(
                "id is not the id of this foreign_id and time",
                {prefix + "id": [f"foreign_id and time name {activity.id}"]},
            )
        parsed.append(activity)
    return parsed


def parse_changes(raw: object, most: int) -> list[Change]:
    """`{changes: [...]}` (or one change at the top level) of a partial update."""
    if isinstance(raw, dict) and "changes" not in raw:
        raw = {"changes": [raw]}
    items = _bounded_list(raw.get("changes") if isinstance(raw, dict) else None, "changes", most)
    changes = []
    for index, item in enumerate(items):
        prefix = f"changes[{index}]."
        if not isinstance(item, dict):
            raise InputError("a change must be an object", {prefix[:-1]: ["not an object"]})
        sets, unsets = item.get("set") or {}, item.get("unset") or []
        if not isinstance(sets, dict) or not isinstance(unsets, list):
            raise InputError(
                "set must be an object and unset a list", {prefix + "set": ["set {}, unset []"]}
            )
        for path in [*sets, *unsets]:
            _check_path(path, prefix)
        changes.append(Change(reference(item, prefix), sets, tuple(unsets), prefix))
    return changes


def _check_path(path: object, prefix: str) -> None:
    if not isinstance(path, str) or not path or "" in path.split("."):
        raise InputError(f"invalid field path {path!r}", {prefix + "set": ["invalid field path"]})
    head = path.split(".", 1)[0]
    if head in UPDATE_RESERVED:
        raise InputError(
            f"{head} cannot be changed by an update",
            {head: [f"{head} cannot be set or unset"]},
        )


def apply_change(data: Mapping[str, Any], change: Change, limits: Limits) -> dict[str, Any]:
    """The stored fields after `change`, validated as an activity's (actor, verb and object
    stay required; the size bound holds)."""
    new: dict[str, Any] = json.loads(json.dumps(data))
    for path, value in change.set.items():
        *parents, last = path.split(".")
        _walk(new, parents, change, create=True)[last] = value
    for path in change.unset:
        *parents, last = path.split(".")
        _walk(new, parents, change, create=False).pop(last, None)
    return validate_fields(new, limits, change.prefix)


def _walk(data: dict[str, Any], parents: list[str], change: Change, create: bool) -> dict[str, Any]:
    node = data
    for name in parents:
        child = node.get(name)
        if child is None and create:
            child = node[name] = {}
        if not isinstance(child, dict):
            if not create:
                return {}
            raise InputError(
                f"{name} is not an object", {change.prefix + "set": [f"{name} is not an object"]}
            )
        node = child
    return node


def validate_fields(data: dict[str, Any], limits: Limits, prefix: str) -> dict[str, Any]:
    """Check updated fields as an add would (the schema, the size); answer them."""
    size = len(json.dumps(data, separators=(",", ":")).encode())
    if size > limits.max_bytes:
        raise PayloadTooLargeError(
            f"activity is {size} bytes of JSON, more than the {limits.max_bytes} allowed",
            {prefix[:-1] or "activity": [f"larger than {limits.max_bytes} bytes"]},
        )
    try:
        _SCHEMA.load(data)
    except ValidationError as exc:
        raise input_error(exc, prefix) from exc
    for name in ("actor", "verb", "object", "target"):
        if name in data and not isinstance(data[name], str):
            data[name] = str(data[name])
    return data


def parse_targets(
    raw: object, limits: Limits, field: str
) -> tuple[tuple[str, ...], dict[str, str]]:
    """A list of target feeds (`to` entries, each may carry its feed token after a space)."""
    if raw is None:
        return (), {}
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise InputError(f"{field} must be a list of feed ids", {field: ["list of feed ids"]})
    return _parse_to(raw, limits, field)
