"""Percentiles, busy time, the deliveries the subscribers reported, matched to the posts, and
the growth and trend of a series (a soak's verdict)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RSS_LIMIT_PCT, FD_SLACK, TASK_SLACK = 5.0, 10, 20  # what a soak's "no growth" tolerates
FLAT_RATIO, FLAT_SLACK_MS = 1.5, 25.0  # a p99 is flat when last <= max(first*1.5, first+25)


def percentiles(values: Sequence[float]) -> dict[str, float] | None:
    """p50/p90/p99/max of `values`, rounded to 0.1 (None when there are none)."""
    if not values:
        return None
    if len(values) == 1:
        cuts = [values[0]] * 99
    else:
        cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 1),
        "p90": round(cuts[89], 1),
        "p99": round(cuts[98], 1),
        "max": round(max(values), 1),
    }


def distribution(values: Sequence[float]) -> list[float] | None:
    """The 101 percentiles p0, p1, ..., p100 of `values`, rounded to 0.1: enough to plot the
    whole latency distribution (a CDF) from the JSON, without every sample in it."""
    if not values:
        return None
    if len(values) == 1:
        return [round(values[0], 1)] * 101
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return [round(v, 1) for v in (min(values), *cuts, max(values))]


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """The length of the union of the intervals: the time some fanout was in progress."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


@dataclass
class Deliveries:
    """What reached the subscribers, per posted activity."""

    latencies_ms: list[float] = field(default_factory=list)  # receive time - time before POST
    last: dict[str, float] = field(default_factory=dict)  # activity id -> its last delivery
    count: dict[str, int] = field(default_factory=dict)  # activity id -> deliveries
    unexpected: int = 0  # events for activities not posted in this round

    @property
    def received(self) -> int:
        return len(self.latencies_ms)


def match_deliveries(
    feeds: Iterable[str],
    received: Mapping[str, Mapping[str, float]],
    posted: Mapping[str, float],
) -> Deliveries:
    """`received` (feed -> activity id -> time.time() at receipt) of the `feeds` of a round
    against `posted` (activity id -> time.time() just before its POST)."""
    out = Deliveries()
    for feed in feeds:
        for activity_id, at in received.get(feed, {}).items():
            started = posted.get(activity_id)
            if started is None:
                out.unexpected += 1
                continue
            out.latencies_ms.append((at - started) * 1000)
            out.last[activity_id] = max(out.last.get(activity_id, at), at)
            out.count[activity_id] = out.count.get(activity_id, 0) + 1
    return out


def ends(values: Sequence[float]) -> tuple[float, float] | None:
    """The level of a series at its start and at its end: the medians of its first third and
    of its last third (a value each at least), steadier than its first and last values. None
    with fewer than two values."""
    if len(values) < 2:
        return None
    third = max(1, len(values) // 3)
    return statistics.median(values[:third]), statistics.median(values[-third:])


def growth(values: Sequence[float]) -> float | None:
    """How much a series rose from its start to its end (`ends`); negative when it fell."""
    levels = ends(values)
    return None if levels is None else round(levels[1] - levels[0], 1)


def growth_pct(values: Sequence[float]) -> float | None:
    """`growth` as a percentage of the start's level (None when that is not above 0)."""
    levels = ends(values)
    if levels is None or levels[0] <= 0:
        return None
    return (levels[1] - levels[0]) / levels[0] * 100


def trend(values: Sequence[float]) -> dict[str, float | None] | None:
    """A series' start and end levels (`ends`) and their ratio."""
    levels = ends(values)
    if levels is None:
        return None
    first, last = levels
    ratio = round(last / first, 2) if first > 0 else None
    return {"first": round(first, 1), "last": round(last, 1), "ratio": ratio}


def soak_summary(samples: list[dict[str, Any]], warmup: float, errors: int) -> dict[str, Any]:
    """A soak's verdict (bench/soak.py) from its samples (`{"minute", "nodes": {node: {"rss_mb",
    "fds", "tasks", "loop_lag_ms", ...}}, "p99_ms": {kind: ms or None}}`) and its error count:
    after the warm-up, growth per node, the p99s' trend, and the pass criteria."""
    after = [s for s in samples if s["minute"] > warmup]
    nodes: dict[str, Any] = {}
    for name in samples[0]["nodes"] if samples else []:

        def series(key: str, name: str = name) -> list[float]:
            return [v for s in after if (v := s["nodes"][name][key]) is not None]

        rss = growth_pct(series("rss_mb"))
        nodes[name] = {"rss_growth_pct": None if rss is None else round(rss, 1),
                       "fd_growth": growth(series("fds")), "task_growth": growth(series("tasks")),
                       "loop_lag_ms_max": max(series("loop_lag_ms"), default=None)}  # fmt: skip
    kinds = samples[0]["p99_ms"] if samples else []
    trends = {k: trend([v for s in after if (v := s["p99_ms"][k]) is not None]) for k in kinds}
    trends = {k: t for k, t in trends.items() if t is not None}  # a kind not run: none

    def each(values: list[Any], ok: Any) -> bool:
        return bool(values) and all(v is not None and ok(v) for v in values)

    checks = {
        "rss_within_5pct": each([n["rss_growth_pct"] for n in nodes.values()],
                                lambda g: g <= RSS_LIMIT_PCT),
        "no_fd_growth": each([n["fd_growth"] for n in nodes.values()], lambda g: g <= FD_SLACK),
        "no_task_growth": each([n["task_growth"] for n in nodes.values()],
                               lambda g: g <= TASK_SLACK),
        "no_errors": errors == 0,
        "p99s_flat": each(list(trends.values()), lambda t: t["last"] <= max(
            t["first"] * FLAT_RATIO, t["first"] + FLAT_SLACK_MS)),
    }  # fmt: skip
    return {"samples_after_warmup": len(after), "nodes": nodes, "p99_trend_ms": trends,
            "pass": {**checks, "all": all(checks.values())}}  # fmt: skip
