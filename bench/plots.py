"""PNG plots of a report run's JSON: `python -m bench.plots <results-dir>`.

Reads what `python -m bench.report` (or the benchmarks by hand) left in the folder and writes the
plots next to it; a JSON that is missing or unreadable only skips its plots:

- `roundtrip.json` and `roundtrip_pull.json` (`python -m bench roundtrip`: the push rounds and
  the pull round of `bench.report`) -> `roundtrip_latency.png` (CDF of insert -> delivered per
  round of both files, with the targets and the hosted anchor); `roundtrip.json` ->
  `fanout_rate.png` (the fanout's entries/s per push round against the store's raw bulk-insert
  rate);
- `broadcast.json` (`python -m bench.broadcast`) -> `broadcast_latency.png` (CDF of one event
  to N sockets per target) and `broadcast_rates.png` (deliveries/s, connect time, RSS/socket).

`python -m bench soak --out DIR` draws its own `soak.png` (`soak_trend`) from its report.

A latency CDF is drawn from `latency_cdf_ms` (the 101 percentiles p0..p100); a result without it
(older JSON) gets its `latency_ms` percentiles as points instead. Figures are plain `Figure`s
drawn by Agg: no pyplot, no display needed. Needs matplotlib: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

# What the figures are held against: the targets, and Stream's published figures.
PUSH_TARGET_MS = 300  # push fanout to 1,000 connected followers
PULL_TARGET_MS = 200  # a pulled (celebrity) feed
HOSTED_AVG_MS, HOSTED_P99_MS = 230, 550  # Stream, hosted
FANOUT_RATIO_TARGET = 0.8  # fanout entries/s over the store's raw bulk-insert docs/s
PERCENTILE_KEYS = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "max": 1.0}
BROADCAST_NAMES = {
    "fast": "Tidings, fast path",
    "fast2": "Tidings, fast path, 2 workers",
    "socketio": "Tidings, python-socketio",
    "node": "node socket.io",
}
BROADCAST_COLORS = {"fast": "tab:blue", "fast2": "tab:purple", "socketio": "tab:green",
                    "node": "tab:orange"}  # fmt: skip

Result = dict[str, Any]


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def load(path: Path) -> Result | None:
    """The JSON document at `path`, or None (said on stderr) when it is missing or unreadable."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        log(f"plots: no {path.name}: its plots are skipped")
        return None
    except (OSError, ValueError) as exc:
        log(f"plots: {path.name} is not readable JSON ({exc}): its plots are skipped")
        return None
    return doc if isinstance(doc, dict) else None


def new_figure(width: float = 10, height: float = 5.5) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=120)
    log(f"plots: wrote {path}")
    return path


def cdf_points(result: Result) -> tuple[list[float], list[float], bool]:
    """(latencies, fractions, whole) of a result: the 101 percentiles when it has them
    (whole = True), else its `latency_ms` percentiles; empty when it has neither."""
    cdf = result.get("latency_cdf_ms")
    if cdf:
        return list(cdf), [i / (len(cdf) - 1) for i in range(len(cdf))], True
    found = [
        (v, PERCENTILE_KEYS[k])
        for k, v in (result.get("latency_ms") or {}).items()
        if k in PERCENTILE_KEYS and v is not None
    ]
    found.sort(key=lambda pair: pair[1])
    return [v for v, _ in found], [f for _, f in found], False


def plot_cdf(ax: Axes, result: Result, label: str, **style: Any) -> list[float]:
    """One CDF line (or points, without `latency_cdf_ms`); the latencies drawn."""
    xs, ys, whole = cdf_points(result)
    if xs:
        ax.plot(xs, ys, label=label, marker=None if whole else "o", **style)
    return xs


def number_label(value: float, _position: float | None = None) -> str:
    """1,000 for big or whole numbers, 0.5 and 2.5 for small ones (axis ticks and bar labels)."""
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.3g}"


