"""A fresh database of the test store whose commands are recorded, for the tests that count
what a read asks of the store (one query per kind of thing, never one per item)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from tidings.store.mongo.client import ensure_indexes

from .server import DATABASES


class Commands(monitoring.CommandListener):
    """The commands a client sends, as `name:collection`, and the statements of each write
    (`statements`, in step with `sent`: the ops of a bulk write, each a write of its own in
    the store; 1 for anything else)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.statements: list[int] = []

    @property
    def names(self) -> list[str]:
        return [command.partition(":")[0] for command in self.sent]

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(f"{event.command_name}:{event.command.get(event.command_name)}")
        ops = next((event.command[k] for k in ("updates", "deletes") if k in event.command), None)
        self.statements.append(1 if ops is None else len(ops))

    def clear(self) -> None:
        self.sent.clear()
        self.statements.clear()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@contextlib.asynccontextmanager
async def monitored_database(
    url: str,
) -> AsyncIterator[tuple[AsyncDatabase[dict[str, Any]], Commands]]:
    """A new database with Tidings' indexes, and what its client sends; dropped at the end."""
    commands = Commands()
    name = f"t_{uuid.uuid4().hex[:12]}"
    DATABASES.add(name)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, event_listeners=[commands])
    try:
        db = client[name]
        await ensure_indexes(db)
        yield db, commands
    finally:
        await client.drop_database(name)
        await client.close()
