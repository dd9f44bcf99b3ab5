"""The feeds read lately (store/memory/recent_reads.py): bounded in count and in time."""

from __future__ import annotations

import time

from tidings.store.memory.recent_reads import RecentReads


def test_a_read_counts_for_its_seconds_only() -> None:
    recent = RecentReads(0.05)
    recent.saw("timeline:a")
    assert "timeline:a" in recent and "timeline:b" not in recent
    time.sleep(0.06)
    assert "timeline:a" not in recent


def test_the_oldest_read_goes_first_past_the_bound() -> None:
    recent = RecentReads(60, max_feeds=2)
    for feed in ("timeline:a", "timeline:b", "timeline:a", "timeline:c"):
        recent.saw(feed)
    assert "timeline:b" not in recent
    assert "timeline:a" in recent and "timeline:c" in recent


def test_since_answers_the_feeds_read_after_a_mark_newest_first() -> None:
    recent = RecentReads(60)
    recent.saw("timeline:a")
    mark = time.monotonic()
    recent.saw("timeline:b")
    recent.saw("timeline:c")
    assert recent.since(mark) == ["timeline:c", "timeline:b"]
    recent.saw("timeline:a")  # read again: new since the mark
    assert recent.since(mark) == ["timeline:a", "timeline:c", "timeline:b"]
    assert recent.since(time.monotonic()) == []
