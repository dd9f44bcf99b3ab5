"""The lines of an import file: each kind in Stream's shape, refused as the API refuses."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tidings.domain.activities import Limits
from tidings.domain.errors import FeedConfigError, InputError, TidingsError
from tidings.domain.objects import Entry, User
from tidings.domain.reactions import Bounds
from tidings.transfer.records import (
    ActivityLine,
    FollowLine,
    ReactionLine,
    Rules,
    parse_line,
)

GROUPS = ("user", "timeline", "notification")
RULES = Rules(
    Limits(GROUPS, 2048, 100), Bounds(2048, frozenset(GROUPS)), 1024, ("user", "timeline"),
    100, 1000,
)  # fmt: skip
ACTIVITY = {"actor": "SU:a", "verb": "post", "object": "o", "foreign_id": "p:1",
            "time": "2024-01-02T10:00:00.000001"}  # fmt: skip


def line(record: dict[str, Any]) -> Any:
    return parse_line(json.dumps(record), RULES)


def refused(record: Any) -> TidingsError:
    text = record if isinstance(record, str) else json.dumps(record)
    with pytest.raises(TidingsError) as caught:
        parse_line(text, RULES)
    return caught.value


def test_an_activity_read_from_stream_keeps_its_fields_and_remembers_its_id() -> None:
    stream_id = str(uuid.uuid1())
    body = {**ACTIVITY, "id": stream_id, "origin": None, "target": "", "duration": "1ms",
            "reaction_counts": {"like": 1}, "color": "red"}  # fmt: skip
    kind, parsed = line({"type": "activity", "feed": "user:a", "activity": body})
    assert kind == "activity" and isinstance(parsed, ActivityLine)
    assert parsed.feed == "user:a" and parsed.origin is None
    assert parsed.source_id == stream_id != parsed.activity.id
    assert parsed.activity.data["color"] == "red"
    assert "reaction_counts" not in parsed.activity.data and "id" not in parsed.activity.data


def test_an_activity_with_its_own_id_or_its_feed_as_origin() -> None:
    _, first = line({"type": "activity", "feed": "user:a", "activity": ACTIVITY})
    assert isinstance(first, ActivityLine)
    again = {**ACTIVITY, "id": first.activity.id, "origin": "user:a"}
    _, second = line({"type": "activity", "feed": "user:a", "activity": again})
    assert isinstance(second, ActivityLine)
    assert second.source_id is None and second.origin is None
    assert second.activity.id == first.activity.id  # the same time and foreign id


def test_a_copy_names_the_feed_it_came_from() -> None:
    body = {**ACTIVITY, "origin": "user:a"}
    _, parsed = line({"type": "activity", "feed": "timeline:b", "activity": body})
    assert isinstance(parsed, ActivityLine) and parsed.origin == "user:a"


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"type": "activity", "activity": ACTIVITY}, "feed"),
        ({"type": "activity", "feed": "planet:x", "activity": ACTIVITY}, "feed"),
        ({"type": "activity", "feed": "user:a", "activity": {**ACTIVITY, "verb": None}},
         "activity.verb"),
        ({"type": "activity", "feed": "user:a", "activity": {**ACTIVITY, "time": None}},
         "activity.time"),
        ({"type": "activity", "feed": "user:a", "activity": {**ACTIVITY, "id": "x"}},
         "activity.id"),
        ({"type": "user", "user": {"id": "a b"}}, "user.id"),
        ({"type": "user", "user": {"id": "a", "data": {"x": "y" * 2000}}}, "user.data"),
        ({"type": "collection", "collection": {"collection": "food"}}, "collection.id"),
        ({"type": "follow", "follow": {"feed_id": "user:a", "target_id": "user:a"}},
         "follow.target_id"),
        ({"type": "follow", "follow": {"feed_id": "user:a", "target_id": "user:b",
                                       "activity_copy_limit": 5000}},
         "follow.activity_copy_limit"),
        ({"type": "reaction", "reaction": {"kind": "like", "activity_id": "x",
                                           "user_id": "u"}}, "reaction.id"),
        ({"type": "reaction", "reaction": {"id": str(uuid.uuid4()), "kind": "like",
                                           "user_id": "u"}}, "reaction.activity_id"),
        ({"type": "comet", "comet": {}}, "type"),
        ({"type": "user", "user": "alice"}, "user"),
    ],
)  # fmt: skip
def test_refused_lines_name_the_field(record: dict[str, Any], field: str) -> None:
    error = refused(record)
    assert field in error.fields, error.body()
    assert error.body()["exception"] in ("InputException", "FeedConfigException")


def test_not_json_and_not_an_object_are_refused() -> None:
    assert isinstance(refused("{nope"), InputError)
    assert isinstance(refused("[1, 2]"), InputError)


def test_a_follow_of_a_group_that_cannot_be_followed_is_refused() -> None:
    error = refused({"type": "follow", "follow": {"feed_id": "user:a",
                                                  "target_id": "notification:b"}})  # fmt: skip
    assert isinstance(error, FeedConfigError)


def test_follows_users_entries_and_reactions_in_streams_shape() -> None:
    _, follow = line({"type": "follow", "follow": {"feed_id": "timeline:b",
                                                   "target_id": "user:a"}})  # fmt: skip
    assert follow == FollowLine("timeline:b", "user:a", 100)
    _, user = line(
        {
            "type": "user",
            "user": {"id": "a", "data": {"n": 1}, "created_at": "2024-01-02T10:00:00.123456Z"},
        }
    )
    assert isinstance(user, User) and user.created_at.microsecond == 123000
    assert user.updated_at == user.created_at
    _, entry = line({"type": "collection", "collection": {
        "collection": "food", "id": "soup", "data": {"n": 1}, "foreign_id": "food:soup",
        "user_id": "a"}})  # fmt: skip
    assert isinstance(entry, Entry) and entry.user_id == "a" and entry.data == {"n": 1}
    parent = str(uuid.uuid4())
    _, reaction = line({"type": "reaction", "reaction": {
        "id": str(uuid.uuid4()), "kind": "reply", "parent": parent, "activity_id": "x",
        "user_id": "u", "data": {"t": 1}, "deleted_at": "2024-01-03T00:00:00Z",
        "latest_children": {}, "children_counts": {"like": 3}}})  # fmt: skip
    assert isinstance(reaction, ReactionLine)
    assert reaction.parent == parent and reaction.deleted_at is not None
