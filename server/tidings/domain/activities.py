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
from .ids import activity_id, clock, format_time, parse_time
from .validation import input_error

RESERVED_FIELDS = frozenset({"id", "origin", "duration"})


class _StreamString(fields.Field[str]):
    """A string; numbers are taken and kept as strings, as Stream does for actor, verb, …"""

    default_error_messages = {"invalid": "Not a valid string."}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise self.make_error("invalid")


class _TimeField(fields.Field[str]):
    default_error_messages = {"invalid": "Not a valid ISO-8601 time."}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return format_time(parse_time(value))
        except (ValueError, OverflowError) as exc:
            raise self.make_error("invalid") from exc


def _text(required: bool) -> _StreamString:
    return _StreamString(
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
    time = _TimeField(allow_none=True)
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


def public_activity(
    activity_id: str, data: Mapping[str, Any], origin: str | None
) -> dict[str, Any]:
    return {**data, "id": activity_id, "origin": origin}


@dataclass(frozen=True)
class Limits:
    groups: Collection[str]
    max_bytes: int
    max_to: int
    max_batch: int = 100
    max_batch_bytes: int = 524288
    # How far ahead of the server's clock a `time` may be: a far-future activity would stay on
    # top of its feeds and raise its feed's highest id for good (fanout/service.py _pulled).
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
    try:
        loaded: dict[str, Any] = _SCHEMA.load(raw)
    except ValidationError as exc:
        raise input_error(exc, prefix) from exc
    data = {key: value for key, value in loaded.items() if value is not None}
    to, to_tokens = _parse_to(data.pop("to", None) or [], limits, prefix)
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


def _parse_to(to: list[str], limits: Limits, prefix: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """The bare feed ids of `to` (in order, once each), and the token each carried."""
    if len(to) > limits.max_to:
        raise InputError(
            f"to may name at most {limits.max_to} feeds",
            {prefix + "to": [f"at most {limits.max_to} feeds"]},
        )
    feeds: dict[str, None] = {}
    tokens: dict[str, str] = {}
    for item in to:
        feed = str(parse_feed_id(item, limits.groups, prefix + "to"))
        feeds[feed] = None
        token = item.split(" ", 1)[1].strip() if " " in item else ""
        if token:
            tokens.setdefault(feed, token)
    return tuple(feeds), tokens
