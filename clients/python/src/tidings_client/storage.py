"""Where a subscription keeps the last activity id it delivered, per feed, so that an app that
restarts resumes from it: in memory (the default) or in a JSON file."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Protocol


class Storage(Protocol):
    """Any key-value store: `get` a key's value (None when unset) and `set` it."""

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str) -> None: ...


class MemoryStorage:
    """For one process' lifetime."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value


class JSONFileStorage:
    """One JSON object in a file, rewritten atomically (temporary file + rename) on each set,
    so a crash leaves the old or the new content, never half of it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._values: dict[str, str] | None = None
        self._lock = asyncio.Lock()

    def _load(self) -> dict[str, str]:
        if self._values is None:
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                loaded = {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{self.path} does not hold a JSON object")
            self._values = {str(k): str(v) for k, v in loaded.items()}
        return self._values

    async def get(self, key: str) -> str | None:
        return self._load().get(key)

    async def set(self, key: str, value: str) -> None:
        async with self._lock:
            values = self._load()
            if values.get(key) == value:
                return
            text = json.dumps({**values, key: value}, sort_keys=True)
            write = asyncio.ensure_future(asyncio.to_thread(self._write, text))
            try:
                await asyncio.shield(write)
            finally:  # a caller cancelled meanwhile still leaves the file written, and the lock
                await asyncio.wait([write])  # held until it is (no two writes of one file)
            values[key] = value  # once it is on disk: a failed write is tried again next time

    def _write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, self.path)