def latency_axes(ax: Axes, drawn: Sequence[float]) -> None:
    """Labels, the p50/p99 guides, and a log x axis when the latencies span a wide range."""
    positive = [v for v in drawn if v > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(number_label))
    ax.set_xlabel("latency (ms)" + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel("fraction of deliveries")
    ax.set_ylim(0, 1.02)
    for fraction, name in ((0.5, "p50"), (0.99, "p99")):
        ax.axhline(fraction, color="0.75", linewidth=0.8, zorder=0)
        ax.annotate(
            name,
            (0, fraction),
            xycoords=("axes fraction", "data"),
            xytext=(3, 2),
            textcoords="offset points",
            fontsize=8,
            color="0.4",
        )
    ax.grid(True, which="major", axis="x", color="0.9")


def machine_words(cores: Any) -> str:
    return f"{cores}-core machine" if cores else "machine unknown"


# ------------------------------------------------------------------------------- roundtrip


def round_label(result: Result) -> str:
    """e.g. "push 1,000 followers, all connected", "pull 1,000,000 followers, 10,000 connected"."""
    followers = int(result.get("followers", 0))
    connected = int(result.get("connected", followers))
    mode = result.get("fanout_mode")
    head = f"{mode} {followers:,} followers" if mode else f"{followers:,} followers"
    return head + (", all connected" if connected == followers else f", {connected:,} connected")


def roundtrip_rounds(report: Result) -> list[Result]:
    return [r for r in report.get("results", []) if "error" not in r and "followers" in r]


def pace(report: Result) -> str:
    """e.g. "push rounds: 10 activities at 0.25/s" (the modes of its rounds, its settings)."""
    settings = report.get("settings", {})
    how = f"{settings.get('activities', '?')} activities at {settings.get('rate_per_s', '?')}/s"
    modes = sorted({r["fanout_mode"] for r in roundtrip_rounds(report) if r.get("fanout_mode")})
    return f"{' and '.join(modes)} rounds: {how}" if modes else how


def roundtrip_title(reports: Sequence[Result], what: str) -> str:
    """The title over the rounds of `reports` (one JSON each): what, how each was paced, where
    (the store and machine of the first)."""
    first = reports[0]
    store = first.get("store") or "store unknown"
    cores = (first.get("machine") or {}).get("cores")
    load = (first.get("machine") or {}).get("loadavg_at_start")
    how = "; ".join(dict.fromkeys(pace(r) for r in reports))
    where = f"Tidings on {store}, {machine_words(cores)}"
    return f"{what}\n{how}\n{where}" + (f" (load {load[0]:.2f} at start)" if load else "")


def roundtrip_latency(reports: Sequence[Result], path: Path) -> Path | None:
    """CDF of insert -> delivered, one line per round of every report (roundtrip.json and
    roundtrip_pull.json), against the targets and Stream."""
    every = [r for report in reports for r in roundtrip_rounds(report)]
    rounds = sorted(every, key=lambda r: (r["followers"], r.get("connected", 0)))
    if not rounds:
        return None
    figure = new_figure()
    ax = figure.subplots()
    colors = colormaps["viridis"]
    drawn: list[float] = []
    for i, result in enumerate(rounds):
        pulled = result.get("fanout_mode") == "pull"
        drawn += plot_cdf(
            ax,
            result,
            round_label(result),
            color=colors(0.8 * i / max(1, len(rounds) - 1)),
            linewidth=2.4 if pulled else 1.8,
            linestyle="-." if pulled else "-",
        )
    if not drawn:
        return None
    ax.axvline(
        PUSH_TARGET_MS,
        color="tab:red",
        linewidth=1.2,
        label=f"target: {PUSH_TARGET_MS} ms (push, 1,000 followers)",
    )
    ax.axvline(
        PULL_TARGET_MS,
        color="tab:orange",
        linewidth=1.2,
        label=f"target: {PULL_TARGET_MS} ms (pull)",
    )
    ax.axvline(
        HOSTED_AVG_MS,
        color="0.35",
        linestyle="--",
        linewidth=1.2,
        label=f"Stream (hosted) average: {HOSTED_AVG_MS} ms",
    )
    ax.axvline(
        HOSTED_P99_MS,
        color="0.35",
        linestyle=(0, (5, 2, 1, 2)),
        linewidth=1.2,
        label=f"Stream (hosted) p99: {HOSTED_P99_MS} ms",
    )
    latency_axes(ax, [*drawn, PULL_TARGET_MS, HOSTED_P99_MS])
    figure.suptitle(roundtrip_title(reports, "insert → feed.update delivered, per round"))
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
    return save(figure, path)


def fanout_rate(report: Result, path: Path) -> Path | None:
    """Per push round: the fanout's entries/s (bars) against the store's raw bulk-insert
    docs/s and 0.8 of it (lines)."""
    rounds = [
        r
        for r in roundtrip_rounds(report)
        if r.get("fanout_mode") in (None, "push") and r.get("fanout_entries_per_s")
    ]
    if not rounds:
        return None
    raw = report.get("raw_bulk_insert_docs_per_s")
    figure = new_figure(9, 5)
    ax = figure.subplots()
    names = [f"{r['followers']:,}" for r in rounds]
    rates: list[float] = [r["fanout_entries_per_s"] for r in rounds]
    bars = ax.bar(
        names,
        rates,
        color="tab:blue",
        width=0.6,
        label="fanout entries/s (while fanning out)",
    )
    ratios = [r.get("fanout_vs_raw_insert_ratio") for r in rounds]
    ax.bar_label(
        bars,
        [
            f"{v:,.0f}" + (f"\n{q:.2f} of raw" if q else "")
            for v, q in zip(rates, ratios, strict=True)
        ],
        fontsize=8,
        padding=2,
    )
    if raw:
        ax.axhline(
            raw, color="black", linewidth=1.5, label=f"store's raw bulk insert: {raw:,.0f} docs/s"
        )
        ax.axhline(
            FANOUT_RATIO_TARGET * raw,
            color="tab:red",
            linestyle="--",
            linewidth=1.2,
            label=f"target: {FANOUT_RATIO_TARGET:g} of the raw rate",
        )
    top = max([*rates, raw or 0])
    ax.set_ylim(0, top * 1.25)
    ax.yaxis.set_major_formatter(FuncFormatter(number_label))
    ax.set_xlabel("followers (push rounds)")
    ax.set_ylabel("entries (documents) per second")
    ax.set_title(roundtrip_title([report], "fanout write rate against the store's raw insert rate"))
    ax.legend(loc="upper left", fontsize=9)
    return save(figure, path)


# ------------------------------------------------------------------------------- broadcast


def broadcast_targets(report: Result) -> dict[str, Result]:
    return {name: r for name, r in (report.get("targets") or {}).items() if "error" not in r}


def note_failed(figure: Figure, report: Result) -> None:
    """A footnote naming the targets that failed (and so are not in the figure)."""
    failed = {n: r["error"] for n, r in (report.get("targets") or {}).items() if "error" in r}
    if failed:
        words = "; ".join(f"{n}: {str(e)[:60]}" for n, e in failed.items())
        figure.supxlabel(f"failed, not shown: {words}", fontsize=8, color="tab:red")


def target_label(report: Result, name: str) -> str:
    label = BROADCAST_NAMES.get(name, name)
    version = report.get("node_socketio_version")
    return f"{label} {version}" if name == "node" and version else label


def broadcast_title(report: Result, what: str, note: str = "") -> str:
    sockets = report.get("sockets")
    rounds = report.get("rounds", 1)
    head = f"{what}: one event to {sockets:,} sockets in one room" if sockets else what
    how = f"{report.get('events', '?')} events one at a time, {report.get('burst', '?')} in a burst"
    return (
        f"{head}, {machine_words(report.get('cpus'))}\n{how}"
        + (f"; median of {rounds} rounds" if rounds and rounds > 1 else "")
        + (f"\n{note}" if note else "")
    )


def broadcast_latency(report: Result, path: Path) -> Path | None:
    """CDF of post -> arrival at each socket, one line per target."""
    targets = broadcast_targets(report)
    figure = new_figure(10, 5.5)
    ax = figure.subplots()
    drawn: list[float] = []
    for name, result in targets.items():
        color = BROADCAST_COLORS.get(name)
        drawn += plot_cdf(ax, result, target_label(report, name), linewidth=1.8, color=color)
    if not drawn:
        return None
    latency_axes(ax, drawn)
    note_failed(figure, report)
    note = (
        "from the post (Tidings: a REST insert, its store write included; node: a POST that emits)"
    )
    ax.set_title(broadcast_title(report, "post → arrival at each socket", note))
    ax.legend(loc="lower right", fontsize=9)
    return save(figure, path)


def bars(ax: Axes, labels: list[str], series: dict[str, list[float]], unit: str) -> None:
    """Grouped bars: one group per label, one bar per series, each with its value on top."""
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        drawn = ax.bar(xs, values, width, label=name if len(series) > 1 else None)
        ax.bar_label(
            drawn,
            [number_label(v) if abs(v) >= 100 else f"{v:.3g}" for v in values],
            fontsize=8,
            padding=2,
        )
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=9)
    ax.set_ylabel(unit)
    every = [v for vs in series.values() for v in vs]
    headroom = 1.18 if len(series) == 1 else 1.35  # room for the values and the legend
    ax.set_ylim(min(0, *every) * headroom, max(0, *every) * headroom or 1)
    ax.yaxis.set_major_formatter(FuncFormatter(number_label))
    if len(series) > 1:
        ax.legend(loc="upper center", ncols=len(series), fontsize=8, frameon=False)


