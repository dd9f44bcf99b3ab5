from __future__ import annotations

import pytest

from tidings.domain.activities import Limits, parse_activities, parse_activity
from tidings.domain.errors import (
    CustomFieldError,
    FeedConfigError,
    InputError,
    PayloadTooLargeError,
)

LIMITS = Limits(groups={"user", "timeline"}, max_bytes=10240, max_to=3)


def test_numbers_become_strings_and_custom_fields_stay() -> None:
    activity = parse_activity(
        {"actor": 1, "verb": "pin", "object": 2.5, "target": 3, "extra": {"n": [1, 2]}}, LIMITS
    )
    assert activity.data["actor"] == "1"
    assert activity.data["object"] == "2.5"
    assert activity.data["target"] == "3"
    assert activity.data["extra"] == {"n": [1, 2]}
    assert activity.public()["origin"] is None
    assert activity.public()["id"] == activity.id


def test_missing_required_fields_are_named() -> None:
    with pytest.raises(InputError) as caught:
        parse_activity({"verb": "post"}, LIMITS)
    assert set(caught.value.fields) == {"actor", "object"}
    assert caught.value.body()["code"] == 4


@pytest.mark.parametrize(
    "bad",
    [
        {"actor": "", "verb": "v", "object": "o"},
        {"actor": True, "verb": "v", "object": "o"},
        {"actor": "a", "verb": "v", "object": "o", "time": "yesterday"},
        {"actor": "a", "verb": "v", "object": "o", "time": "1960-01-01T00:00:00"},
        {"actor": "a", "verb": "v", "object": "o", "to": "user:1"},
        {"actor": "a", "verb": "v", "object": "o", "to": ["nogroup"]},
        {"actor": "a", "verb": "v", "object": "o", "to": ["user:a", "user:b", "user:c", "user:d"]},
        ["not", "an", "object"],
    ],
)
def test_bad_input_is_an_input_error(bad: object) -> None:
    with pytest.raises(InputError):
        parse_activity(bad, LIMITS)


def test_unknown_group_in_to_is_a_feed_config_error() -> None:
    with pytest.raises(FeedConfigError):
        parse_activity({"actor": "a", "verb": "v", "object": "o", "to": ["group:x"]}, LIMITS)


def test_to_keeps_the_feed_id_before_the_sdk_token() -> None:
    activity = parse_activity(
        {"actor": "a", "verb": "v", "object": "o", "to": ["user:44 eyJ.token", "user:44"]}, LIMITS
    )
    assert activity.to == ("user:44",)
    assert activity.data["to"] == ["user:44"]


def test_reserved_fields_and_oversized_activities() -> None:
    with pytest.raises(CustomFieldError):
        parse_activity({"actor": "a", "verb": "v", "object": "o", "origin": "x"}, LIMITS)
    with pytest.raises(PayloadTooLargeError) as caught:
        parse_activity({"actor": "a", "verb": "v", "object": "o", "blob": "x" * 11000}, LIMITS)
    assert caught.value.status == 413


def test_a_batch_gets_times_in_order_and_fails_whole() -> None:
    batch = parse_activities(
        {"activities": [{"actor": "a", "verb": "v", "object": str(i)} for i in range(5)]}, LIMITS
    )
    assert [a.time for a in batch] == sorted(a.time for a in batch)
    assert [a.id for a in batch] == sorted(a.id for a in batch)
    with pytest.raises(InputError) as caught:
        parse_activities({"activities": [{"actor": "a", "verb": "v", "object": "o"}, {}]}, LIMITS)
    assert "activities[1].actor" in caught.value.fields


def test_foreign_id_and_target_left_out_read_as_empty_strings() -> None:
    """Stream answers every activity with `foreign_id` and `target` (its JS suites expect
    both keys, `target: ''`, on activities added without them); what was sent wins."""
    bare = parse_activity({"actor": "a", "verb": "v", "object": "o"}, LIMITS).public()
    assert (bare["foreign_id"], bare["target"], bare["origin"]) == ("", "", None)
    full = parse_activity(
        {"actor": "a", "verb": "v", "object": "o", "foreign_id": "f:1", "target": "t:1"}, LIMITS
    ).public("user:1")
    assert (full["foreign_id"], full["target"], full["origin"]) == ("f:1", "t:1", "user:1")


def test_an_activity_read_back_with_empty_foreign_id_and_target_parses_as_without() -> None:
    """What a read answers (`foreign_id: ""`, `target: ""`) can be sent again (an update of
    the activity as read back): the empty values are no values, and are not stored."""
    sent = {"actor": "a", "verb": "v", "object": "o", "time": "2024-05-01T12:00:00"}
    again = parse_activity({**sent, "foreign_id": "", "target": ""}, LIMITS)
    assert "foreign_id" not in again.data and "target" not in again.data
    assert again.foreign_id is None and again.id == parse_activity(sent, LIMITS).id
