"""Pure checks of an add: `to` authorisation, batch and time bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tidings.auth import authorize_targets, decode_token, server_token, user_token
from tidings.domain.activities import Limits, parse_activities, parse_activity
from tidings.domain.errors import InputError, NotAllowedError, PayloadTooLargeError

SECRET = "unit-test-secret-0123456789-abcdef"
GROUPS = ("user", "timeline", "raid", "notification", "timeline_aggregated")
LIMITS = Limits(
    groups={"user", "raid"}, max_bytes=10240, max_to=5, max_batch=3, max_batch_bytes=2000,
    max_future_seconds=600,
)  # fmt: skip


def act(**extra: object) -> dict[str, object]:
    return {"actor": "a", "verb": "v", "object": "o", **extra}


def sign(claims: dict[str, object]) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_to_keeps_each_entrys_token_by_feed() -> None:
    parsed = parse_activity(act(to=["raid:1 tok-a", "raid:1", "user:2", "raid:3  tok-c "]), LIMITS)
    assert parsed.to == ("raid:1", "user:2", "raid:3")
    assert dict(parsed.to_tokens) == {"raid:1": "tok-a", "raid:3": "tok-c"}


def test_a_user_token_may_name_only_feeds_it_may_write() -> None:
    bob = decode_token(user_token("bob", SECRET), SECRET, GROUPS)
    authorize_targets(bob, [parse_activity(act(to=["user:bob"]), LIMITS)], SECRET, GROUPS)
    with pytest.raises(NotAllowedError) as caught:
        authorize_targets(bob, [parse_activity(act(to=["raid:1"]), LIMITS)], SECRET, GROUPS)
    assert "to" in caught.value.fields
    batch = parse_activities({"activities": [act(), act(to=["raid:1"])]}, LIMITS)
    with pytest.raises(NotAllowedError) as caught:
        authorize_targets(bob, batch, SECRET, GROUPS, batch=True)
    assert "activities[1].to" in caught.value.fields


def test_an_entry_token_authorises_its_feed_only_for_writing() -> None:
    bob = decode_token(user_token("bob", SECRET), SECRET, GROUPS)
    write = sign({"resource": "feed", "action": "write", "feed_id": "raid1"})
    read = sign({"resource": "feed", "action": "read", "feed_id": "raid1"})
    other = sign({"resource": "feed", "action": "*", "feed_id": "raid2"})
    expired = sign({"resource": "*", "action": "*", "feed_id": "*", "exp": 1})
    wrong_secret = jwt.encode({"resource": "*", "action": "*", "feed_id": "*"}, "x" * 32)
    authorize_targets(bob, [parse_activity(act(to=[f"raid:1 {write}"]), LIMITS)], SECRET, GROUPS)
    for bad in (read, other, expired, wrong_secret, "garbage"):
        activity = parse_activity(act(to=[f"raid:1 {bad}"]), LIMITS)
        with pytest.raises(NotAllowedError):
            authorize_targets(bob, [activity], SECRET, GROUPS)


def test_a_server_token_may_name_any_feed() -> None:
    server = decode_token(server_token(SECRET), SECRET, GROUPS)
    activity = parse_activity(act(to=["raid:1", "user:x"]), LIMITS)
    authorize_targets(server, [activity], SECRET, GROUPS)


def test_a_batch_is_bounded_in_count_and_bytes_before_anything_else() -> None:
    with pytest.raises(InputError) as caught:
        parse_activities({"activities": [act() for _ in range(4)]}, LIMITS)
    assert "activities" in caught.value.fields
    with pytest.raises(PayloadTooLargeError) as too_big:
        parse_activities({"activities": [act(pad="x" * 900) for _ in range(3)]}, LIMITS)
    assert too_big.value.status == 413
    assert len(parse_activities({"activities": [act() for _ in range(3)]}, LIMITS)) == 3


def test_time_at_most_max_future_seconds_ahead() -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    parse_activity(act(time=(now + timedelta(seconds=500)).isoformat()), LIMITS)
    with pytest.raises(InputError) as caught:
        parse_activity(act(time=(now + timedelta(seconds=700)).isoformat()), LIMITS)
    assert "time" in caught.value.fields
    with pytest.raises(InputError) as caught:
        parse_activities({"activities": [act(), act(time="2100-01-01T00:00:00")]}, LIMITS)
    assert "activities[1].time" in caught.value.fields
