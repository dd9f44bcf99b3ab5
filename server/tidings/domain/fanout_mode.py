"""Push or pull: which fanout a feed should have, decided by time rather than by a follower count.

A push copies a new activity into every follower feed; at this deployment's measured fanout
rate (follower entries stored per second) a push to `followers` feeds takes `followers / rate`
seconds before the last follower feed holds it. A feed whose push would take longer than the
budget (`fanout.push_budget_ms`) is better served by pull: its activities are merged into the
follower feeds at read time and its live update goes to one room. So the follower count at which
a feed goes pull (the *switch point*) is `rate * budget`, clamped between two bounds: below
`min_pull_followers` a feed never goes pull, above `pull_threshold` it always does.

Hysteresis: a pull feed goes back to push only below `back_fraction` of the current switch point
(and below `push_threshold`). For a steady rate this is a count hysteresis, as with fixed
thresholds: a feed switches twice only if its follower count moves by more than the band. When
the rate moves, the switch point moves with it, so a feed switches back only once the rate has
risen by more than `1 / back_fraction` (25 % at 0.8) since it went pull: smoothed measurements
(fanout/rate.py) do not swing that much on noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["push", "pull"]


@dataclass(frozen=True)
class ModeBounds:
    """The settings the decision depends on (fanout.* of the configuration)."""

    budget_ms: float  # push_budget_ms; 0: no budget, `pull_threshold` alone decides
    min_pull: int  # min_pull_followers: at or below it, never pull
    pull_above: int  # pull_threshold: above it, always pull
    push_below: int  # push_threshold: a pull feed goes back to push only below it
    back_fraction: float = 0.8


def switch_point(rate: float, bounds: ModeBounds) -> int:
    """The follower count above which a push feed goes pull, at `rate` entries per second.
    The upper bound wins over the lower one when they cross (`pull_threshold` below
    `min_pull_followers`: a feed above `pull_threshold` always goes pull)."""
    high = bounds.pull_above
    if bounds.budget_ms <= 0:
        return high
    low = min(bounds.min_pull, high)
    return int(min(high, max(low, rate * bounds.budget_ms / 1000)))


def back_point(rate: float, bounds: ModeBounds) -> int:
    """The follower count below which a pull feed goes back to push: always below the
    switch point (the band between the two is the hysteresis)."""
    return min(bounds.push_below, int(switch_point(rate, bounds) * bounds.back_fraction))


def decide(followers: int, pulling: bool, rate: float, bounds: ModeBounds) -> Mode | None:
    """The mode a feed with `followers` followers should switch to, or None to keep its own:
    `pulling` says whether it is a pull feed now (else a push feed)."""
    if not pulling and followers > switch_point(rate, bounds):
        return "pull"
    if pulling and followers < back_point(rate, bounds):
        return "push"
    return None
