"""The soak's pure parts: how growth and trend are read from a series of samples (bench/stats.py),
the summary's pass criteria, and the `--mix` option."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from bench import soak, stats
from bench.stats import ends, growth, growth_pct, trend


def test_ends_are_the_medians_of_the_first_and_last_thirds() -> None:
    assert ends([]) is None and ends([5.0]) is None
    assert ends([1.0, 3.0]) == (1.0, 3.0)
    # a spike in either third moves nothing: medians
    assert ends([10, 99, 10, 11, 11, 12, 12, 80, 12]) == (10, 12)


def test_growth_and_growth_pct() -> None:
    rss = [100.0, 101.0, 100.0, 102.0, 103.0, 104.0, 106.0, 106.0, 107.0]
    assert growth(rss) == 6.0  # 100 -> 106
    assert growth_pct(rss) == pytest.approx(6.0)
    assert growth([50, 40, 40, 30]) == -20.0  # fell
    assert growth_pct([0.0, 3.0]) is None  # no level to be a percentage of
    assert growth([7.0]) is None


def test_trend_says_where_a_p99_went() -> None:
    assert trend([20.0, 22.0, 21.0, 40.0, 42.0, 42.0]) == {"first": 21.0, "last": 42.0,
                                                           "ratio": 2.0}  # fmt: skip
    assert trend([0.0, 1.0]) == {"first": 0.0, "last": 1.0, "ratio": None}
    assert trend([3.0]) is None


def sample(minute: float, rss: float, fds: int, tasks: int, p99: float) -> dict[str, Any]:
    node = {"rss_mb": rss, "fds": fds, "tasks": tasks, "loop_lag_ms": 2.0, "sockets": 10}
    return {"minute": minute, "nodes": {"A": node, "B": dict(node)},
            "p99_ms": {"add_to_delivered": p99, "read": p99 / 2, "follow": None}}  # fmt: skip


def test_a_steady_run_passes_and_the_warm_up_is_left_out() -> None:
    samples = [sample(0, 50, 20, 40, 900)]  # before the load, and warming up: not counted
    samples += [sample(m, 100 + m % 2, 60 + m % 3, 120, 30 + m % 4) for m in range(2, 12)]
    summary = stats.soak_summary(samples, warmup=1, errors=0)
    assert summary["samples_after_warmup"] == 10
    assert summary["nodes"]["A"]["rss_growth_pct"] <= 1
    assert set(summary["p99_trend_ms"]) == {"add_to_delivered", "read"}  # follow never ran
    assert summary["pass"] == {"rss_within_5pct": True, "no_fd_growth": True,
                               "no_task_growth": True, "no_errors": True, "p99s_flat": True,
                               "all": True}  # fmt: skip


def test_each_leak_fails_its_own_criterion() -> None:
    leaking = [sample(m, 100 + 2 * m, 60 + 5 * m, 100 + 10 * m, 30 * m) for m in range(1, 10)]
    verdict = stats.soak_summary(leaking, warmup=0, errors=3)["pass"]
    assert verdict == {"rss_within_5pct": False, "no_fd_growth": False, "no_task_growth": False,
                       "no_errors": False, "p99s_flat": False, "all": False}  # fmt: skip


def test_too_few_samples_after_the_warm_up_pass_nothing_they_cannot_show() -> None:
    verdict = stats.soak_summary([sample(1, 100, 60, 100, 30)], warmup=0, errors=0)["pass"]
    assert verdict["no_errors"] and not verdict["rss_within_5pct"] and not verdict["all"]


def test_mix() -> None:
    assert soak.mix("add=1,read=2") == {"add": 1.0, "read": 2.0, "follow": 0.0, "reaction": 0.0,
                                        "presence": 0.0, "reconnect": 0.0}  # fmt: skip
    for bad in ("add=1,write=2", "add=0", "add=-1,read=2"):
        with pytest.raises(argparse.ArgumentTypeError):
            soak.mix(bad)


def test_the_runs_latencies_are_a_bounded_uniform_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(soak, "KEPT", 100)
    args = argparse.Namespace(api_secret="s" * 32, authors=5, sockets=10)
    load = soak.Load(args, "run", {}, None)  # type: ignore[arg-type]  (no call made)
    for ms in range(10_000):
        load.timed("read", float(ms))
    kept = load.whole["read"]
    assert len(load.span["read"]) == 10_000 and len(kept) == 100
    assert 3_000 < sum(kept) / len(kept) < 7_000  # from the whole run, not its first 100
