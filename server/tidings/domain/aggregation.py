"""Aggregation formats of aggregated and notification feeds (Stream's template syntax).

A format such as `{{ verb }}_{{ time.strftime('%Y-%m-%d') }}` is rendered for each activity that
reaches a feed of such a group; activities with the same result share a group. The format is
the operator's (config), the activity is the client's: it is rendered by jinja2's
`SandboxedEnvironment` (no attribute of Python internals, bounded `range`), never `eval`, and
the result is bounded. A format that does not compile stops the start with its key's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment

from .errors import FeedConfigError
from .ids import parse_time

DEFAULT_FORMAT = "{{ verb }}_{{ time.strftime('%Y-%m-%d') }}"
MAX_GROUP_CHARS = 255

_ENVIRONMENT = SandboxedEnvironment(undefined=Undefined, autoescape=False)


class AggregationFormatError(ValueError):
    """The format is not a template (the message says where)."""


class AggregationFormat:
    """One compiled format: `group_of(activity)` is the group key of that activity."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._template = _ENVIRONMENT.from_string(source)
        except TemplateError as exc:
            raise AggregationFormatError(str(exc)) from None

    def group_of(self, activity: Mapping[str, Any]) -> str:
        """The group key: the rendered format, its surrounding white space (the line breaks of
        `{% if %}` blocks) stripped, at most MAX_GROUP_CHARS long. An activity the format
        cannot be rendered for is a FeedConfigError: it is refused before anything is
        stored."""
        try:
            rendered = self._template.render(_variables(activity))
        except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
            raise FeedConfigError(
                f"the aggregation format cannot be rendered for this activity: {exc}"[:512],
                {"activity": ["does not fit the feed group's aggregation_format"]},
            ) from None
        return rendered.strip()[:MAX_GROUP_CHARS]

    def __repr__(self) -> str:
        return f"AggregationFormat({self.source!r})"


def _variables(activity: Mapping[str, Any]) -> dict[str, Any]:
    """What a format sees: every field of the activity as stored (custom fields included), and
    `time` as a datetime so that `time.strftime(...)` works as in Stream."""
    variables = dict(activity)
    raw_time = activity.get("time")
    if isinstance(raw_time, str):
        variables["time"] = parse_time(raw_time)
    elif not isinstance(raw_time, datetime):
        variables["time"] = None
    return variables


MAX_GROUP_ACTIVITIES = 15  # activity ids a group keeps (newest first), as Stream
MAX_GROUP_ACTORS = 100  # distinct actors a group remembers; actor_count stops counting there


@dataclass(frozen=True)
class Joining:
    """What one batch of new activities brings to one group of one feed: applied to the
    stored group in one conditional update (store/mongo/groups.py)."""

    key: str
    activity_ids: tuple[str, ...]  # newest first, at most MAX_GROUP_ACTIVITIES
    count: int
    actors: tuple[str, ...]  # distinct, sorted, the first MAX_GROUP_ACTORS (whatever the order)
    verb: str  # of the newest activity
    oldest: str  # the oldest id of all (activity_ids keeps the newest only)

    @property
    def newest(self) -> str:
        return self.activity_ids[0]


@dataclass(frozen=True)
class Group:
    """A group as stored (without its seen/read state): what `apply` computes."""

    key: str
    activity_ids: tuple[str, ...]
    activity_count: int
    actors: tuple[str, ...]
    verb: str
    newest: str  # the group's id: its newest activity id, so ids sort by `updated_at`
    oldest: str


def joinings(
    activities: Iterable[tuple[str, Mapping[str, Any]]], fmt: AggregationFormat
) -> dict[str, Joining]:
    """Group `(activity id, activity)` pairs by their group key; ids repeated in the input
    count once."""
    by_key: dict[str, dict[str, tuple[str, str]]] = {}
    for activity_id, activity in activities:
        member = (_actor(activity), str(activity.get("verb", "")))
        by_key.setdefault(fmt.group_of(activity), {})[activity_id] = member
    return {key: joining_of(key, members) for key, members in by_key.items()}


def joining_of(key: str, members: Mapping[str, tuple[str, str]]) -> Joining:
    """The joining of one group's members: activity id -> (actor, verb); not empty."""
    ids = sorted(members, reverse=True)
    actors = sorted({actor for actor, _ in members.values()})
    return Joining(
        key, tuple(ids[:MAX_GROUP_ACTIVITIES]), len(ids), tuple(actors[:MAX_GROUP_ACTORS]),
        members[ids[0]][1], ids[-1],
    )  # fmt: skip


def regroup(key: str, members: Mapping[str, tuple[str, str]]) -> Group | None:
    """A group computed from all its members (activity id -> (actor, verb)), as a removal
    recomputes it from the feed's entries: every derived field (id, verb, counts, times) is
    that of the members left. None when none is left."""
    return apply(None, joining_of(key, members)) if members else None


def apply(group: Group | None, joining: Joining) -> Group:
    """The group once `joining` joined it: what the store's update does, as a pure function."""
    if group is None:
        return Group(
            joining.key, joining.activity_ids, joining.count, joining.actors, joining.verb,
            joining.newest, joining.oldest,
        )  # fmt: skip
    ids = sorted({*group.activity_ids, *joining.activity_ids}, reverse=True)
    actors = sorted({*group.actors, *joining.actors})
    newer = joining.newest > group.newest
    return Group(
        group.key, tuple(ids[:MAX_GROUP_ACTIVITIES]), group.activity_count + joining.count,
        tuple(actors[:MAX_GROUP_ACTORS]), joining.verb if newer else group.verb,
        max(group.newest, joining.newest), min(group.oldest, joining.oldest),
    )  # fmt: skip


def _actor(activity: Mapping[str, Any]) -> str:
    actor = activity.get("actor", "")
    return actor if isinstance(actor, str) else str(actor)
