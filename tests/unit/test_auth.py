from __future__ import annotations

import time

import jwt
import pytest

from tidings.auth import decode_token, feed_token, server_token, shared_groups, user_token
from tidings.config import FeedGroup
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


def test_client_permissions_open_other_users_feeds_to_a_user_token() -> None:
    """Stream's client-side feed group permissions: `global_read` lets a user token read
    other users' feeds of the group (activities only, not their follows), `global_read_write`
    add to them too; deleting from them, and every private group, stays refused; a scoped
    token is not affected."""
    shared = shared_groups({
        "user": FeedGroup("user", client_permissions="global_read"),
        "notification": FeedGroup("notification", client_permissions="global_read_write"),
        "timeline": FeedGroup("timeline"),
    })  # fmt: skip
    assert shared == {"user": "global_read", "notification": "global_read_write"}
    token = user_token("bob", SECRET)
    bob = decode_token(token, SECRET, GROUPS, shared)
    alice_note = FeedId("notification", "alice")
    assert bob.allows("feed", "read", ALICE) and not bob.allows("feed", "write", ALICE)
    assert not bob.allows("follower", "read", ALICE)
    assert bob.allows("feed", "read", alice_note) and bob.allows("feed", "write", alice_note)
    assert not bob.allows("feed", "delete", alice_note)
    assert not bob.allows("feed", "read", FeedId("timeline", "alice"))
    assert bob.may_write("notification:alice") and not bob.may_write("user:alice")
    assert not decode_token(token, SECRET, GROUPS).allows("feed", "read", ALICE)
    scoped = jwt.encode(
        {"resource": "feed", "action": "read", "feed_id": "timelinebob"}, SECRET, "HS256"
    )
    assert not decode_token(scoped, SECRET, GROUPS, shared).allows("feed", "read", ALICE)
