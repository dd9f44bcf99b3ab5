"""Reactions' pure parts: validation of an add, the target feeds' activity, ids, who acts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.auth import (
    SERVER_GRANT,
    Grant,
    authorize_reaction_targets,
    reaction_user,
    require_reaction_owner,
)
from tidings.domain.errors import InputError, NotAllowedError, PayloadTooLargeError
from tidings.domain.reactions import (
    Bounds,
    Reaction,
    SentCounts,
    Summary,
    new_reaction_id,
    parse_add,
    target_activity,
)
from tidings.store.mongo.reactions import Query

BOUNDS = Bounds(max_bytes=1000, groups=frozenset({"user", "timeline"}))
PARENT = "0193a5f0-2b1c-7c3e-9a41-5d2f8e6b7c10"


def grant(**claims: str) -> Grant:
    return Grant(claims.get("resource"), claims.get("action"), claims.get("feed_id"),
                 claims.get("user_id"), None)  # fmt: skip


def test_a_child_names_its_parent_and_no_activity() -> None:
    new = parse_add({"kind": "like", "parent": PARENT.upper(), "user_id": "bob"}, BOUNDS)
    assert (new.parent, new.activity_id, new.data, new.target_feeds) == (PARENT, "", {}, ())
    assert new.created_at.microsecond % 1000 == 0  # what the store keeps of a time


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"kind": "like", "activity_id": "a", "data": {"x": "y" * 2000}}, PayloadTooLargeError),
        ({"kind": "like", "activity_id": "a", "target_feeds": ["user"]}, InputError),
        ({"kind": "$x", "activity_id": "a"}, InputError),
        (
            {"kind": "like", "activity_id": "a", "target_feeds_extra_data": {"actor": "x"}},
            InputError,
        ),
        ([], InputError),
    ],
)
def test_bad_adds_are_refused(body: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_add(body, BOUNDS)


def test_the_target_activity_is_streams() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    reaction = Reaction(
        id=PARENT, kind="comment", activity_id="act", user_id="bob", data={}, created_at=at,
        updated_at=at, target_feeds=("user:bob",), target_feeds_extra_data={"custom": "yay"},
    )  # fmt: skip
    assert target_activity(reaction) == {
        "custom": "yay", "actor": "SU:bob", "verb": "comment", "object": "SA:act",
        "foreign_id": f"reaction:{PARENT}", "time": "2026-01-02T03:04:05.006000",
        "reaction": f"SR:{PARENT}",
    }  # fmt: skip
    assert reaction.public()["created_at"] == "2026-01-02T03:04:05.006000Z"


def test_ids_sort_by_time_and_pages_bounded_below_run_forward() -> None:
    ids = [new_reaction_id() for _ in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert Query("user_id", "u", None, {"id_gt": ids[0]}, 5).ascending
    assert not Query("user_id", "u", None, {"id_gt": ids[0], "id_lt": ids[9]}, 5).ascending


def test_who_acts_and_who_may_change() -> None:
    server, bob = grant(resource="reactions", action="*", feed_id="*"), grant(user_id="bob")
    assert reaction_user(server, "carl") == "carl"
    assert reaction_user(bob, None) == reaction_user(bob, "bob") == "bob"
    with pytest.raises(InputError):
        reaction_user(bob, "carl")
    with pytest.raises(InputError):
        reaction_user(server, None)
    with pytest.raises(NotAllowedError):
        reaction_user(grant(resource="feed", action="read", feed_id="user:bob"), None)
    require_reaction_owner(bob, "bob")
    require_reaction_owner(server, "carl", "delete")
    with pytest.raises(NotAllowedError):
        require_reaction_owner(bob, "carl")
    assert authorize_reaction_targets(server, ["timeline:x"]) is SERVER_GRANT
    assert authorize_reaction_targets(bob, ["user:bob"]) is bob
    with pytest.raises(NotAllowedError):
        authorize_reaction_targets(bob, ["user:bob", "timeline:bob"])


def test_the_counts_sent_for_an_activity_never_go_back_to_an_older_version() -> None:
    sent = SentCounts(limit=2)
    assert sent.newest("a", Summary(2, {"like": 2})) == {"like": 2}
    # a read older than what was sent (racing writes' reads came back out of order)
    assert sent.newest("a", Summary(1, {"like": 1})) == {"like": 2}
    assert sent.newest("a", Summary(3, {"like": 1})) == {"like": 1}  # newer: an unlike
    assert sent.newest("b", Summary(1, {"like": 1})) == {"like": 1}  # another activity
    sent.newest("c", Summary(1, {}))  # past the limit: the least recently sent is forgotten
    assert sent.newest("a", Summary(1, {"like": 1})) == {"like": 1}
    assert sent.newest("c", Summary(0, {})) == {}