def broadcast_rates(report: Result, path: Path) -> Path | None:
    """Deliveries per second (one at a time, burst), connect time, and RSS per socket."""
    targets = {n: r for n, r in broadcast_targets(report).items() if "deliveries_per_s" in r}
    if not targets:
        return None
    labels = [target_label(report, name) for name in targets]
    figure = new_figure(13, 5)
    rates, connect, memory = figure.subplots(1, 3, width_ratios=(2, 1, 1))
    bars(
        rates,
        labels,
        {
            "one event at a time": [r["deliveries_per_s"] for r in targets.values()],
            "burst": [r["burst_deliveries_per_s"] for r in targets.values()],
        },
        "deliveries per second",
    )
    rates.set_title("deliveries/s (higher is better)", fontsize=10)
    bars(connect, labels, {"": [r["connect_s"] for r in targets.values()]}, "seconds")
    connect.set_title("connect + subscribe all (lower is better)", fontsize=10)
    bars(memory, labels, {"": [r["rss_per_socket_kb"] for r in targets.values()]}, "KB")
    memory.set_title("server RSS per socket (lower is better)", fontsize=10)
    figure.suptitle(broadcast_title(report, "broadcast"))
    note_failed(figure, report)
    return save(figure, path)


# ------------------------------------------------------------------------------- soak

