"""An import file read chunk by chunk, with a durable checkpoint: an import killed at any point
and run again goes on after the last chunk it finished, and stores each line once.

Beside `FILE` the import keeps two files:
- `FILE.checkpoint` (JSON): the byte offset and line number after the last chunk written, the
  counts so far, how long the refusals file was then, and the store and database written (a
  checkpoint of another one is not resumed from). Written after the chunk's writes,
  to a temporary file that is synced and renamed over it: it is either the old one or the new.
- `FILE.refused` (NDJSON): one line per refused line, `{"line", "type", "error"}`, the error
  as Stream's API answers it. Cut back to the checkpoint's length on a resume, so that a chunk
  written again is refused once.

A chunk written again after a crash (its writes done, its checkpoint not) stores nothing twice:
every write of the importer is idempotent.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..runtime.faults import fault_pause
from .importer import Importer, Outcome

Progress = Callable[[int], None]  # bytes read since the last call


@dataclass
class Summary:
    """An import of one file, from its first line (resumed runs included)."""

    file: str
    lines: int = 0
    imported: Counter[str] = field(default_factory=Counter)
    existing: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    resumed_at: int = 0  # lines done before this run (0: from the start)

    def add(self, outcome: Outcome) -> None:
        self.imported.update(outcome.imported)
        self.existing.update(outcome.existing)
        self.refused += len(outcome.refused)

    def public(self) -> dict[str, Any]:
        return {
            "file": self.file, "lines": self.lines, "imported": +self.imported,
            "existing": +self.existing, "refused": self.refused,
            "resumed_at": self.resumed_at,
        }  # fmt: skip


def checkpoint_path(path: Path) -> Path:
    return path.with_name(path.name + ".checkpoint")


def refused_path(path: Path) -> Path:
    return path.with_name(path.name + ".refused")


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _load(path: Path, target: str, restart: bool) -> tuple[Summary, int, int]:
    """(summary so far, offset, length of the refusals file) from the checkpoint, if any (one
    of an import into another store or database does not count)."""
    summary, point = Summary(str(path)), checkpoint_path(path)
    if restart or not point.exists():
        return summary, 0, 0
    saved = json.loads(point.read_text())
    if saved.get("target") != target:
        return summary, 0, 0
    summary.lines = summary.resumed_at = int(saved["lines"])
    summary.imported.update(saved["imported"])
    summary.existing.update(saved["existing"])
    summary.refused = int(saved["refused"])
    return summary, int(saved["offset"]), int(saved["refused_bytes"])


Chunk = tuple[list[tuple[int, str]], int, int]


def _chunks(source: BinaryIO, first: int, size: int) -> Iterator[Chunk]:
    """(numbered non-blank lines, bytes read, last line number) of at most `size` lines."""
    lines: list[tuple[int, str]] = []
    read, number = 0, first
    for raw in source:
        number += 1
        read += len(raw)
        text = raw.decode("utf-8", errors="replace").strip()
        if text:
            lines.append((number, text))
        if len(lines) >= size:
            yield lines, read, number
            lines, read = [], 0
    if lines or read:
        yield lines, read, number


async def import_file(
    path: Path, importer: Importer, batch: int, restart: bool, progress: Progress
) -> Summary:
    """Import `path` from its checkpoint (from the start with `restart`)."""
    target = importer.target
    summary, offset, refused_bytes = _load(path, target, restart)
    point, refused = checkpoint_path(path), refused_path(path)
    with path.open("rb") as source, refused.open("ab") as bad:
        bad.truncate(refused_bytes)
        bad.seek(refused_bytes)
        source.seek(offset)
        progress(offset)
        for lines, read, number in _chunks(source, summary.lines, batch):
            outcome = await importer.chunk(lines)
            await fault_pause("import.written")  # crash tests: killed before the checkpoint
            for refusal in sorted(outcome.refused, key=lambda r: int(r["line"])):
                bad.write(json.dumps(refusal, separators=(",", ":")).encode() + b"\n")
            bad.flush()
            os.fsync(bad.fileno())
            offset += read
            summary.add(outcome)
            summary.lines = number
            _write_atomically(point, json.dumps({
                **summary.public(), "offset": offset, "refused_bytes": bad.tell(),
                "target": target,
            }).encode())  # fmt: skip
            progress(read)
    return summary


def refusals(path: Path, most: int) -> list[dict[str, Any]]:
    """The first `most` refusals of the import of `path`."""
    found: list[dict[str, Any]] = []
    if refused_path(path).exists():
        with refused_path(path).open() as lines:
            for line in lines:
                if len(found) >= most:
                    break
                found.append(json.loads(line))
    return found
