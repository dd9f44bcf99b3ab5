"""The benchmark report: run the benchmarks of docs/BENCHMARKS.md one after the other, then plot.

    .venv/bin/python -m bench.report --out docs/benchmarks            # the published figures
    .venv/bin/python -m bench.report --out /tmp/bench-quick --quick   # small: checks the tooling
    .venv/bin/python -m bench.report --out docs/benchmarks --only broadcast

Each benchmark runs as a subprocess of this same Python, never two at once (on a 2-core machine
they would measure each other), with its stderr passed through and its stdout (its JSON
document) written to `<out>/<benchmark>.json`, whatever its exit status: a benchmark that
exits 1 (a missing delivery, a failed target) still prints its figures. `<out>/report.json`
records, per benchmark, the exact command, its exit status, start and end times, the git commit
(and whether the checkout had changes) and the load average before and after; with `--only`,
the other benchmark's record from an earlier run is kept. Then `bench.plots` draws the PNGs of
every JSON in `<out>` (needs matplotlib: `pip install -e '.[bench]'`).

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# The benchmarks, in the order they run: (full, --quick) arguments after `python -m`.
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "roundtrip": (
        ["bench", "roundtrip", "--start", "--client", "raw", "--subscriber-procs", "2",
         "--rate", "1", "--activities", "10", "--followers", "10,100,1000,10000,1000000",
         "--connected", "10000"],
        ["bench", "roundtrip", "--start", "--client", "raw", "--subscriber-procs", "2",
         "--rate", "1", "--activities", "5", "--followers", "10,100,1000"],
    ),
    "broadcast": (
        ["bench.broadcast", "--sockets", "10000", "--targets", "fast,fast2,socketio,node",
         "--rounds", "3"],
        ["bench.broadcast", "--sockets", "2000", "--targets", "fast,fast2,socketio,node",
         "--rounds", "1"],
    ),
}  # fmt: skip


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


def run_benchmark(name: str, argv: list[str], out: Path) -> dict[str, Any]:
    """Run one benchmark, its stdout into `<out>/<name>.json`; what report.json says of it."""
    target = out / f"{name}.json"
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
    parser.add_argument("--only", choices=list(BENCHMARKS), help="run this benchmark only")
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(given)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "report.json"
    report = previous(report_path)
    report["report_command"] = shown([sys.executable, "-m", "bench.report", *given])
    report["cpus"] = os.cpu_count()
    runs = report.setdefault("benchmarks", {})
    failed = False
    for name, (full, quick) in BENCHMARKS.items():
        if args.only and name != args.only:
            continue
        command = [sys.executable, "-m", *(quick if args.quick else full)]
        runs[name] = {"quick": args.quick, **run_benchmark(name, command, out)}
        failed |= runs[name]["exit_code"] != 0
        report_path.write_text(json.dumps(report, indent=2) + "\n")  # kept if a later one hangs
    report["plots"] = draw(out)
    report["plotted_at"] = now()
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    log(f"report: wrote {report_path}")
    return 1 if failed or report["plots"] is None else 0


if __name__ == "__main__":
    sys.exit(main())