SOAK_PANELS = [  # (title, the sample's value per node, or None for the p99s)
    ("RSS (MB)", "rss_mb"),
    ("open file descriptors", "fds"),
    ("asyncio tasks", "tasks"),
    ("event-loop lag, largest of 10 s (ms)", "loop_lag_ms"),
    ("p99 of each sample's span (ms)", None),
]


def soak_trend(report: Result, path: Path) -> Path | None:
    """`python -m bench soak --out`: each node's RSS, FDs, tasks and loop lag, and the p99s,
    sample by sample over the run's minutes; the warm-up shaded."""
    samples = report.get("samples") or []
    if not samples:
        return None
    figure = new_figure(12, 7)
    axes = figure.subplots(2, 3).flatten()
    minutes = [s["minute"] for s in samples]
    warmup = (report.get("settings") or {}).get("warmup_minutes", 0)
    for ax, (title, key) in zip(axes, SOAK_PANELS, strict=False):
        if key is None:
            for kind in samples[0]["p99_ms"]:
                ax.plot(minutes, [s["p99_ms"][kind] for s in samples], marker=".", label=kind)
        else:
            for node in samples[0]["nodes"]:
                values = [s["nodes"][node][key] for s in samples]
                ax.plot(minutes, values, marker=".", label=f"node {node}")
        ax.axvspan(0, warmup, color="0.92", zorder=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("minute")
        ax.legend(fontsize=8)
        ax.grid(True, color="0.9")
    verdict = report.get("pass") or {}
    axes[-1].axis("off")
    axes[-1].text(0, 1, "\n".join(f"{k}: {v}" for k, v in verdict.items()), va="top",
                  fontsize=9, family="monospace")  # fmt: skip
    settings = report.get("settings") or {}
    figure.suptitle(
        f"Soak: 2 nodes, {settings.get('sockets', '?')} sockets, "
        f"{settings.get('rate', '?')} operations/s (warm-up shaded)\nTidings on "
        f"{report.get('store') or 'store unknown'}, "
        f"{machine_words((report.get('machine') or {}).get('cores'))}"
    )
    return save(figure, path)


# ------------------------------------------------------------------------------- main

Plot = Callable[[list[Result], Path], Path | None]  # the readable JSON of its sources


def of_one(plot: Callable[[Result, Path], Path | None]) -> Plot:
    """A plot of one JSON document, given the documents of its one source."""
    return lambda reports, path: plot(reports[0], path)


# (the PNG, the JSON it is drawn from, how): a PNG is drawn when one of its JSON is readable.
PLOTS: list[tuple[str, tuple[str, ...], Plot]] = [
    ("roundtrip_latency.png", ("roundtrip.json", "roundtrip_pull.json"), roundtrip_latency),
    ("fanout_rate.png", ("roundtrip.json",), of_one(fanout_rate)),
    ("broadcast_latency.png", ("broadcast.json",), of_one(broadcast_latency)),
    ("broadcast_rates.png", ("broadcast.json",), of_one(broadcast_rates)),
]


def make_all(folder: Path) -> list[Path]:
    """Every plot with some of its JSON in `folder`; the PNGs written."""
    sources = dict.fromkeys(source for _, names, _ in PLOTS for source in names)
    docs = {source: load(folder / source) for source in sources}
    written = []
    for name, names, plot in PLOTS:
        reports = [doc for doc in (docs[source] for source in names) if doc is not None]
        if not reports:
            continue
        png = plot(reports, folder / name)
        if png is None:
            log(f"plots: nothing to plot in {' and '.join(names)} for {name}")
        else:
            written.append(png)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.plots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path, help="the results folder (e.g. docs/benchmarks)")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    return 0 if make_all(args.folder) else 1


if __name__ == "__main__":
    sys.exit(main())
