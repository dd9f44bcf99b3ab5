"""The benchmark report: run the benchmarks of docs/BENCHMARKS.md one after the other, then plot.

    .venv/bin/python -m bench.report --out docs/benchmarks            # the published figures
    .venv/bin/python -m bench.report --out /tmp/bench-quick --quick   # small: checks the tooling
    .venv/bin/python -m bench.report --out docs/benchmarks --only broadcast

The runs, in this order (`--only` picks one: `push`, `pull`, `broadcast`, `raid`, or `roundtrip` for
push and pull):
- `push` -> `roundtrip.json`: `bench roundtrip`, push rounds of 10 to 10,000 followers, every
  one connected, at 0.25 activity/s: a 10,000-follower fanout takes ~2 s on the embedded store,
  so each one ends before the next starts and the latencies are unloaded, not a queue;
- `pull` -> `roundtrip_pull.json`: `bench roundtrip`, one pull round, a feed of 1,000,000
  followers of which 10,000 are connected, at 1 activity/s (its set-up alone takes minutes);
- `broadcast` -> `broadcast.json`: `bench.broadcast`, one event to 10,000 sockets of one room,
  Tidings (one and two workers, fast path and python-socketio) against node's socket.io;
- `raid` -> `raid.json`: `bench raid`, 50 raid rooms of 20 members on two nodes (presence and
  publish over the socket, then a node killed).

Each benchmark runs as a subprocess of this same Python, never two at once (on a 2-core machine
they would measure each other), with its stderr passed through and its stdout (its JSON
document) written to `<out>/<json>`, whatever its exit status: a benchmark that exits 1 (a
missing delivery, a failed target) still prints its figures. `<out>/report.json` records, per
run, the exact command, its exit status, start and end times, the git commit (and whether the
checkout had changes) and the load average before and after; with `--only`, the other runs'
records from an earlier run are kept. Then `bench.plots` draws the PNGs of every JSON in
`<out>` (needs matplotlib: `pip install -e '.[bench]'`).

Exit status: 0 when every benchmark run exited 0 and the plots were drawn, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

ROUNDTRIP = ["bench", "roundtrip", "--start", "--client", "raw", "--subscriber-procs", "2"]


@dataclass(frozen=True)
class Benchmark:
    """One run: the JSON file its stdout goes to, and its arguments after `python -m` (full,
    and with --quick)."""

    json: str
    full: list[str]
    quick: list[str]


# The runs, in the order they run.
BENCHMARKS: dict[str, Benchmark] = {
    "push": Benchmark(
        "roundtrip.json",
        [*ROUNDTRIP, "--rate", "0.25", "--activities", "10", "--followers", "10,100,1000,10000"],
        [*ROUNDTRIP, "--rate", "1", "--activities", "5", "--followers", "10,100,1000"],
    ),
    "pull": Benchmark(
        "roundtrip_pull.json",
        [*ROUNDTRIP, "--rate", "1", "--activities", "10", "--followers", "1000000",
         "--connected", "10000"],
        [*ROUNDTRIP, "--rate", "1", "--activities", "5", "--followers", "3000",
         "--connected", "500", "--pull-threshold", "1000"],
    ),
    "broadcast": Benchmark(
        "broadcast.json",
        ["bench.broadcast", "--sockets", "10000", "--targets", "fast,fast2,socketio,node",
         "--rounds", "3"],
        ["bench.broadcast", "--sockets", "2000", "--targets", "fast,fast2,socketio,node",
         "--rounds", "1"],
    ),
    "raid": Benchmark(
        "raid.json",
        ["bench", "raid"],
        ["bench", "raid", "--rooms", "5", "--members", "6", "--presence-ttl", "3"],
    ),
}  # fmt: skip
GROUPS = {"roundtrip": ["push", "pull"]}  # --only roundtrip: both


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def git(*args: str) -> str | None:
    """The output of a read-only git command in the checkout, or None (no git, not a repo)."""
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def shown(argv: Sequence[str]) -> str:
    """The command as one would type it in the checkout (the interpreter relative to it)."""
    python = Path(argv[0])
    if python.is_relative_to(ROOT):
        python = python.relative_to(ROOT)
    return shlex.join([str(python), *argv[1:]])


def is_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def run_benchmark(name: str, argv: list[str], target: Path) -> dict[str, Any]:
    """Run one benchmark, its stdout into `target`; what report.json says of it."""
    record: dict[str, Any] = {
        "command": shown(argv),
        "argv": argv,
        "cwd": str(ROOT),
        "json": target.name,
        "git_commit": git("rev-parse", "HEAD"),
        "git_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "loadavg_before": loadavg(),
        "started_at": now(),
    }
    log(f"report: {name}: {record['command']}")
    started = time.monotonic()
    with target.open("w") as stdout:
        record["exit_code"] = subprocess.run(argv, cwd=ROOT, stdout=stdout, check=False).returncode
    record["ended_at"] = now()
    record["seconds"] = round(time.monotonic() - started, 1)
    record["loadavg_after"] = loadavg()
    record["json_valid"] = is_json(target)
    log(f"report: {name} exited {record['exit_code']} after {record['seconds']:.0f}s"
        + ("" if record["json_valid"] else f"; {target} is not valid JSON"))  # fmt: skip
    return record


def previous(path: Path) -> dict[str, Any]:
    """report.json of an earlier run in the same folder (its other benchmarks are kept)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def draw(out: Path) -> list[str] | None:
    """The PNGs drawn from the JSON in `out`; None when matplotlib is not installed."""
    try:
        from . import plots
    except ImportError as exc:
        log(f"report: no plots ({exc}); install them with: .venv/bin/pip install -e '.[bench]'")
        return None
    return [p.name for p in plots.make_all(out)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON and PNGs")
    parser.add_argument("--quick", action="store_true", help="much smaller runs, to check tooling")
    parser.add_argument(
        "--only",
        choices=[*GROUPS, *BENCHMARKS],
        help="run this only (roundtrip: push and pull)",
    )
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(given)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "report.json"
    report = previous(report_path)
    report["report_command"] = shown([sys.executable, "-m", "bench.report", *given])
    report["cpus"] = os.cpu_count()
    runs = report.setdefault("benchmarks", {})
    for stale in set(runs) - set(BENCHMARKS):  # records of an older layout
        del runs[stale]
    chosen = GROUPS.get(args.only, [args.only]) if args.only else list(BENCHMARKS)
    failed = False
    for name in chosen:
        benchmark = BENCHMARKS[name]
        command = [sys.executable, "-m", *(benchmark.quick if args.quick else benchmark.full)]
        runs[name] = {"quick": args.quick, **run_benchmark(name, command, out / benchmark.json)}
        failed |= runs[name]["exit_code"] != 0
        report_path.write_text(json.dumps(report, indent=2) + "\n")  # kept if a later one hangs
    report["plots"] = draw(out)
    report["plotted_at"] = now()
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    log(f"report: wrote {report_path}")
    return 1 if failed or report["plots"] is None else 0


if __name__ == "__main__":
    sys.exit(main())
