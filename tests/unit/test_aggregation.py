"""Aggregation formats (server/tidings/domain/aggregation.py): Stream's template syntax, rendered
in jinja2's sandbox."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.domain.aggregation import (
    DEFAULT_FORMAT,
    MAX_GROUP_CHARS,
    AggregationFormat,
    AggregationFormatError,
)
from tidings.domain.errors import FeedConfigError

LIKE = {"actor": "alice", "verb": "like", "object": "photo:1", "time": "2026-11-30T23:59:59.5"}


def test_default_format_groups_by_verb_and_day() -> None:
    fmt = AggregationFormat(DEFAULT_FORMAT)
    assert fmt.group_of(LIKE) == "like_2026-11-30"
    assert fmt.group_of({**LIKE, "actor": "bob"}) == "like_2026-11-30"
    assert fmt.group_of({**LIKE, "time": "2026-12-01T00:00:00"}) == "like_2026-12-01"


def test_a_time_with_an_offset_is_grouped_by_its_utc_day() -> None:
    fmt = AggregationFormat(DEFAULT_FORMAT)
    assert fmt.group_of({**LIKE, "time": "2026-12-01T01:00:00+02:00"}) == "like_2026-11-30"


def test_conditional_formats_and_custom_fields_as_in_streams_docs() -> None:
    fmt = AggregationFormat(
        "{% if verb == 'follow' %}\n{{ actor }}_{{ verb }}_{{ time.strftime(\"%Y-%m-%d\") }}\n"
        '{% else %}\n{{ verb }}_{{ time.strftime("%Y-%m-%d") }}\n{% endif %}'
    )
    assert fmt.group_of({**LIKE, "verb": "follow"}) == "alice_follow_2026-11-30"
    assert fmt.group_of(LIKE) == "like_2026-11-30"
    assert (
        AggregationFormat("{{ match_id }}-{{ target }}").group_of(
            {**LIKE, "match_id": 42, "target": "team:1"}
        )
        == "42-team:1"
    )


def test_a_missing_field_renders_empty() -> None:
    assert AggregationFormat("{{ verb }}-{{ target }}").group_of(LIKE) == "like-"


def test_a_bad_format_is_refused_when_compiled() -> None:
    with pytest.raises(AggregationFormatError):
        AggregationFormat("{{ verb ")
    with pytest.raises(AggregationFormatError):
        AggregationFormat("{% if verb %}no end")


@pytest.mark.parametrize(
    "source",
    [
        "{{ verb.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__mro__ }}{{ time.__class__.__init__.__globals__ }}",
        "{{ range(10 ** 9) | list | length }}",
    ],
)
def test_the_sandbox_refuses_what_a_format_has_no_business_doing(source: str) -> None:
    with pytest.raises(FeedConfigError):
        AggregationFormat(source).group_of(LIKE)


def test_an_activity_the_format_cannot_render_is_a_feed_config_error() -> None:
    fmt = AggregationFormat("{{ verb }}_{{ time.strftime('%Y') }}_{{ 1 // count }}")
    with pytest.raises(FeedConfigError) as refused:
        fmt.group_of({**LIKE, "count": 0})
    assert refused.value.code == 6


def test_group_keys_are_bounded() -> None:
    fmt = AggregationFormat("{{ object }}")
    assert len(fmt.group_of({**LIKE, "object": "x" * 5000})) == MAX_GROUP_CHARS


@given(
    verb=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40),
    day=st.dates(min_value=date(1000, 1, 1)),  # strftime('%Y') does not pad: 999, as Stream's
)
def test_default_format_is_a_function_of_verb_and_day(verb: str, day: date) -> None:
    fmt = AggregationFormat(DEFAULT_FORMAT)
    activity = {"actor": "a", "verb": verb, "object": "o", "time": f"{day}T12:00:00"}
    assert fmt.group_of(activity) == f"{verb}_{day}".strip()[:MAX_GROUP_CHARS]
