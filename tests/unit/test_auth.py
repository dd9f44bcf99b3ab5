from __future__ import annotations

import time

import jwt
import pytest

from tidings.auth import decode_token, feed_token, server_token, user_token
from tidings.domain.errors import NotAllowedError, SignatureError
from tidings.domain.feeds import FeedId

SECRET = "unit-test-secret-0123456789-abcdef"
GROUPS = ("user", "timeline", "raid", "notification", "timeline_aggregated")
ALICE, BOB_TIMELINE, BOB_USER = (
    FeedId("user", "alice"),
    FeedId("timeline", "bob"),
    FeedId("user", "bob"),
)


def grant(claims: dict[str, object]):
    return decode_token(jwt.encode(claims, SECRET, algorithm="HS256"), SECRET, GROUPS)


def test_server_token_allows_everything() -> None:
    g = decode_token(server_token(SECRET), SECRET, GROUPS)
    for action in ("read", "write", "delete"):
        assert g.allows("feed", action, ALICE)
        assert g.allows("follower", action, BOB_TIMELINE)


def test_scoped_tokens_as_the_sdks_sign_them() -> None:
    g = grant({"resource": "feed", "action": "read", "feed_id": "timelinebob"})
    assert g.allows("feed", "read", BOB_TIMELINE)
    assert not g.allows("feed", "write", BOB_TIMELINE)
    assert not g.allows("follower", "read", BOB_TIMELINE)
    assert not g.allows("feed", "read", ALICE)
    assert grant({"resource": "*", "action": "*", "feed_id": "timeline:bob"}).allows(
        "follower", "delete", BOB_TIMELINE
    )


def test_user_tokens_read_their_feeds_and_write_only_their_user_feed() -> None:
    g = decode_token(user_token("bob", SECRET), SECRET, GROUPS)
    assert g.allows("feed", "read", BOB_TIMELINE)
    assert g.allows("feed", "write", BOB_USER)
    assert not g.allows("feed", "write", BOB_TIMELINE)
    assert not g.allows("feed", "read", ALICE)
    with pytest.raises(NotAllowedError):
        g.require("feed", "read", ALICE)


def test_feed_read_token() -> None:
    g = decode_token(feed_token(BOB_TIMELINE, SECRET), SECRET, GROUPS)
    assert g.allows("feed", "read", BOB_TIMELINE) and not g.allows("feed", "write", BOB_TIMELINE)


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "garbage",
        jwt.encode(
            {"resource": "*", "action": "*", "feed_id": "*"}, "another-secret-of-32-bytes!!!!!!"
        ),
        jwt.encode({"user_id": "bob", "exp": int(time.time()) - 5}, SECRET),
        jwt.encode({"nothing": "useful"}, SECRET),
    ],
)
def test_bad_tokens_are_signature_errors(token: str | None) -> None:
    with pytest.raises(SignatureError):
        decode_token(token, SECRET, GROUPS)


def test_bearer_prefix_and_expiry() -> None:
    g = decode_token("Bearer " + user_token("bob", SECRET, ttl=60), SECRET, GROUPS)
    assert g.user_id == "bob" and g.expires_at is not None and not g.expired
