"""What a feed merges in at read time, known per node for `ttl` seconds: forgotten when a follow
of it changes (on any node: the bus), when the bus link comes back, and after `ttl`; a lookup
that raced a change is not kept."""

from __future__ import annotations

import time

from tidings.bus.base import LocalBus
from tidings.bus.messages import FollowChanged
from tidings.feeds.reads import KnownPulls

MERGED = [("user:celeb", "01a2519a-5800-7000-8000-000000000000")]


async def test_known_until_a_follow_of_the_feed_changes() -> None:
    bus = LocalBus("n1")
    known = KnownPulls(60, bus)
    known.remember("timeline:a", MERGED, known.generation)
    known.remember("timeline:b", [], known.generation)
    assert known.get("timeline:a") == MERGED
    assert known.get("timeline:b") == []  # follows no pull feed: known too
    await bus.publish(FollowChanged("timeline:a", "user:celeb", False))
    assert known.get("timeline:a") is None
    assert known.get("timeline:b") == []


async def test_a_lookup_that_raced_a_change_is_not_kept() -> None:
    bus = LocalBus("n1")
    known = KnownPulls(60, bus)
    began = known.generation
    await bus.publish(FollowChanged("timeline:other", "user:celeb", True))
    known.remember("timeline:a", MERGED, began)
    assert known.get("timeline:a") is None


def test_forgotten_after_ttl_and_when_the_bus_comes_back() -> None:
    bus = LocalBus("n1")
    known = KnownPulls(0.05, bus)
    known.remember("timeline:a", MERGED, known.generation)
    time.sleep(0.06)
    assert known.get("timeline:a") is None
    known = KnownPulls(60, bus)
    known.remember("timeline:a", MERGED, known.generation)
    known.clear()  # what the bus's Subscribed does (a local message: LocalBus has no link)
    assert known.get("timeline:a") is None
