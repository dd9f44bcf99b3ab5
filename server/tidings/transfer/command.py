"""`tidings import FILE…` and `tidings export`, as the command line runs them: a progress bar
on the terminal (rich), then a summary of what was imported, found already there, and refused
(line numbers and Stream's error bodies; all of them in `FILE.refused`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .exporter import Sources, export
from .files import Summary, import_file, refusals
from .importer import Importer

SHOWN_REFUSALS = 20  # in the summary; the refusals file has them all


def _bar(show: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=Console(stderr=True), disable=not show,
    )  # fmt: skip


async def run_import(
    opened: AbstractAsyncContextManager[Importer],
    files: Sequence[Path],
    batch: int,
    restart: bool,
    as_json: bool,
) -> int:
    """0 when every line was imported (or was there already), 1 when some were refused."""
    summaries: list[Summary] = []
    async with opened as importer:
        with _bar(sys.stderr.isatty()) as bar:
            for path in files:
                task = bar.add_task(path.name, total=path.stat().st_size)

                def advance(read: int, task: Any = task) -> None:
                    bar.advance(task, read)

                summaries.append(await import_file(path, importer, batch, restart, advance))
    report = [{**s.public(), "refusals": refusals(Path(s.file), SHOWN_REFUSALS)} for s in summaries]
    print(json.dumps(report, indent=2) if as_json else _table(report))
    return 1 if any(s.refused for s in summaries) else 0


def _table(report: list[dict[str, Any]]) -> str:
    lines = []
    for item in report:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(item["imported"].items())) or "nothing"
        there = ", ".join(f"{k} {n}" for k, n in sorted(item["existing"].items())) or "nothing"
        resumed = f" (resumed after line {item['resumed_at']})" if item["resumed_at"] else ""
        lines.append(f"{item['file']}: {item['lines']} lines{resumed}")
        lines.append(f"  imported: {kinds}")
        lines.append(f"  already there: {there}")
        lines.append(f"  refused: {item['refused']}")
        for refusal in item["refusals"]:
            error = refusal["error"]
            lines.append(f"    line {refusal['line']} ({refusal['type'] or '?'}): "
                         f"{error['exception']}: {error['detail']}")  # fmt: skip
        if item["refused"] > len(item["refusals"]):
            lines.append(f"    … all of them in {item['file']}.refused")
    return "\n".join(lines)


async def run_export(opened: AbstractAsyncContextManager[Sources], output: str | None) -> int:
    async with opened as sources:
        with nullcontext(sys.stdout) if output in (None, "-") else open(output, "w") as out:  # noqa: ASYNC230
            counts = await export(sources, out)
    print(", ".join(f"{k} {n}" for k, n in counts.items()) or "nothing", file=sys.stderr)
    return 0
