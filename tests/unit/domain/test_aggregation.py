"""Aggregation formats (server/tidings/domain/aggregation.py): Stream's template syntax, rendered
in jinja2's sandbox."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.domain.aggregation import (
    DEFAULT_FORMAT,
    MAX_GROUP_ACTIVITIES,
    MAX_GROUP_CHARS,
    AggregationFormat,
    AggregationFormatError,
    Group,
    apply,
    joinings,
    regroup,
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


# Grouping (joinings / apply): what store/groups.py writes, as pure functions.

DAY = "2026-11-30T"


def _activity(n: int, verb: str = "like", actor: str = "alice") -> tuple[str, dict[str, str]]:
    # ids sort as times do (domain/ids.py); a zero-padded counter stands in for one here
    return f"{n:08d}", {"actor": actor, "verb": verb, "time": f"{DAY}12:00:{n % 60:02d}"}


def test_a_batch_groups_by_key_newest_first_with_distinct_actors() -> None:
    fmt = AggregationFormat(DEFAULT_FORMAT)
    found = joinings(
        [_activity(1), _activity(2, actor="bob"), _activity(3, "follow"), _activity(4)], fmt
    )
    assert set(found) == {"like_2026-11-30", "follow_2026-11-30"}
    like = found["like_2026-11-30"]
    assert like.activity_ids == ("00000004", "00000002", "00000001")
    assert like.count == 3
    assert like.actors == ("alice", "bob")
    assert found["follow_2026-11-30"].count == 1


def test_a_group_keeps_its_newest_15_and_counts_them_all() -> None:
    fmt = AggregationFormat("{{ verb }}")
    group = None
    for n in range(1, 21):
        group = apply(group, joinings([_activity(n)], fmt)["like"])
    assert group is not None
    assert group.activity_count == 20
    assert len(group.activity_ids) == MAX_GROUP_ACTIVITIES
    assert group.activity_ids[0] == group.newest == "00000020"
    assert group.oldest == "00000001"


def test_a_back_dated_activity_does_not_change_the_groups_id_or_verb() -> None:
    fmt = AggregationFormat("{{ actor }}")
    group = apply(None, joinings([_activity(5, "like")], fmt)["alice"])
    group = apply(group, joinings([_activity(2, "share")], fmt)["alice"])
    assert (group.newest, group.verb, group.oldest) == ("00000005", "like", "00000002")


@given(
    st.lists(
        st.tuples(
            st.integers(0, 40), st.sampled_from(["like", "follow"]), st.sampled_from("abcdefg")
        ),
        max_size=60,
        unique_by=lambda t: t[0],
    ),
    st.data(),
)
def test_grouping_a_stream_at_once_equals_grouping_it_piece_by_piece(
    stream: list[tuple[int, str, str]], data: st.DataObject
) -> None:
    """A fanout batch, a follow's copy and single adds may bring the same activities in any
    cut and order: the groups come out the same."""
    fmt = AggregationFormat("{{ verb }}")
    activities = [_activity(n, verb, actor) for n, verb, actor in stream]
    at_once = {key: apply(None, j) for key, j in joinings(activities, fmt).items()}
    pieces = data.draw(st.permutations(activities))
    cuts = sorted(data.draw(st.sets(st.integers(0, len(pieces)), max_size=5)))
    one_by_one: dict[str, Group] = {}
    for start, end in zip([0, *cuts], [*cuts, len(pieces)], strict=True):
        for key, joining in joinings(pieces[start:end], fmt).items():
            one_by_one[key] = apply(one_by_one.get(key), joining)
    assert one_by_one == at_once


@given(
    st.lists(
        st.tuples(
            st.integers(0, 40), st.sampled_from(["like", "follow"]), st.sampled_from("abcdefg")
        ),
        min_size=1,
        max_size=60,
        unique_by=lambda t: t[0],
    ),
    st.data(),
)
def test_a_group_recomputed_after_removals_equals_grouping_what_is_left(
    stream: list[tuple[int, str, str]], data: st.DataObject
) -> None:
    """Removals (store/groups.recompute: regroup of the entries left) after joins one by one
    give the groups that grouping only the activities left gives: ids, count, actors, the
    newest activity's verb, the times; a group left empty is gone."""
    fmt = AggregationFormat("{{ actor }}")  # verbs differ within a group
    activities = [_activity(n, verb, actor) for n, verb, actor in stream]
    groups: dict[str, Group] = {}
    for activity in data.draw(st.permutations(activities)):
        for key, joining in joinings([activity], fmt).items():
            groups[key] = apply(groups.get(key), joining)
    removed = data.draw(st.sets(st.sampled_from([i for i, _ in activities])))
    left = [(i, a) for i, a in activities if i not in removed]
    members: dict[str, dict[str, tuple[str, str]]] = {key: {} for key in groups}
    for activity_id, activity in left:
        members[fmt.group_of(activity)][activity_id] = (activity["actor"], activity["verb"])
    recomputed = {key: regroup(key, m) for key, m in members.items()}
    expected = {key: apply(None, j) for key, j in joinings(left, fmt).items()}
    assert {k: g for k, g in recomputed.items() if g is not None} == expected
    for group in expected.values():
        newest = dict(left)[group.newest]
        assert (group.verb, group.key) == (newest["verb"], newest["actor"])
