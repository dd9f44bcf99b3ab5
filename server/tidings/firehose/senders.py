"""What a sender answers for each message it was given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..store.mongo.deliveries import Message


@dataclass(frozen=True)
class Outcome:
    ok: bool
    gone: bool = False  # the endpoint answered 410 Gone: disable it
    error: str = ""


DELIVERED = Outcome(ok=True)


class Sender(Protocol):
    """Hands messages to one endpoint. `batch`: how many messages one `send` takes (the worker
    gives at most that many). Answers an outcome per message id; raising fails them all."""

    kind: str
    batch: int
    ordered: bool  # one call at a time (FIFO queues keep the order of each feed's updates)

    async def send(self, messages: Sequence[Message]) -> dict[str, Outcome]: ...
