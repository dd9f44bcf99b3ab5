"""What a group document records besides its derived fields: the origins of its newest
activities, and when a join token counts as abandoned (store/merged_groups.py,
store/group_recompute.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bson import ObjectId

from tidings.domain.aggregation import MAX_GROUP_ACTIVITIES
from tidings.store.mongo.group_recompute import ABANDONED_AFTER, abandoned, late
from tidings.store.mongo.merged_groups import group_origins, origin_members


def _id(n: int) -> str:
    return f"01a22c53-{n:04d}-7000-8000-000000000000"


def test_origins_keep_the_newest_and_read_back_by_id() -> None:
    came = {_id(n): f"user:u{n}" for n in range(40)}
    stored = origin_members(came)
    assert len(stored) == MAX_GROUP_ACTIVITIES
    assert stored == sorted(stored, reverse=True)  # newest first, as activity_ids
    assert group_origins({"origins": stored}) == {_id(n): f"user:u{n}" for n in range(25, 40)}


def test_a_group_stored_before_origins_has_none_known() -> None:
    assert group_origins({"activity_ids": [_id(1)]}) is None
    assert group_origins({"origins": None}) is None
    assert group_origins({"origins": []}) == {}


def test_a_token_is_late_at_half_the_abandon_age_and_abandoned_after_it() -> None:
    now = datetime.now(UTC)
    fresh = ObjectId.from_datetime(now)
    halfway = ObjectId.from_datetime(now - ABANDONED_AFTER / 2 - timedelta(seconds=2))
    old = ObjectId.from_datetime(now - ABANDONED_AFTER - timedelta(seconds=2))
    assert (late(fresh), abandoned(fresh)) == (False, False)
    assert (late(halfway), abandoned(halfway)) == (True, False)
    assert (late(old), abandoned(old)) == (True, True)
