from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tidings.domain.ids import activity_id, clock, format_time, is_activity_id, parse_time

times = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(times, times)
def test_ids_sort_by_time_to_the_microsecond(a: datetime, b: datetime) -> None:
    id_a, id_b = activity_id(a, "x", {}), activity_id(b, "y", {})
    if a < b:
        assert id_a < id_b
    elif a > b:
        assert id_a > id_b


@given(times, st.text(min_size=1, max_size=40))
def test_same_time_and_foreign_id_is_the_same_id(time: datetime, foreign_id: str) -> None:
    first = activity_id(time, foreign_id, {"verb": "a"})
    assert first == activity_id(time, foreign_id, {"verb": "other content"})
    assert is_activity_id(first)
    assert first != activity_id(time + timedelta(microseconds=1), foreign_id, {})


def test_without_foreign_id_the_content_decides() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert activity_id(now, None, {"a": 1, "b": 2}) == activity_id(now, None, {"b": 2, "a": 1})
    assert activity_id(now, None, {"a": 1}) != activity_id(now, None, {"a": 2})


def test_times_without_offset_are_utc_and_come_back_without_one() -> None:
    assert format_time(parse_time("2026-03-01T10:00:00")) == "2026-03-01T10:00:00.000000"
    assert format_time(parse_time("2026-03-01T12:00:00+02:00")) == "2026-03-01T10:00:00.000000"
    assert format_time(parse_time("2026-03-01T10:00:00.5Z")) == "2026-03-01T10:00:00.500000"


def test_the_clock_never_repeats_a_microsecond() -> None:
    stamps = [clock.now() for _ in range(2000)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)
