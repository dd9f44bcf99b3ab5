"""The raid rooms' bounds and tokens: the publish token bucket, scoped user tokens, config."""

from __future__ import annotations

import pytest

from tidings.auth import decode_token, feed_token
from tidings.config import ConfigError, load_settings
from tidings.domain.feeds import FeedId
from tidings.realtime.transport.rate import TokenBucket

SECRET = "unit-test-secret-0123456789-abcdef"
GROUPS = ("user", "timeline", "raid", "notification", "timeline_aggregated")
RAID = FeedId("raid", "42")


def test_the_bucket_allows_a_burst_then_the_rate_and_never_more() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(now=0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.5)
    assert bucket.take(now=0.25) is False  # half a token back: still refused
    assert bucket.take(now=0.5) is True
    assert [bucket.take(now=100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_a_scoped_user_token_authorises_by_its_scope_and_names_the_member() -> None:
    grant = decode_token(feed_token(RAID, SECRET, action="*", user_id="bob"), SECRET, GROUPS)
    assert grant.user_id == "bob"
    assert grant.allows("feed", "read", RAID) and grant.allows("feed", "write", RAID)
    assert not grant.allows("feed", "read", FeedId("raid", "43"))
    assert not grant.allows("feed", "write", FeedId("user", "bob"))  # the scope, not the user
    reader = decode_token(feed_token(RAID, SECRET, user_id="bob"), SECRET, GROUPS)
    assert reader.allows("feed", "read", RAID) and not reader.allows("feed", "write", RAID)


def test_presence_is_on_for_raid_only_and_its_bounds_are_checked() -> None:
    settings = load_settings(environ={})
    assert [name for name, group in settings.feeds.items() if group.presence] == ["raid"]
    realtime = settings.realtime
    assert (realtime.presence_ttl, realtime.presence_info_bytes) == (15.0, 1024)
    assert (realtime.publish_rate, realtime.publish_burst) == (10.0, 20)
    env = {"TIDINGS_REALTIME_PRESENCE_TTL": "2.5", "TIDINGS_REALTIME_PUBLISH_BURST": "3"}
    assert load_settings(environ=env).realtime.presence_ttl == 2.5
    with pytest.raises(ConfigError, match=r"realtime\.presence_ttl"):
        load_settings(environ={"TIDINGS_REALTIME_PRESENCE_TTL": "0.1"})
    with pytest.raises(ConfigError, match=r"realtime\.publish_rate"):
        load_settings(environ={"TIDINGS_REALTIME_PUBLISH_RATE": "0"})
