"""bench.plots draws every PNG from minimal roundtrip.json / roundtrip_pull.json /
broadcast.json documents, as bench.report leaves them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from bench import plots


def cdf(median_ms: float) -> list[float]:
    """101 increasing percentiles around `median_ms` (a log-normal-ish shape)."""
    return [round(median_ms * math.exp((i - 50) / 40), 1) for i in range(101)]


def result(followers: int, mode: str, median: float, **extra: Any) -> dict[str, Any]:
    return {
        "followers": followers,
        "fanout_mode": mode,
        "latency_cdf_ms": cdf(median),
        "latency_ms": {"p50": median, "p90": median * 2, "p99": median * 3, "max": median * 4},
        "fanout_entries_per_s": 40.0 * followers**0.5,
        "fanout_vs_raw_insert_ratio": 0.2,
        **extra,
    }


def roundtrip_report(rate: float, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "benchmark": "roundtrip",
        "machine": {"cores": 2, "loadavg_at_start": [0.5, 0.4, 0.3]},
        "store": "embedded SecantusDB",
        "settings": {"activities": 10, "rate_per_s": rate},
        "raw_bulk_insert_docs_per_s": 5000.0,
        "results": results,
    }


def push_report() -> dict[str, Any]:
    """roundtrip.json: the push rounds (one without a CDF, one failed)."""
    return roundtrip_report(
        0.25,
        [
            result(10, "push", 12),
            {"followers": 100, "latency_ms": {"p50": 20, "p90": 30, "p99": 40, "max": 50}},
            result(1000, "push", 90),
            {"followers": 10_000, "error": "RuntimeError: boom"},
        ],
    )


def pull_report() -> dict[str, Any]:
    """roundtrip_pull.json: the pull round."""
    pulled = result(1_000_000, "pull", 150, connected=10_000, fanout_entries_per_s=None)
    return roundtrip_report(1, [pulled])


def broadcast_report() -> dict[str, Any]:
    def target(median: float, rate: int) -> dict[str, Any]:
        return {
            "connect_s": 3.2,
            "rss_per_socket_kb": 21.5,
            "latency_ms": {"p50": median, "p99": median * 2, "max": median * 3},
            "latency_cdf_ms": cdf(median),
            "deliveries_per_s": rate,
            "burst_deliveries_per_s": rate * 2,
        }

    return {
        "benchmark": "broadcast",
        "sockets": 10_000,
        "events": 20,
        "burst": 20,
        "rounds": 3,
        "cpus": 2,
        "node_socketio_version": "4.8.1",
        "targets": {
            "fast": target(40, 120_000),
            "fast2": target(35, 150_000),
            "socketio": {"error": "RuntimeError('gave up')"},
            "node": target(60, 90_000),
        },
    }


def write(folder: Path, name: str, doc: dict[str, Any]) -> None:
    (folder / name).write_text(json.dumps(doc))


def test_every_plot_is_written(tmp_path: Path) -> None:
    write(tmp_path, "roundtrip.json", push_report())
    write(tmp_path, "roundtrip_pull.json", pull_report())
    write(tmp_path, "broadcast.json", broadcast_report())

    written = plots.make_all(tmp_path)

    names = {
        "roundtrip_latency.png",
        "fanout_rate.png",
        "broadcast_latency.png",
        "broadcast_rates.png",
    }
    assert {p.name for p in written} == names
    for name in names:
        png = tmp_path / name
        assert png.stat().st_size > 1000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_missing_or_broken_json_only_skips_its_plots(tmp_path: Path) -> None:
    (tmp_path / "roundtrip.json").write_text("")  # a benchmark that died before printing
    write(tmp_path, "broadcast.json", broadcast_report())

    written = plots.make_all(tmp_path)

    assert sorted(p.name for p in written) == ["broadcast_latency.png", "broadcast_rates.png"]
    assert plots.make_all(tmp_path / "nothing-here") == []


def test_the_latency_plot_draws_the_rounds_of_both_roundtrip_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "roundtrip_pull.json", pull_report())  # the push run died: no roundtrip.json

    assert [p.name for p in plots.make_all(tmp_path)] == ["roundtrip_latency.png"]

    drawn: list[str] = []
    original = plots.plot_cdf

    def recording(ax: Any, result: dict[str, Any], label: str, **style: Any) -> list[float]:
        drawn.append(label)
        return original(ax, result, label, **style)

    monkeypatch.setattr(plots, "plot_cdf", recording)
    plots.roundtrip_latency([push_report(), pull_report()], tmp_path / "both.png")
    assert drawn == [
        "push 10 followers, all connected",
        "100 followers, all connected",
        "push 1,000 followers, all connected",
        "pull 1,000,000 followers, 10,000 connected",
    ]


def test_the_title_says_how_each_file_was_paced() -> None:
    title = plots.roundtrip_title([push_report(), pull_report()], "latency")

    assert "push rounds: 10 activities at 0.25/s; pull rounds: 10 activities at 1/s" in title


def test_round_labels() -> None:
    assert plots.round_label({"followers": 1000, "fanout_mode": "push"}) == (
        "push 1,000 followers, all connected"
    )
    assert plots.round_label(
        {"followers": 1_000_000, "connected": 10_000, "fanout_mode": "pull"}
    ) == ("pull 1,000,000 followers, 10,000 connected")
    assert plots.round_label({"followers": 10}) == "10 followers, all connected"


def test_soak_trend_draws_the_samples(tmp_path: Path) -> None:
    node = {"rss_mb": 90.0, "fds": 70, "tasks": 120.0, "loop_lag_ms": 5.0, "sockets": 50.0}
    samples = [{"minute": m, "nodes": {"A": node, "B": node},
                "p99_ms": {"add_to_delivered": 30.0, "read": 10.0, "follow": None}}
               for m in range(4)]  # fmt: skip
    settings = {"sockets": 100, "rate": 10, "warmup_minutes": 1}
    report = {"samples": samples, "settings": settings, "pass": {"all": True},
              "store": "embedded SecantusDB", "machine": {"cores": 2}}  # fmt: skip
    png = plots.soak_trend(report, tmp_path / "soak.png")
    assert png is not None and png.stat().st_size > 10_000
    assert plots.soak_trend({"samples": []}, tmp_path / "none.png") is None
