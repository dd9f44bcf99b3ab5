"""Aggregation formats of aggregated and notification feeds (Stream's template syntax).

A format such as `{{ verb }}_{{ time.strftime('%Y-%m-%d') }}` is rendered for each activity that
reaches a feed of such a group; activities with the same result share a group. The format is
the operator's (config), the activity is the client's: it is rendered by jinja2's
`SandboxedEnvironment` (no attribute of Python internals, bounded `range`), never `eval`, and
the result is bounded. A format that does not compile stops the start with its key's name.
"""

from __future__ import annotations

from collections.abc import Mapping
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
