"""Which one feed a scoped token names (its compact `feed_id` resolved against the configured
groups), what a user token may do with its own feeds, and who may follow a private feed."""

from __future__ import annotations

import jwt
import pytest

from tidings.auth import Grant, authorize_follow_target, decode_token, feed_token
from tidings.domain.errors import NotAllowedError
from tidings.domain.feeds import FeedId, scope_feed

SECRET = "unit-test-secret-0123456789-abcdef"
GROUPS = ("user", "user_private", "timeline", "timeline_aggregated", "raid")


def grant(claims: dict[str, object], groups: tuple[str, ...] = GROUPS) -> Grant:
    return decode_token(jwt.encode(claims, SECRET, algorithm="HS256"), SECRET, groups)


@pytest.mark.parametrize(
    ("feed_id", "named"),
    [
        ("user_privatebob", FeedId("user_private", "bob")),
        ("user_private:bob", FeedId("user_private", "bob")),
        ("user:_privatebob", FeedId("user", "_privatebob")),
        ("userbob", FeedId("user", "bob")),
        ("user_private", FeedId("user", "_private")),  # the longer group leaves no user id
        ("timeline_aggregatedalice", FeedId("timeline_aggregated", "alice")),
        ("timeline:_aggregatedalice", FeedId("timeline", "_aggregatedalice")),
        ("nogroupbob", None),
        ("nogroup:bob", None),
        ("user:", None),
        ("user", None),
    ],
)
def test_a_scope_names_one_feed_the_longest_group_first(feed_id: str, named: FeedId | None) -> None:
    assert scope_feed(feed_id, GROUPS) == named


def test_a_compact_token_reads_only_the_feed_it_names() -> None:
    compact = grant({"resource": "feed", "action": "read", "feed_id": "user_privatebob"})
    assert compact.allows("feed", "read", FeedId("user_private", "bob"))
    assert not compact.allows("feed", "read", FeedId("user", "_privatebob"))
    colon = grant({"resource": "feed", "action": "read", "feed_id": "user:_privatebob"})
    assert colon.allows("feed", "read", FeedId("user", "_privatebob"))
    assert not colon.allows("feed", "read", FeedId("user_private", "bob"))
    # With only `user` configured, the compact form names user:_privatebob.
    only_user = grant(
        {"resource": "feed", "action": "read", "feed_id": "user_privatebob"}, ("user",)
    )
    assert only_user.allows("feed", "read", FeedId("user", "_privatebob"))


def test_tokens_signed_here_name_their_feed_with_the_colon() -> None:
    feed = FeedId("timeline", "_aggregatedalice")
    signed = decode_token(feed_token(feed, SECRET), SECRET, GROUPS)
    assert signed.allows("feed", "read", feed)
    assert not signed.allows("feed", "read", FeedId("timeline_aggregated", "alice"))


def test_a_user_token_follows_from_and_marks_its_own_feeds_and_writes_its_user_feed() -> None:
    bob = grant({"user_id": "bob"})
    for action in ("read", "write", "delete"):
        assert bob.allows("follower", action, FeedId("timeline", "bob"))
        assert not bob.allows("follower", action, FeedId("timeline", "alice"))
    assert bob.allows("feed", "read", FeedId("notification", "bob"))
    assert bob.allows("feed", "write", FeedId("user", "bob"))
    assert not bob.allows("feed", "write", FeedId("timeline", "bob"))
    assert not bob.allows("feed", "delete", FeedId("timeline", "bob"))
    assert not bob.allows("feed_targets", "write", FeedId("timeline", "bob"))


ROOM = FeedId("raid", "42")


@pytest.mark.parametrize(
    ("claims", "target_token", "may"),
    [
        ({"resource": "*", "action": "*", "feed_id": "*"}, None, True),
        ({"resource": "follower", "action": "*", "feed_id": "*"}, None, True),
        ({"user_id": "mallory"}, None, False),
        ({"user_id": "mallory"}, {"user_id": "mallory"}, False),
        ({"user_id": "mallory"}, {"resource": "feed", "action": "read", "feed_id": "raid42"}, True),
        ({"user_id": "mallory"}, {"resource": "feed", "action": "*", "feed_id": "*"}, True),
        (
            {"user_id": "mallory"},
            {"resource": "feed", "action": "read", "feed_id": "raid43"},
            False,
        ),
        ({"resource": "*", "action": "*", "feed_id": "raid43"}, None, False),
        ({"resource": "*", "action": "*", "feed_id": "raid42"}, None, True),
    ],
)
def test_a_private_feed_is_followed_with_the_right_to_read_it(
    claims: dict[str, object], target_token: dict[str, object] | None, may: bool
) -> None:
    signed = None if target_token is None else jwt.encode(target_token, SECRET, "HS256")
    if may:
        authorize_follow_target(grant(claims), ROOM, signed, SECRET, GROUPS)
    else:
        with pytest.raises(NotAllowedError):
            authorize_follow_target(grant(claims), ROOM, signed, SECRET, GROUPS)
    with pytest.raises(NotAllowedError):  # a forged target_token is no token
        forged = jwt.encode({"resource": "*", "action": "*", "feed_id": "*"}, "x" * 32, "HS256")
        authorize_follow_target(grant({"user_id": "mallory"}), ROOM, forged, SECRET, GROUPS)
