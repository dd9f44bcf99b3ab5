"""Push or pull by a time budget: the switch point follows the measured rate, within the count
bounds, with a hysteresis band that a steady rate cannot cross."""

from __future__ import annotations

import pytest

from tidings.domain.fanout_mode import ModeBounds, back_point, decide, switch_point

# The defaults: 250 ms, never pull at or below 1000 followers, always above 10000, back to push
# below 8000 at most.
DEFAULTS = ModeBounds(budget_ms=250, min_pull=1000, pull_above=10_000, push_below=8_000)


@pytest.mark.parametrize(
    ("rate", "point"),
    [
        (3_700, 1_000),  # 925 by the budget: the lower bound
        (8_000, 2_000),
        (20_000, 5_000),
        (40_000, 10_000),
        (1_000_000, 10_000),  # a fast store: the upper bound
        (0, 1_000),
    ],
)
def test_the_switch_point_is_the_rate_times_the_budget_within_the_bounds(
    rate: float, point: int
) -> None:
    assert switch_point(rate, DEFAULTS) == point


def test_above_pull_threshold_always_pull_at_or_below_min_never() -> None:
    assert decide(10_001, False, 10**9, DEFAULTS) == "pull"
    assert decide(1_000, False, 0, DEFAULTS) is None
    assert decide(1_001, False, 0, DEFAULTS) == "pull"


def test_a_slower_store_switches_a_feed_of_the_same_count_sooner() -> None:
    followers = 3_000
    assert decide(followers, False, 20_000, DEFAULTS) is None  # 5000: push
    assert decide(followers, False, 10_000, DEFAULTS) == "pull"  # 2500: pull


def test_crossed_bounds_let_pull_threshold_win() -> None:
    """Configured as many tests do (a tiny pull_threshold): the counts alone decide."""
    small = ModeBounds(budget_ms=250, min_pull=1000, pull_above=3, push_below=2)
    for rate in (0, 1, 10**6):
        assert switch_point(rate, small) == 3
        assert decide(4, False, rate, small) == "pull"
        assert decide(3, False, rate, small) is None
        assert decide(2, True, rate, small) is None
        assert decide(1, True, rate, small) == "push"


def test_no_budget_is_the_count_thresholds_of_before() -> None:
    counts = ModeBounds(budget_ms=0, min_pull=1000, pull_above=10_000, push_below=8_000)
    assert switch_point(1, counts) == 10_000
    assert decide(10_001, False, 1, counts) == "pull"
    assert decide(9_000, False, 1, counts) is None
    assert decide(8_000, True, 1, counts) is None
    assert decide(7_999, True, 1, counts) == "push"


def test_back_to_push_below_a_fraction_of_the_switch_point_and_push_threshold() -> None:
    assert back_point(8_000, DEFAULTS) == 1_600  # 0.8 x 2000
    assert back_point(40_000, DEFAULTS) == 8_000  # 0.8 x 10000, push_threshold alike
    tight = ModeBounds(budget_ms=250, min_pull=10, pull_above=10_000, push_below=500)
    assert back_point(8_000, tight) == 500  # push_threshold binds


@pytest.mark.parametrize("rate", [0, 100, 3_700, 8_000, 12_345, 40_000, 10**7])
def test_at_a_steady_rate_no_count_switches_a_feed_both_ways(rate: float) -> None:
    """Whatever the count, a feed is never due for both switches: going pull and coming back
    need different counts, with the band in between."""
    for bounds in (
        DEFAULTS,
        ModeBounds(budget_ms=100, min_pull=10, pull_above=1000, push_below=800),
        ModeBounds(budget_ms=250, min_pull=5000, pull_above=100, push_below=100),
    ):
        assert back_point(rate, bounds) < switch_point(rate, bounds) or (
            switch_point(rate, bounds) == 0
        )
        for followers in range(0, 12_000, 7):
            to_pull = decide(followers, False, rate, bounds) == "pull"
            to_push = decide(followers, True, rate, bounds) == "push"
            assert not (to_pull and to_push), (rate, followers, bounds)


def test_the_rate_must_rise_past_the_band_to_switch_back() -> None:
    """A feed that went pull at a rate stays pull through swings under 25 %, and goes back to
    push once the store is faster by more than that."""
    followers = 2_100  # pull at 8000/s (point 2000)
    assert decide(followers, False, 8_000, DEFAULTS) == "pull"
    for rate in (6_000, 8_000, 9_000, 10_000, 10_500):
        assert decide(followers, True, rate, DEFAULTS) is None
    assert decide(followers, True, 10_600, DEFAULTS) == "push"  # point 2650, back 2120
    # ... and once back to push at that rate it stays push
    assert decide(followers, False, 10_600, DEFAULTS) is None
