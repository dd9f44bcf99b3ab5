"""The measured fanout rate: throughput of the metered inserts (overlapping inserts count
their time once), folded in windows of a full batch, small batches left out."""

from __future__ import annotations

import pytest

from tidings.config import FanoutSettings
from tidings.fanout.rate import FanoutRate, initial_rate, mode_bounds


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def meter(
    initial: float = 40_000, full: int = 500, smoothing: float = 1.0
) -> tuple[FanoutRate, Clock]:
    clock = Clock()
    return FanoutRate(initial, full, smoothing, clock), clock


def test_one_insert_at_a_time_is_entries_over_its_time() -> None:
    rate, clock = meter()
    with rate.insert(500):
        clock.now += 0.1
    assert rate.per_second == pytest.approx(5_000)
    assert rate.windows == 1


def test_until_it_measures_the_rate_is_the_initial_one() -> None:
    rate, clock = meter(initial=1234)
    with rate.insert(200):  # not a full window yet
        clock.now += 0.1
    assert rate.per_second == 1234
    with rate.insert(300):
        clock.now += 0.1
    assert rate.per_second == pytest.approx(2_500)  # 500 entries in 0.2 s


def test_overlapping_inserts_count_their_time_once() -> None:
    """Four batches in flight at once, each taking 0.4 s: 2000 entries in 0.4 s."""
    rate, clock = meter(full=2_000)
    inserts = [rate.insert(500) for _ in range(4)]
    for insert in inserts:
        insert.__enter__()
    clock.now += 0.4
    for insert in inserts:
        insert.__exit__(None, None, None)
    assert rate.per_second == pytest.approx(5_000)


def test_staggered_inserts_share_the_time_they_overlap() -> None:
    """A runs from 0 to 0.3 s, B from 0.1 to 0.4 s: 1000 entries in 0.4 s, in two windows of
    500 (each closed when one ends) that both measure it."""
    rate, clock = meter(full=500)
    first, second = rate.insert(500), rate.insert(500)
    first.__enter__()
    clock.now += 0.1
    second.__enter__()
    clock.now += 0.2
    first.__exit__(None, None, None)
    assert rate.per_second == pytest.approx(2_500)
    clock.now += 0.1
    second.__exit__(None, None, None)
    assert rate.per_second == pytest.approx(2_500)
    assert rate.windows == 2


def test_idle_time_between_inserts_does_not_count() -> None:
    rate, clock = meter(full=1_000)
    for _ in range(2):
        with rate.insert(500):
            clock.now += 0.1
        clock.now += 10  # nothing written meanwhile
    assert rate.per_second == pytest.approx(5_000)


def test_small_batches_are_not_metered() -> None:
    rate, clock = meter(initial=40_000, full=500)
    for _ in range(1_000):
        with rate.insert(10):  # one round trip each, mostly latency
            clock.now += 0.002
    assert rate.per_second == 40_000
    assert rate.windows == 0


def test_a_failed_insert_counts_its_time_without_entries() -> None:
    rate, clock = meter()
    with pytest.raises(RuntimeError), rate.insert(500):
        clock.now += 0.4
        raise RuntimeError("store gone")
    with rate.insert(500):
        clock.now += 0.1
    assert rate.per_second == pytest.approx(1_000)  # 500 entries in 0.5 s


def test_the_first_window_replaces_the_initial_rate_and_the_next_move_it_by_the_smoothing() -> None:
    rate, clock = meter(initial=40_000, smoothing=0.5)
    with rate.insert(500):
        clock.now += 0.25  # 2000/s
    assert rate.per_second == pytest.approx(2_000)  # not halfway from a rate never measured
    with rate.insert(500):
        clock.now += 0.125  # 4000/s
    assert rate.per_second == pytest.approx(3_000)
    with rate.insert(500):
        clock.now += 0.125
    assert rate.per_second == pytest.approx(3_500)


def test_the_initial_rate_makes_the_budget_meet_pull_threshold() -> None:
    settings = FanoutSettings(
        batch_size=500, concurrency=4, lease_seconds=30, poll_seconds=2, default_copy_limit=100,
        max_copy_limit=1000, pull_threshold=10_000, push_threshold=8_000, max_following=5000,
    )  # fmt: skip
    assert initial_rate(settings) == 40_000
    bounds = mode_bounds(settings)
    assert (bounds.budget_ms, bounds.min_pull, bounds.pull_above, bounds.push_below) == (
        250,
        250,
        10_000,
        8_000,
    )
